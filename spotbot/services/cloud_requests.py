"""The bodies of the cloud API's requests (POST /jobs, POST and PUT /bots), validated by pydantic,
and the error a request that validated but cannot be done raises (HTTP 400, naming the field)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from spotbot.domain import JOB_ID_PATTERN, FieldError, validate_job_id

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


class InvalidRequest(FieldError):
    """A request that validated as JSON but cannot be done; `field` names the part at fault (body.bot)."""


MAX_URI_BYTES = 1024  # S3's own limit on a key; a job record stays small, so pages of jobs stay bounded
S3_URI_SCHEMA = {"pattern": S3_URI_PATTERN.pattern, "maxLength": MAX_URI_BYTES}  # what the document tells clients


def check_s3_uri(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value.encode("utf-8", "surrogatepass")) > MAX_URI_BYTES:
        raise ValueError(f"is {len(value.encode('utf-8', 'surrogatepass'))} bytes: an S3 URI here is at most {MAX_URI_BYTES}")
    if not S3_URI_PATTERN.match(value):
        shown = value if len(value) <= 100 else value[:100] + "…"
        raise ValueError(
            f"{shown!r} is not an S3 URI: use s3://bucket/prefix (a bucket name is 3-63 lower-case letters, digits, '.' or '-')"
        )
    return value


class JobSubmission(BaseModel):
    """The body of POST /jobs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str = Field(
        description="The assets to tag, recursively: in a bucket the stack grants (SPOTBOT_SOURCE_BUCKETS)",
        examples=["s3://my-assets/photos/"],
        json_schema_extra=S3_URI_SCHEMA,
    )
    bot: str = Field(
        min_length=1,
        max_length=63,
        pattern=BOT_NAME_PATTERN.pattern,
        description="A built-in bot or a registered one (GET /bots)",
        examples=["scene-text"],
    )
    output: str | None = Field(
        default=None,
        description="Where JSON Lines go (<output>/<job_id>/), inside the output bucket; default: the stack's output prefix",
        examples=["s3://my-results/tags"],
        json_schema_extra={"anyOf": [{"type": "string", **S3_URI_SCHEMA}, {"type": "null"}]},
    )
    workers: int | None = Field(default=None, ge=1, le=1000, description="Most Spot workers at once")
    shard_size: int | None = Field(default=None, ge=1, le=100_000, description="Assets per shard; default: automatic")
    model_version: str | None = Field(default=None, min_length=1, max_length=128, description="Pin a model version")
    job_id: str | None = Field(
        default=None,
        description="Name the job (1-80 letters, digits, '-', '_'); default: from the idempotency key, or new",
        json_schema_extra={"anyOf": [{"type": "string", "pattern": JOB_ID_PATTERN.pattern}, {"type": "null"}]},
    )
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=256, description="Same key twice, one job (or the Idempotency-Key header)"
    )
    max_cost: float | None = Field(
        default=None,
        ge=0,
        le=1e9,
        description="Budget in USD: the job fails before any worker starts if the planned tasks are estimated above it, "
        "and stops (resumable) when its measured cost crosses it",
    )
    incremental: bool = Field(
        default=True,
        description="Copy an earlier job's record of an asset whose etag, bot and model version are unchanged; "
        "false: predict every asset again",
    )

    _s3_uris = field_validator("source", "output")(check_s3_uri)

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, value: str | None) -> str | None:
        return validate_job_id(value) if value is not None else None


# BotRegistration's fields that must match a pattern: (the pattern, what the error says; {value!r} is the value)
_PATTERNED_FIELDS = {
    "name": (BOT_NAME_PATTERN, "bot name {value!r} is not valid: use 1-63 lower-case letters, digits or '-', not at either end"),
    "image_uri": (
        ECR_IMAGE_URI_PATTERN,
        "{value!r} is not an ECR image URI: use <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> or ...@sha256:<digest>",
    ),
    "content_type": (CONTENT_TYPE_PATTERN, "{value!r} is not a content type, e.g. image/jpeg"),
}


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

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str) -> str:
        # a Batch job cannot swap its image per job, so an in-container bot would run in the stock worker image
        if value == "in-container":
            raise ValueError(
                "in-container registrations are not supported: the Spot workers run the stack's worker image, which "
                "cannot load your image; register runtime sagemaker-endpoint (your image serves the bot), or build "
                "your bot into the worker image and submit jobs with bot \"module:Class\""
            )
        return value

    @field_validator(*_PATTERNED_FIELDS)
    @classmethod
    def _matches_pattern(cls, value: str, info: ValidationInfo) -> str:
        pattern, problem = _PATTERNED_FIELDS[info.field_name]
        if not pattern.match(value):
            raise ValueError(problem.format(value=value))
        return value

    @field_validator("file_types")
    @classmethod
    def _file_types(cls, values: list[str]) -> list[str]:
        lowered = [value.lower() for value in values]
        for value in lowered:
            if not FILE_TYPE_PATTERN.match(value):
                raise ValueError(f"file type {value!r} is not an extension: start with '.', then letters or digits (.jpg)")
        return list(dict.fromkeys(lowered))

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
