"""Jobs in AWS: the service functions behind the REST API (lambdas/api).

Submit a job (record it, start its Step Functions execution), look at it (counts from the index,
the execution's status), cancel it (stop the execution, terminate its Batch jobs), search tags,
and keep the bring-your-own-bot registry. Each function takes a `CloudJobs` -- the tag index and
the AWS clients -- and a validated request, and raises the errors below, which the handler turns
into HTTP answers. No HTTP here beyond naming the request field at fault.

Idempotency. `POST /jobs` with the same idempotency key twice starts one job. Powertools'
idempotency utility would need a DynamoDB table, and this stack has none; it needs none, because
Step Functions already refuses a second execution with the same name. So the job id -- which is
the execution name -- is derived from the key (`job-<sha256(key)[:20]>`): the second request
finds the job recorded with its execution ARN and answers it (200), and two racing requests both
reach `StartExecution` with one name, where one wins and the other gets the same execution back
(same input) or `ExecutionAlreadyExists` (which is read as "already started"). Exactly one
execution either way. An explicit `job_id` works the same (it is its own key). A cloud job id is
used once: Step Functions keeps execution names for 90 days after an execution ends.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from spotbot.services.bots import BUILTIN_BOTS
from spotbot.domain.catalogue import BUILTIN_CATALOGUE
from spotbot.domain import JOB_ID_PATTERN, Job, JobCounts, JobStatus, new_job_id, utc_now, validate_job_id
from spotbot.ports import SearchHit, SearchQuery, TagIndex
from spotbot.settings import Settings

log = logging.getLogger(__name__)

S3_URI_PATTERN = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
ECR_IMAGE_URI_PATTERN = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"
    r"/[a-z0-9]+(?:[._/-][a-z0-9]+)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$"
)
BOT_NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # also a valid SageMaker endpoint name
FILE_TYPE_PATTERN = re.compile(r"^\.[a-z0-9]{1,16}$")
INSTANCE_TYPE_PATTERN = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
CONTENT_TYPE_PATTERN = re.compile(r"^[a-z]+/[A-Za-z0-9.+-]+$")
FINISHED = (JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED)
BATCH_DONE = ("SUCCEEDED", "FAILED")


# errors the API answers with 400, 404 and 409


class InvalidRequest(ValueError):
    """A request that validated as JSON but cannot be done; `field` names the part at fault (body.bot)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


# configuration


def job_definition_for(settings: Settings, bot: str) -> str:
    """The Batch job definition a bot's workers run as: its own (a GPU one, say), else the default."""
    return settings.job_definitions.get(bot) or settings.job_definitions.get("*", "")


def default_output(settings: Settings) -> str | None:
    """Where a job that names no output writes: SPOTBOT_DEFAULT_OUTPUT, else the work bucket's output/."""
    if settings.default_output:
        return settings.default_output
    return f"s3://{settings.work_bucket}/output" if settings.work_bucket else None


# requests


def check_s3_uri(value: str | None) -> str | None:
    if value is not None and not S3_URI_PATTERN.match(value):
        raise ValueError(
            f"{value!r} is not an S3 URI: use s3://bucket/prefix (a bucket name is 3-63 lower-case letters, digits, '.' or '-')"
        )
    return value


class JobSubmission(BaseModel):
    """The body of POST /jobs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str = Field(description="The assets to tag, recursively", examples=["s3://my-assets/photos/"])
    bot: str = Field(
        min_length=1, max_length=63, description="A built-in bot or a registered one (GET /bots)", examples=["scene-text"]
    )
    output: str | None = Field(
        default=None, description="Where JSON Lines go; default: the stack's output prefix", examples=["s3://my-results/tags"]
    )
    workers: int | None = Field(default=None, ge=1, le=1000, description="Most Spot workers at once")
    shard_size: int | None = Field(default=None, ge=1, le=100_000, description="Assets per shard; default: automatic")
    model_version: str | None = Field(default=None, min_length=1, max_length=128, description="Pin a model version")
    job_id: str | None = Field(
        default=None, description="Name the job (1-80 letters, digits, '-', '_'); default: from the idempotency key, or new"
    )
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=256, description="Same key twice, one job (or the Idempotency-Key header)"
    )

    _s3_uris = field_validator("source", "output")(check_s3_uri)

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, value: str | None) -> str | None:
        return validate_job_id(value) if value is not None else None


class BotRegistration(BaseModel):
    """The body of POST /bots and PUT /bots/{name}: a bot you bring, as a container image."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(description="Lower-case letters, digits and '-', at most 63", examples=["my-detector"])
    file_types: list[str] = Field(
        min_length=1, max_length=100, description="Extensions it reads, with the dot", examples=[[".jpg", ".png"]]
    )
    runtime: Literal["sagemaker-endpoint", "in-container"] = Field(
        description="sagemaker-endpoint: served from a SageMaker endpoint per job; in-container: runs inside the Spot worker"
    )
    image_uri: str = Field(description="ECR image: <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> or @sha256:<digest>")
    model_data: str | None = Field(
        default=None, validate_default=True, description="s3://.../model.tar.gz; required for sagemaker-endpoint"
    )
    instance_type: str | None = Field(
        default=None, validate_default=True, description="Endpoint instance type (sagemaker-endpoint); default ml.m5.large"
    )
    content_type: str = Field(default="application/octet-stream", description="Content type the bot is sent assets in")
    input_kind: Literal["image", "text", "bytes"] = Field(default="bytes", description="How in-container bots get assets")
    model_version: str | None = Field(default=None, max_length=128)
    description: str = Field(default="", max_length=500)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not BOT_NAME_PATTERN.match(value):
            raise ValueError(f"bot name {value!r} is not valid: use 1-63 lower-case letters, digits or '-', not at either end")
        return value

    @field_validator("file_types")
    @classmethod
    def _file_types(cls, values: list[str]) -> list[str]:
        lowered = [value.lower() for value in values]
        for value in lowered:
            if not FILE_TYPE_PATTERN.match(value):
                raise ValueError(f"file type {value!r} is not an extension: start with '.', then letters or digits (.jpg)")
        return list(dict.fromkeys(lowered))

    @field_validator("image_uri")
    @classmethod
    def _image_uri(cls, value: str) -> str:
        if not ECR_IMAGE_URI_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not an ECR image URI: use <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> or ...@sha256:<digest>"
            )
        return value

    @field_validator("model_data")
    @classmethod
    def _model_data(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("runtime") == "sagemaker-endpoint":
            raise ValueError("a sagemaker-endpoint bot needs model_data: the s3:// URI of its model.tar.gz")
        return check_s3_uri(value)

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("runtime") != "sagemaker-endpoint":
            if value is not None:
                raise ValueError("instance_type is for sagemaker-endpoint bots only")
            return None
        value = value or "ml.m5.large"
        if not INSTANCE_TYPE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a SageMaker instance type, e.g. ml.m5.large")
        return value

    @field_validator("content_type")
    @classmethod
    def _content_type(cls, value: str) -> str:
        if not CONTENT_TYPE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a content type, e.g. image/jpeg")
        return value


# the index and the AWS clients


class CloudTagIndex(TagIndex, Protocol):
    """What the API needs of the cloud index beyond TagIndex: paged search, label counts, the bot registry."""

    def counts(self, job_id: str, *, consistent: bool = True) -> JobCounts: ...

    def search_page(
        self, query: SearchQuery, search_after: list[Any] | None = None
    ) -> tuple[list[SearchHit], list[Any] | None]: ...
    def label_counts(self, job_id: str | None = None, bot: str | None = None) -> dict[str, int]: ...
    def save_bot(self, doc: dict[str, Any]) -> None: ...
    def get_bot(self, name: str) -> dict[str, Any] | None: ...
    def list_bots(self) -> list[dict[str, Any]]: ...
    def delete_bot(self, name: str) -> bool: ...


@dataclass
class CloudJobs:
    """The tag index and the AWS clients the job API works with; one per Lambda container."""

    index: CloudTagIndex
    stepfunctions: Any  # boto3 "stepfunctions" client
    batch: Any  # boto3 "batch" client
    settings: Settings

    @classmethod
    def connect(cls, settings: Settings) -> CloudJobs:
        import boto3

        from spotbot.adapters.wiring import open_cloud_index

        index = open_cloud_index(settings)
        index.ensure_indices()  # idempotent; a fresh stack can take a job on its first request
        session = boto3.Session(region_name=settings.region) if settings.region else boto3.Session()
        return cls(
            index=index,
            stepfunctions=session.client("stepfunctions"),
            batch=session.client("batch"),
            settings=settings,
        )


# jobs


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool  # False: the job existed already (a repeated idempotency key or job id)


def job_id_for(submission: JobSubmission, idempotency_key: str | None = None) -> str:
    """The job's id: as given, else derived from the idempotency key (header or body), else new."""
    key = _idempotency_key(submission, idempotency_key)
    if submission.job_id:
        return submission.job_id
    if key:
        return f"job-{hashlib.sha256(key.encode()).hexdigest()[:20]}"
    return new_job_id()


def _idempotency_key(submission: JobSubmission, header: str | None) -> str | None:
    if header is not None and not header.strip():
        raise InvalidRequest("header.Idempotency-Key", "is empty")
    if header and submission.idempotency_key and header.strip() != submission.idempotency_key:
        raise InvalidRequest("body.idempotency_key", "differs from the Idempotency-Key header: send one, or the same in both")
    return header.strip() if header else submission.idempotency_key


def submit_job(jobs: CloudJobs, submission: JobSubmission, idempotency_key: str | None = None) -> Submitted:
    """Records the job (SUBMITTED) and starts its execution, named after the job id; at most once per id."""
    if not jobs.settings.state_machine_arn:
        raise RuntimeError("SPOTBOT_STATE_MACHINE_ARN is not set")
    job_id = job_id_for(submission, idempotency_key)
    bot = resolve_cloud_bot(jobs, submission.bot)
    output = submission.output or default_output(jobs.settings)
    if output is None:
        raise InvalidRequest("body.output", "no default output is configured (SPOTBOT_DEFAULT_OUTPUT): give an s3:// output")
    output = output.rstrip("/")

    job = jobs.index.get_job(job_id)
    if job is not None:
        _check_same_submission(job, submission, output)
        if job.execution_arn:
            log.info("job already submitted", extra={"execution_arn": job.execution_arn})
            return Submitted(job=job, created=False)
    else:
        job = Job(
            job_id=job_id,
            bot=submission.bot,
            source=submission.source,
            output=output,
            workers=submission.workers or jobs.settings.default_workers,
            model_version=submission.model_version,
        )
    job = job.model_copy(update={"status": JobStatus.SUBMITTED})
    jobs.index.save_job(job)

    execution_input = {
        "job_id": job.job_id,
        "bot": job.bot,
        "source": job.source,
        "output": job.output,
        "workers": job.workers,
        "shard_size": submission.shard_size,
        "model_version": submission.model_version or "",  # "": each worker takes the current version
        "job_definition": job_definition_for(jobs.settings, job.bot),
        "bot_config": bot,
    }
    try:
        execution_arn, created = _start_execution(jobs, job_id, execution_input)
    except Exception:
        jobs.index.save_job(job.model_copy(update={"status": JobStatus.FAILED, "finished_at": utc_now()}))
        raise
    job = job.model_copy(update={"execution_arn": execution_arn})
    jobs.index.save_job(job)
    log.info("job submitted" if created else "job already started", extra={"execution_arn": execution_arn, "bot": job.bot})
    return Submitted(job=job, created=created)


def _start_execution(jobs: CloudJobs, job_id: str, execution_input: dict[str, Any]) -> tuple[str, bool]:
    sfn = jobs.stepfunctions
    state_machine_arn = jobs.settings.state_machine_arn
    try:
        response = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=job_id, input=json.dumps(execution_input, sort_keys=True)
        )
        return response["executionArn"], True
    except sfn.exceptions.ExecutionAlreadyExists:
        # a racing request (or an earlier try that failed after starting) got there first: the same job
        execution_arn = execution_arn_for(state_machine_arn, job_id)
        sfn.describe_execution(executionArn=execution_arn)
        return execution_arn, False


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """arn:aws:states:<region>:<account>:stateMachine:<sm> -> ...:execution:<sm>:<name>."""
    head, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{head}:execution:{machine}:{name}"


def console_url(execution_arn: str) -> str:
    region = execution_arn.split(":")[3]
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


def _check_same_submission(job: Job, submission: JobSubmission, output: str) -> None:
    asked_for = (("bot", job.bot, submission.bot), ("source", job.source, submission.source), ("output", job.output, output))
    for what, recorded, asked in asked_for:
        if recorded != asked:
            raise Conflict(
                f"job {job.job_id} exists with {what} {recorded!r}, not {asked!r}: "
                "a job id (or idempotency key) names one job; use a new one"
            )


def accepted(job: Job) -> dict[str, Any]:
    """The answer to POST /jobs."""
    return {
        "job_id": job.job_id,
        "status": job.status.value,
        "status_url": f"/jobs/{job.job_id}",
        "execution_arn": job.execution_arn,
        "console_url": console_url(job.execution_arn) if job.execution_arn else None,
    }


def list_jobs(jobs: CloudJobs, limit: int = 50) -> list[Job]:
    """Newest first; counts of unfinished jobs are read live, finished ones keep the counts Finalize wrote."""
    listed = jobs.index.list_jobs(limit)
    live = (JobStatus.SUBMITTED, JobStatus.RUNNING)
    return [
        job.model_copy(update={"counts": jobs.index.counts(job.job_id, consistent=False)}) if job.status in live else job
        for job in listed
    ]


def job_detail(jobs: CloudJobs, job_id: str) -> dict[str, Any]:
    """The job with live counts, its label counts, and its execution's status."""
    job = _job(jobs, job_id)
    job = job.model_copy(update={"counts": jobs.index.counts(job_id)})
    detail = job.model_dump(mode="json")
    detail["labels"] = jobs.index.label_counts(job_id=job_id)
    detail["status_url"] = f"/jobs/{job_id}"
    if job.execution_arn:
        detail["console_url"] = console_url(job.execution_arn)
        detail["execution"] = _execution(jobs, job.execution_arn)
    return detail


def _job(jobs: CloudJobs, job_id: str) -> Job:
    job = jobs.index.get_job(job_id) if JOB_ID_PATTERN.match(job_id) else None
    if job is None:
        raise NotFound(f"no job {job_id!r}; GET /jobs lists the jobs")
    return job


def _execution(jobs: CloudJobs, execution_arn: str) -> dict[str, Any]:
    sfn = jobs.stepfunctions
    try:
        described = sfn.describe_execution(executionArn=execution_arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return {"status": "UNKNOWN", "error": "ExecutionDoesNotExist"}
    execution: dict[str, Any] = {"status": described["status"]}
    for key, name in (("startDate", "started_at"), ("stopDate", "stopped_at")):
        if isinstance(described.get(key), datetime):
            execution[name] = described[key].isoformat()
    for key in ("error", "cause"):
        if described.get(key):
            execution[key] = described[key]
    return execution


def cancel_job(jobs: CloudJobs, job_id: str) -> dict[str, Any]:
    """Stops the execution, terminates the job's unfinished Batch jobs, and marks the job CANCELLED.

    Batch jobs are found by name: the state machine names each `<job_id>` or `<job_id>-<anything>`
    on SPOTBOT_BATCH_JOB_QUEUE (Step Functions also terminates a `.sync` Batch job when its execution
    stops; this covers jobs it has not yet heard of). Cancelling a cancelled job again is harmless;
    a finished job cannot be cancelled (409).
    """
    job = _job(jobs, job_id)
    if job.status in FINISHED:
        raise Conflict(f"job {job_id} already ended {job.status.value}: nothing to cancel")
    if job.execution_arn:
        sfn = jobs.stepfunctions
        try:
            if sfn.describe_execution(executionArn=job.execution_arn)["status"] == "RUNNING":
                sfn.stop_execution(executionArn=job.execution_arn, error="spotbot.Cancelled", cause=f"DELETE /jobs/{job_id}")
        except sfn.exceptions.ExecutionDoesNotExist:
            pass
    terminated = terminate_batch_jobs(jobs, job_id)
    counts = jobs.index.counts(job_id)
    if job.status != JobStatus.CANCELLED:
        job = job.model_copy(update={"status": JobStatus.CANCELLED, "counts": counts, "finished_at": utc_now()})
        jobs.index.save_job(job)
    log.info("job cancelled", extra={"terminated_batch_jobs": terminated})
    detail = job_detail(jobs, job_id)
    detail["terminated_batch_jobs"] = terminated
    return detail


def terminate_batch_jobs(jobs: CloudJobs, job_id: str) -> list[str]:
    """Terminates the unfinished Batch jobs named after the job on the worker queue; their ids."""
    queue = jobs.settings.batch_job_queue
    if not queue:
        return []
    terminated: list[str] = []
    pages = jobs.batch.get_paginator("list_jobs").paginate(
        jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{job_id}*"]}]
    )
    for page in pages:
        for summary in page["jobSummaryList"]:
            name = summary["jobName"]
            if name != job_id and not name.startswith(f"{job_id}-"):
                continue  # job-1 must not cancel job-10's workers
            if summary.get("status") in BATCH_DONE:
                continue
            jobs.batch.terminate_job(jobId=summary["jobId"], reason=f"spotbot job {job_id} cancelled")
            terminated.append(summary["jobId"])
    return terminated


# tags


def search_tags(
    jobs: CloudJobs,
    query: SearchQuery,
    after: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of tag records (newest first) and the cursor of the next page (None: no more)."""
    hits, cursor = jobs.index.search_page(query, decode_cursor(after) if after else None)
    items = [hit.record.model_dump(mode="json", exclude_none=True) | {"snippet": hit.snippet} for hit in hits]
    return items, encode_cursor(cursor) if cursor is not None else None


def encode_cursor(search_after: list[Any]) -> str:
    """An opaque, URL-safe page cursor."""
    return base64.urlsafe_b64encode(json.dumps(search_after, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        value = None
    if not isinstance(value, list):
        raise InvalidRequest("query.after", "is not a cursor this API gave out: pass the `next` of the previous page")
    return value


# bots


@functools.cache
def _builtin_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for name, info in BUILTIN_CATALOGUE.items():  # not the classes: this Lambda carries no ML packages
        doc = {
            "name": name,
            "file_types": list(info.file_types),
            "input_kind": info.input_kind,
            "runtime": "in-container",
            "model_version": "current",  # each worker takes the model store's current version
            "description": info.description,
            "builtin": True,
        }
        docs.append((name, doc))
    return tuple(docs)


def builtin_bot_docs() -> dict[str, dict[str, Any]]:
    return {name: dict(doc) for name, doc in _builtin_docs()}


def resolve_cloud_bot(jobs: CloudJobs, name: str) -> dict[str, Any]:
    """The bot a job names, built in or registered; 400 naming body.bot when there is none."""
    builtin = builtin_bot_docs()
    if name in builtin:
        return builtin[name]
    doc = jobs.index.get_bot(name) if BOT_NAME_PATTERN.match(name) else None
    if doc is None:
        raise InvalidRequest(
            "body.bot",
            f"unknown bot {name!r}: built-in bots are {', '.join(sorted(builtin))}; GET /bots lists the registered ones",
        )
    return {key: value for key, value in doc.items() if key != "updated_at"} | {"builtin": False}


def list_bots(jobs: CloudJobs) -> list[dict[str, Any]]:
    """The built-in bots, then the registered ones by name."""
    registered = [doc | {"builtin": False} for doc in jobs.index.list_bots() if doc.get("name") not in BUILTIN_BOTS]
    return list(builtin_bot_docs().values()) + registered


def get_bot(jobs: CloudJobs, name: str) -> dict[str, Any]:
    builtin = builtin_bot_docs()
    if name in builtin:
        return builtin[name]
    doc = jobs.index.get_bot(name) if BOT_NAME_PATTERN.match(name) else None
    if doc is None:
        raise NotFound(f"no bot {name!r}; GET /bots lists the bots")
    return doc | {"builtin": False}


def register_bot(jobs: CloudJobs, bot: BotRegistration, *, replace: bool) -> tuple[dict[str, Any], bool]:
    """Stores the bot; (its document, created). Built-in names are taken (409); so is an existing name unless replace."""
    if bot.name in BUILTIN_BOTS:
        raise Conflict(f"{bot.name!r} is a built-in bot: register yours under another name")
    exists = jobs.index.get_bot(bot.name) is not None
    if exists and not replace:
        raise Conflict(f"bot {bot.name!r} is registered already: PUT /bots/{bot.name} replaces it")
    doc = bot.model_dump(mode="json", exclude_none=True) | {"updated_at": utc_now().isoformat()}
    jobs.index.save_bot(doc)
    log.info("bot registered", extra={"bot": bot.name, "replaced": exists})
    return doc | {"builtin": False}, not exists


def delete_bot(jobs: CloudJobs, name: str) -> None:
    if name in BUILTIN_BOTS:
        raise Conflict(f"{name!r} is a built-in bot and cannot be deleted")
    if not (BOT_NAME_PATTERN.match(name) and jobs.index.delete_bot(name)):
        raise NotFound(f"no bot {name!r}; GET /bots lists the bots")
