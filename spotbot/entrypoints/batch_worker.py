"""The Spot worker: tags one shard of a job, as one child of an AWS Batch array job.

    python -m batch_jobs.worker        (the image's entrypoint, a shim of this module; all from the environment)

The job definition and the Step Functions container overrides set:

    SPOTBOT_JOB_ID, SPOTBOT_BOT          the job, and the bot (built-in name or module:Class)
    SPOTBOT_SOURCE, SPOTBOT_OUTPUT       s3:// prefixes: the assets, and where part-<shard>.jsonl goes
    SPOTBOT_ENDPOINT_NAME                optional: predict through this SageMaker endpoint;
                                         unset: load the bot in this container
    SPOTBOT_MODEL_DIR                    optional, in-container: an extracted model version to load
    SPOTBOT_MODEL_VERSION                optional, in-container: a version from the model store
                                         (SPOTBOT_MODELS); neither: the store's current version, else
                                         the bot's packaged model. Pin it, so every shard uses one version.
    SPOTBOT_BATCH_SIZE, SPOTBOT_THREADS, SPOTBOT_RETRY_FAILED   optional tuning
    AWS_BATCH_JOB_ARRAY_INDEX            the shard (set by Batch); SPOTBOT_SHARD for a single job;
                                         neither: shard 0
    plus the shared settings, as spotbot.settings.BatchWorkerSettings (SPOTBOT_OPENSEARCH_ENDPOINT required).

Re-running a shard tags only what is not DONE (tag_shard reads the task statuses), so a retried
child never tags an asset twice. On SIGTERM -- Batch terminating the job, or the Spot interruption
-- the worker finishes the micro-batch in hand (a signal that arrives mid-predict waits for it),
writes what it has, and exits 143 so the attempt is not mistaken for a finished shard. Whether
Batch retries is up to the job's retry strategy: retry on status reason `Host EC2*` (the instance
was reclaimed), exit on anything else (a user's TerminateJob stays terminated).

Exit codes:
    0    the shard is finished: every task was tried. Assets that could not be tagged are FAILED
         tasks with their error (data errors, not worker errors).
    1    the shard could not be finished: the index, S3 or the endpoint failed, or the bot could
         not load. What was tagged is saved; running the shard again resumes it.
    2    configuration error: a missing or invalid environment variable, an unknown bot or model
         version. Running it again will not help.
    143  stopped by SIGTERM before the shard finished (130: SIGINT). What was tagged is saved.

Logs are JSON lines on stdout (CloudWatch reads them), each with job_id and shard.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spotbot.adapters.local.in_process import InProcessRuntime
from spotbot.adapters.s3.assets import parse_s3_uri
from spotbot.adapters.s3.output import S3OutputStore
from spotbot.adapters.sagemaker.runtime import SageMakerRuntime
from spotbot.services.bots import UnknownBotError, resolve_bot
from spotbot.domain import validate_job_id
from spotbot.services.models import ModelError
from spotbot.ports import BotRuntime, ShardWork
from spotbot.settings import BatchWorkerSettings, Settings
from spotbot.adapters.wiring import open_asset_store, open_cloud_index, open_model_registry
from spotbot.services.shard import tag_shard

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

log = logging.getLogger("batch_jobs.worker")


class ShardEnvironment(BaseSettings):
    """What this container is asked to do; the shared settings stay in spotbot.settings.Settings."""

    model_config = SettingsConfigDict(env_prefix="SPOTBOT_", env_ignore_empty=True, frozen=True)  # "" is unset

    job_id: str
    bot: str
    source: str
    output: str
    shard: int = Field(default=0, ge=0, validation_alias=AliasChoices("AWS_BATCH_JOB_ARRAY_INDEX", "SPOTBOT_SHARD"))
    endpoint_name: str | None = None
    model_dir: Path | None = None
    model_version: str | None = None
    batch_size: int | None = Field(default=None, ge=1)
    threads: int | None = Field(default=None, ge=1)
    retry_failed: bool = True
    batch_job_id: str | None = Field(default=None, validation_alias="AWS_BATCH_JOB_ID")
    attempt: int | None = Field(default=None, validation_alias="AWS_BATCH_JOB_ATTEMPT")

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, value: str) -> str:
        return validate_job_id(value)

    @field_validator("source", "output")
    @classmethod
    def _s3_uri(cls, value: str) -> str:
        parse_s3_uri(value)  # the worker reads and writes S3 only
        return value

    @field_validator("model_dir")
    @classmethod
    def _model_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value


class StopRequest:
    """Set by SIGTERM or SIGINT; tag_shard asks it after each micro-batch whether to stop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.honoured = False  # tag_shard was told to stop, so the shard may have work left

    def install(self) -> StopRequest:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum  # no logging here: the handler may interrupt a log write

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)

    @property
    def signal_name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum else None

    def __call__(self) -> bool:
        if self.signum is None:
            return False
        if not self.honoured:
            self.honoured = True
            log.warning("stop requested: writing what is tagged, then exiting", extra={"signal": self.signal_name})
        return True


# logging

_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the shard context, and any extra= fields."""

    def __init__(self, context: dict[str, Any]) -> None:
        super().__init__()
        self.context = context

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self.context,
        }
        line.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(context: dict[str, Any]) -> None:
    """JSON lines on stdout: INFO from spotbot and this worker, WARNING and up from libraries."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLineFormatter(context))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("batch_jobs", "spotbot", "bots"):
        logging.getLogger(name).setLevel(logging.INFO)


def _config_errors(error: ValidationError) -> list[str]:
    """Each problem named by its environment variable."""
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        variable = name.upper() if name.upper().startswith(("AWS_", "SPOTBOT_")) else f"SPOTBOT_{name.upper()}"
        problems.append(f"{variable}: {item['msg'].removeprefix('Value error, ')}")
    return problems


# the work


def open_runtime(env: ShardEnvironment, settings: Settings) -> BotRuntime:
    """The SageMaker endpoint when one is named, else the bot loaded in this container."""
    if env.endpoint_name:
        # boto3 honours AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME / AWS_ENDPOINT_URL for a non-AWS endpoint
        return SageMakerRuntime(env.endpoint_name, env.bot, region=settings.region, batch_size=env.batch_size)
    return InProcessRuntime.load(env.bot, model_dir_for(env, settings), threads=env.threads, batch_size=env.batch_size)


def model_dir_for(env: ShardEnvironment, settings: Settings) -> Path | None:
    """SPOTBOT_MODEL_DIR, else the pinned (or current) version of the model store, else None: the bot's own."""
    if env.model_dir is not None:
        return env.model_dir
    registry, _ = open_model_registry(settings)
    model = registry.resolve(resolve_bot(env.bot).name, env.model_version)
    return model.path if model else None


def run(env: ShardEnvironment, settings: Settings, stop: StopRequest) -> int:
    try:
        index = open_cloud_index(settings)
    except ValueError as error:
        log.error(f"configuration error: {error}")
        return EXIT_CONFIG
    try:
        try:
            runtime = open_runtime(env, settings)
        except (UnknownBotError, ModelError) as error:
            log.error(f"configuration error: {error}")
            return EXIT_CONFIG
        except Exception as error:  # noqa: BLE001 - reported with what failed; Batch does not retry it
            log.exception(f"bot {env.bot!r} failed to load: {type(error).__name__}: {error}")
            return EXIT_FAILED
        if stop.requested:  # a SIGTERM while the model loaded: nothing tagged, nothing to save
            log.warning("stopped before tagging", extra={"signal": stop.signal_name})
            return stop.exit_code
        work = ShardWork(
            job_id=env.job_id,
            shard=env.shard,
            bot=env.bot,
            source=env.source,
            output=env.output,
            retry_failed=env.retry_failed,
            batch_size=env.batch_size,
            threads=env.threads,
            model_dir=str(env.model_dir) if env.model_dir else None,
        )
        log.info(
            "tagging shard",
            extra={
                "bot": runtime.bot_name,
                "model_version": runtime.model_version,
                "runtime": f"endpoint {env.endpoint_name}" if env.endpoint_name else "in-container",
                "source": env.source,
                "output": env.output,
            },
        )
        started = time.monotonic()
        try:
            job = index.get_job(env.job_id)  # POST /jobs {"incremental": false} is on the record: predict every asset
            if job is not None and not job.incremental:
                work = replace(work, incremental=False)
            result = tag_shard(
                work,
                index=index,
                store=open_asset_store(env.source, settings),  # a prefix, or an S3 Inventory report's buckets
                output=S3OutputStore(env.output, endpoint_url=settings.s3_endpoint_url),
                runtime=runtime,
                settings=settings,
                should_stop=stop,
            )
        except Exception as error:  # noqa: BLE001 - the shard stops; its DONE tasks and their lines are saved
            log.exception(f"shard failed: {type(error).__name__}: {error}")
            return EXIT_FAILED
        figures = {
            "done": result.done,
            "failed": result.failed,
            "reused": result.reused,
            "seconds": round(time.monotonic() - started, 3),
            "model_version": runtime.model_version,
        }
        if stop.honoured:
            log.warning("shard stopped early; running it again tags the rest", extra={**figures, "signal": stop.signal_name})
            return stop.exit_code
        log.info("shard finished", extra=figures)
        return EXIT_DONE
    finally:
        index.close()


def main() -> int:
    context: dict[str, Any] = {"job_id": None, "shard": None}
    configure_logging(context)
    stop = StopRequest().install()  # first thing: a SIGTERM during start-up must not kill the process outright
    problems: list[str] = []
    try:
        env = ShardEnvironment()  # type: ignore[call-arg] - read from the environment
    except ValidationError as error:
        problems += _config_errors(error)
    try:
        settings = BatchWorkerSettings()
    except ValidationError as error:
        problems += _config_errors(error)
    if problems:
        log.error(f"configuration error: {'; '.join(problems)}", extra={"problems": problems})
        return EXIT_CONFIG
    context.update(job_id=env.job_id, shard=env.shard)
    if env.batch_job_id:
        context.update(batch_job_id=env.batch_job_id, attempt=env.attempt)
    return run(env, settings, stop)
