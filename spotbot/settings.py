"""The one home of configuration: read from SPOTBOT_* environment variables, then passed in."""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPOTBOT_", frozen=True)

    home: Path = Field(default=Path("~/.spotbot"), description="Local state: the SQLite index and job locks")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description="Worker processes")
    max_shard_size: int = Field(default=1000, ge=1, description="Largest shard when the shard size is automatic")
    max_asset_bytes: int = Field(default=64 * 2**20, ge=1, description="Larger assets fail without being read")
    max_image_pixels: int = Field(default=50_000_000, ge=1, description="Larger images fail without being decoded")
    max_decode_side: int = Field(
        default=4096, ge=64, description="Images are decoded at reduced scale to about this many pixels on the longest side"
    )
    max_text_bytes: int = Field(default=2**20, ge=1, description="Larger text assets fail")
    text_encodings: Annotated[list[str], NoDecode] = Field(
        default=["utf-8"],
        description="Encodings tried in order for text assets, e.g. utf-8,gb18030; then the encoding is detected",
    )
    read_timeout_seconds: float = Field(default=60.0, gt=0, description="An asset whose read takes longer fails alone")
    # documents and video (spotbot/services/documents.py, video.py): each limit fails only the asset over it
    max_document_pages: int = Field(default=1000, ge=1, description="Documents with more pages fail without being read")
    render_dpi: int = Field(default=120, ge=36, le=600, description="Resolution scanned PDF pages are rendered at for OCR")
    max_render_pixels: int = Field(default=25_000_000, ge=1, description="A page larger than this at render_dpi fails its document")
    max_video_seconds: float = Field(default=3 * 3600.0, gt=0, description="Longer videos fail without being decoded")
    max_video_bytes: int = Field(
        default=16 * 2**30, ge=1, description="Larger videos fail without being read (videos are decoded from a file, not memory)"
    )
    spool_dir: Path | None = Field(
        default=None, description="Where a video from S3 is copied while it is decoded; default: the system's temporary folder"
    )
    max_frames_per_asset: int = Field(default=2000, ge=1, description="A video that samples more frames fails")
    video_sample_seconds: float = Field(default=2.0, gt=0, description="A video frame is sampled this often (plus at scene cuts)")
    video_dedup_fraction: float = Field(
        default=0.0003, ge=0, le=1, description="A sampled frame differing from the last kept one in fewer cells is skipped"
    )
    read_concurrency: int = Field(default=8, ge=1, description="Assets read and decoded ahead, per worker")
    write_batch: int = Field(default=256, ge=1, description="Tag records per index transaction")
    write_interval_seconds: float = Field(default=1.0, gt=0, description="Longest wait before buffered tags are written")
    s3_endpoint_url: str | None = Field(default=None, description="Custom S3 endpoint (MinIO, moto)")
    s3_connect_timeout_seconds: float = Field(default=5.0, gt=0, description="Longest wait to connect to S3, per attempt")
    s3_read_timeout_seconds: float = Field(default=30.0, gt=0, description="Longest wait for an S3 answer, per attempt")
    s3_max_attempts: int = Field(default=4, ge=1, description="Attempts per S3 request before the job stops as unavailable")
    models: str = Field(default="~/.spotbot/models", description="Model store: a folder or s3://bucket/prefix")

    # The cloud path: set by the stack on every Lambda and Batch job (AWS_ENDPOINT_URL points boto3 at moto in tests)
    region: str | None = Field(default=None, description="AWS region; default: boto3's")
    opensearch_endpoint: str | None = Field(default=None, description="OpenSearch domain endpoint (https://...)")
    opensearch_prefix: str = Field(default="spotbot", description="Prefix of the OpenSearch index names")
    opensearch_sigv4: bool = Field(default=True, description="Sign OpenSearch requests with SigV4 (off for local tests)")
    work_bucket: str | None = Field(default=None, description="Bucket for shard manifests and job state")
    state_machine_arn: str | None = Field(default=None, description="The tag-assets state machine")
    batch_job_queue: str | None = Field(default=None, description="AWS Batch job queue of the Spot workers")
    job_definitions: dict[str, str] = Field(
        default_factory=dict,
        description='Batch job definition per bot, JSON: {"car-model": "arn:...", "*": "arn:..."} ("*": every other bot)',
    )
    default_output: str | None = Field(
        default=None, description="Output prefix of cloud jobs that name none; default s3://<work bucket>/output"
    )
    source_buckets: list[str] = Field(
        default_factory=list,
        description='Buckets cloud jobs may read, JSON: ["my-assets"] (the work bucket\'s assets/ area is always granted)',
    )
    bot_image_repositories: list[str] = Field(
        default_factory=list,
        description="ECR repositories registered bots may run, JSON: [\"<account>.dkr.ecr.<region>.amazonaws.com/<repo>\"]",
    )
    endpoint_instance_types: list[str] = Field(
        default=["ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge", "ml.c5.2xlarge", "ml.g4dn.xlarge", "ml.g5.xlarge"],
        description="Instance types a registered bot's endpoint may use (SPOTBOT_ENDPOINT_INSTANCE_TYPE always may)",
    )
    admin_principal: str | None = Field(
        default=None, description="IAM principal ARN that may cancel or change any job or bot, not only its own"
    )
    watch_queue_url: str | None = Field(default=None, description="SQS queue of S3 ObjectCreated events for watches")
    watch_dead_letter_queue_url: str | None = Field(
        default=None, description="SQS queue where watch events that failed their retries go, with the error"
    )
    estimate_max_keys: int = Field(
        default=200_000, ge=1, description="POST /estimates lists at most this many keys; larger sources: an S3 Inventory manifest"
    )
    default_workers: int = Field(default=16, ge=1, le=1000, description="Concurrent Spot workers of cloud jobs that name none")
    sagemaker_role_arn: str | None = Field(
        default=None, description="IAM role SageMaker endpoints run as (pulls the image, reads the model data)"
    )
    builtin_bot_runtime: Literal["in-container", "sagemaker-endpoint"] = Field(
        default="in-container", description="Where built-in bots run: in the Spot worker, or behind a SageMaker endpoint"
    )
    serving_image_uri: str | None = Field(default=None, description="ECR image of bots/Dockerfile, for endpoint-served bots")
    endpoint_instance_type: str = Field(default="ml.m5.large", description="Endpoint instance type of bots that name none")
    scan_time_budget_seconds: float = Field(default=600.0, gt=0, description="Scanner stops and hands on a token after this")
    scan_parallelism: int = Field(default=64, ge=1, description="Concurrent ListObjectsV2 calls in the scanner (lean parser: ~3 ms CPU a page)")

    @field_validator("text_encodings", mode="before")
    @classmethod
    def _encodings(cls, value: Any) -> Any:
        """A JSON list, or the comma form utf-8,gb18030; every name must be a codec Python knows."""
        if isinstance(value, str):
            value = json.loads(value) if value.lstrip().startswith("[") else [v.strip() for v in value.split(",") if v.strip()]
        for name in value if isinstance(value, list) else []:
            try:
                codecs.lookup(name)
            except (LookupError, TypeError):
                raise ValueError(f"unknown text encoding {name!r}") from None
        return value

    @property
    def index_path(self) -> Path:
        return self.home.expanduser() / "index.sqlite3"

    @property
    def model_cache_dir(self) -> Path:
        return self.home.expanduser() / "model-cache"

    @property
    def locks_dir(self) -> Path:
        return self.home.expanduser() / "locks"


def environment_for(**values: object) -> dict[str, str]:
    """SPOTBOT_* variables that set these Settings fields (the deployed Lambdas' and Batch jobs' environment).

    Names are Settings field names; an unknown one is refused. Dicts and lists are JSON (how
    pydantic-settings reads complex fields), booleans `true`/`false`, None leaves the field out.
    """
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ValueError(f"not Settings fields: {', '.join(unknown)} (spotbot.settings.Settings names them)")
    prefix = Settings.model_config["env_prefix"]
    environment: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, (dict, list, tuple)):
            text = json.dumps(value if not isinstance(value, tuple) else list(value), separators=(",", ":"))
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        environment[f"{prefix}{name.upper()}"] = text
    return environment


# Settings per process role. Each cloud process loads its role at cold start: the fields it cannot
# run without are required there, so a stack that forgot one fails at once, naming the variable,
# rather than on the first request that needs it. A role is a Settings, so services take either.


class RoleSettingsError(RuntimeError):
    """A process started without the SPOTBOT_* variables its role needs."""


class _Role(Settings):
    role: ClassVar[str] = "process"


class ApiSettings(_Role):
    role: ClassVar[str] = "the API Lambda"
    opensearch_endpoint: str = Field(description="OpenSearch domain endpoint (https://...)")
    state_machine_arn: str = Field(description="The tag-assets state machine")
    batch_job_queue: str = Field(description="AWS Batch job queue of the Spot workers (cancel terminates its jobs)")


class ScannerSettings(_Role):
    role: ClassVar[str] = "the scanner Lambda"
    opensearch_endpoint: str = Field(description="OpenSearch domain endpoint (https://...)")
    work_bucket: str = Field(description="Bucket for shard manifests and job state")


class EndpointStepSettings(_Role):
    role: ClassVar[str] = "the endpoint Lambda"
    opensearch_endpoint: str = Field(description="OpenSearch domain endpoint (https://...)")
    # sagemaker_role_arn stays optional: a stack whose bots all run in the container needs none


class FinalizeSettings(_Role):
    role: ClassVar[str] = "the finalize Lambda"
    opensearch_endpoint: str = Field(description="OpenSearch domain endpoint (https://...)")


class RegistrySettings(_Role):
    role: ClassVar[str] = "the model registry Lambda"
    models: str = Field(pattern=r"^s3://", description="Model store: s3://<work bucket>/models")


class BudgetWatchSettings(ApiSettings):
    """What the job API's cancel needs: the budget watch stops a job over its budget the same way."""

    role: ClassVar[str] = "the budget watch Lambda"


class BatchWorkerSettings(_Role):
    role: ClassVar[str] = "the Batch worker"
    opensearch_endpoint: str = Field(description="OpenSearch domain endpoint (https://...)")


R = TypeVar("R", bound=_Role)


def load_role(role: type[R]) -> R:
    """The role's settings from the environment; RoleSettingsError naming each missing or bad SPOTBOT_* variable."""
    try:
        return role()
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            variable = "SPOTBOT_" + "_".join(map(str, problem["loc"])).upper()
            problems.append(f"{variable} is not set" if problem["type"] == "missing" else f"{variable}: {problem['msg']}")
        raise RoleSettingsError(f"{role.role} cannot start: {'; '.join(problems)}") from None
