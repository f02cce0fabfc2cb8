"""Bot endpoints: the SageMaker real-time endpoint a job's bot is served from, started before the
tagging and released after it (the "Start bot endpoint" and "Release endpoint" steps).

- Which runtime. Built-in bots run in the Spot worker ("in-container") unless
  SPOTBOT_BUILTIN_BOT_RUNTIME=sagemaker-endpoint; then they are served by the bots/Dockerfile image
  (SPOTBOT_SERVING_IMAGE_URI) with the model version's archive as model data when it lives in an S3
  model store (else none: the image serves its packaged version). A registered bot (the bot
  registry) says its runtime; "sagemaker-endpoint" bots name their image, model data and instance
  type. A bot that is neither raises spotbot.bot.UnknownBotError.
- One endpoint per content. The Model, EndpointConfig and Endpoint share one name,
  `spotbot-<bot>-<sha256 of image, model data, instance type, environment>[:10]`, so jobs of the
  same bot and model share an endpoint, and a new image or model gets a new one. `ensure` creates
  only what is missing and takes an endpoint that is InService, Creating or Updating as it is.
- Release. An endpoint is deleted (with its config and model) only when no other live job
  (SUBMITTED or RUNNING) uses it. Which endpoint a job uses is its `endpoint_name`, once Job records
  it; until then it is derived from the job's bot and model version, the same way `ensure` named it.
  Releasing nothing, or an endpoint already gone, is a no-op, so the failure path may release twice.
- Retryable states raise EndpointBusyError: `ensure` on an endpoint being deleted (or failed, which
  it deletes), `release` on one still being created or updated. The state machine retries both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from botocore.exceptions import ClientError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from spotbot.services.bots import BUILTIN_BOTS, UnknownBotError
from spotbot.domain import Job, JobStatus
from spotbot.services.models import ARCHIVE, ModelError
from spotbot.settings import Settings

log = logging.getLogger(__name__)

SAGEMAKER_ENDPOINT = "sagemaker-endpoint"
IN_CONTAINER = "in-container"
NOT_NEEDED = "NotNeeded"  # status of a bot that needs no endpoint
NOT_FOUND = "NotFound"  # status of an endpoint that does not exist (any more)
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
USABLE = frozenset({"InService", "Creating", "Updating", "SystemUpdating"})  # ensure takes these as they are
SETTLING = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed"})
LIVE = (JobStatus.SUBMITTED, JobStatus.RUNNING)
LIVE_JOBS_SCANNED = 10_000  # newest jobs looked at for users of an endpoint
NAME_PREFIX = "spotbot-"
_DIGEST_CHARS = 10
_MAX_NAME = 63  # SageMaker model, endpoint config and endpoint names
_NOT_NAME_CHARS = re.compile(r"[^a-zA-Z0-9-]+")


class EndpointBusyError(RuntimeError):
    """The endpoint is between states (being deleted, created or updated): retry the step shortly."""


# the step's input


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value  # the state machine passes "" for "none": Batch env values are strings


class EnsureEndpoint(_Request):
    action: Literal["ensure"]
    job_id: str
    bot: str = Field(min_length=1)
    model_version: Annotated[str | None, BeforeValidator(_none_if_empty)] = None


class DescribeEndpoint(_Request):
    action: Literal["describe"]
    endpoint_name: Annotated[str | None, BeforeValidator(_none_if_empty)] = None


class ReleaseEndpoint(_Request):
    action: Literal["release"]
    job_id: str
    endpoint_name: Annotated[str | None, BeforeValidator(_none_if_empty)] = None
    state: dict[str, Any] | None = None  # on the failure path: the whole execution state, endpoint or not

    @model_validator(mode="after")
    def _endpoint_from_state(self) -> "ReleaseEndpoint":
        if self.endpoint_name is None and self.state:
            found = ((self.state.get("prepared") or {}).get("endpoint") or {}).get("endpoint_name")
            if found:
                object.__setattr__(self, "endpoint_name", found)
        return self


EndpointRequest = Annotated[EnsureEndpoint | DescribeEndpoint | ReleaseEndpoint, Field(discriminator="action")]
_REQUEST = TypeAdapter(EndpointRequest)


class EndpointRequestError(ValueError):
    """The step's input is not valid (no or unknown action, a missing field)."""


def parse_request(event: dict[str, Any]) -> EnsureEndpoint | DescribeEndpoint | ReleaseEndpoint:
    try:
        return _REQUEST.validate_python(event)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors())
        raise EndpointRequestError(f"endpoint step input is not valid: {problems}") from None


# what a bot is served from


@dataclass(frozen=True)
class EndpointSpec:
    """What a bot's endpoint runs; its name is a digest of it, so equal specs share one endpoint."""

    bot: str
    image_uri: str
    model_data: str | None
    instance_type: str

    @property
    def environment(self) -> dict[str, str]:
        return {"SPOTBOT_BOT": self.bot}

    @property
    def name(self) -> str:
        content = {
            "image": self.image_uri,
            "model_data": self.model_data,
            "instance_type": self.instance_type,
            "environment": self.environment,
        }
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:_DIGEST_CHARS]
        return f"{name_stem(self.bot)}-{digest}"


def name_stem(bot: str) -> str:
    """`spotbot-<bot>`, cut so that the stem, '-' and the digest fit SageMaker's 63 characters."""
    room = _MAX_NAME - len(NAME_PREFIX) - 1 - _DIGEST_CHARS
    bot_part = _NOT_NAME_CHARS.sub("-", bot)[:room].strip("-") or "bot"
    return f"{NAME_PREFIX}{bot_part}"


def is_endpoint_of(endpoint_name: str, bot: str) -> bool:
    stem, _, digest = endpoint_name.rpartition("-")
    return stem == name_stem(bot) and len(digest) == _DIGEST_CHARS


@dataclass(frozen=True)
class Ensured:
    runtime: str
    endpoint_name: str | None
    status: str

    def as_output(self) -> dict[str, Any]:
        # "" rather than null: the name goes into the Batch job's environment, whose values are strings
        return {"runtime": self.runtime, "endpoint_name": self.endpoint_name or "", "status": self.status}


@dataclass(frozen=True)
class Released:
    released: bool  # this call deleted the endpoint
    in_use_by: list[str]  # live jobs that keep it

    def as_output(self) -> dict[str, Any]:
        return {"released": self.released, "in_use_by": self.in_use_by}


class EndpointJobIndex(Protocol):
    """What endpoints need of the cloud index: the bot registry and the jobs."""

    def get_bot(self, name: str) -> dict[str, Any] | None: ...
    def list_jobs(self, limit: int = 50, *, consistent: bool = False) -> list[Job]: ...


ModelDataLookup = Callable[[str, str | None], str | None]  # (built-in bot, pinned version) -> s3:// archive or None


def model_data_from_registry(settings: Settings) -> ModelDataLookup:
    """The S3 archive of a built-in bot's pinned (or current) version, when it lives in an S3 model store."""

    def lookup(bot: str, version: str | None) -> str | None:
        from spotbot.adapters.wiring import open_model_registry

        registry, _ = open_model_registry(settings)
        resolved = registry.resolve(bot, version)
        if resolved is None or not resolved.store.startswith("s3://"):
            return None  # none, or a packaged version: the serving image has it
        return f"{resolved.store.rstrip('/')}/{bot}/{resolved.version}/{ARCHIVE}"

    return lookup


class BotEndpoints:
    """Starts, describes and releases the SageMaker endpoints bots are served from."""

    def __init__(
        self,
        sagemaker: Any,  # boto3 "sagemaker" client
        index: EndpointJobIndex,
        settings: Settings,
        builtin_model_data: ModelDataLookup | None = None,
    ) -> None:
        self.sagemaker = sagemaker
        self.index = index
        self.settings = settings
        self.builtin_model_data = builtin_model_data or (lambda bot, version: None)

    @classmethod
    def connect(cls, settings: Settings) -> BotEndpoints:
        import boto3

        from spotbot.adapters.wiring import open_cloud_index

        session = boto3.Session(region_name=settings.region) if settings.region else boto3.Session()
        return cls(
            session.client("sagemaker"),
            open_cloud_index(settings),
            settings,
            model_data_from_registry(settings),
        )

    # which endpoint

    def spec_for(self, bot: str, model_version: str | None = None) -> EndpointSpec | None:
        """The endpoint the bot needs for this model version; None when it runs in the container."""
        if bot in BUILTIN_BOTS:
            if self.settings.builtin_bot_runtime != SAGEMAKER_ENDPOINT:
                return None
            if not self.settings.serving_image_uri:
                raise ValueError("SPOTBOT_SERVING_IMAGE_URI is not set: built-in bots on endpoints need the serving image")
            return EndpointSpec(
                bot=bot,
                image_uri=self.settings.serving_image_uri,
                model_data=self.builtin_model_data(bot, model_version),
                instance_type=self.settings.endpoint_instance_type,
            )
        doc = self.index.get_bot(bot)
        if doc is None:
            raise UnknownBotError(
                f"unknown bot {bot!r}: built-in bots are {', '.join(sorted(BUILTIN_BOTS))}; GET /bots lists the registered ones"
            )
        if doc.get("runtime") != SAGEMAKER_ENDPOINT:
            return None
        registered_version = doc.get("model_version")
        if model_version is not None and model_version != registered_version:
            raise ModelError(
                f"bot {bot!r} is registered with model version {registered_version!r}, not {model_version!r}: "
                "register the version you want (PUT /bots) or do not pin one"
            )
        if not doc.get("image_uri") or not doc.get("model_data"):
            raise ValueError(f"bot {bot!r} is registered without image_uri or model_data: register it again (PUT /bots)")
        return EndpointSpec(
            bot=bot,
            image_uri=doc["image_uri"],
            model_data=doc["model_data"],
            instance_type=doc.get("instance_type") or self.settings.endpoint_instance_type,
        )

    # the three actions

    def ensure(self, job_id: str, bot: str, model_version: str | None = None) -> Ensured:
        """The bot's endpoint, created when there is none; not needed for bots that run in the container."""
        spec = self.spec_for(bot, model_version)
        if spec is None:
            return Ensured(runtime=IN_CONTAINER, endpoint_name=None, status=NOT_NEEDED)
        name = spec.name
        described = self._describe(name)
        status = described.get("EndpointStatus") if described else None
        if status in USABLE:
            log.info("bot endpoint exists", extra={"endpoint_name": name, "endpoint_status": status})
            return Ensured(runtime=SAGEMAKER_ENDPOINT, endpoint_name=name, status=status)
        if status == "Failed":
            self._ignore_missing(self.sagemaker.delete_endpoint, EndpointName=name)
            raise EndpointBusyError(
                f"endpoint {name} had failed ({described.get('FailureReason', 'no reason given')}); "
                "it is being deleted: retry to create it again"
            )
        if status is not None:  # Deleting, OutOfService, ...
            raise EndpointBusyError(f"endpoint {name} is {status}: retry once it is gone")
        self._create(spec)
        log.info("bot endpoint created", extra={"endpoint_name": name, "bot": bot, "for_job": job_id})
        return Ensured(runtime=SAGEMAKER_ENDPOINT, endpoint_name=name, status="Creating")

    def describe(self, endpoint_name: str | None) -> dict[str, Any]:
        """`{"endpoint_name", "status", "failure_reason"?}`; NotNeeded for no endpoint, NotFound for a missing one."""
        if endpoint_name is None:
            return {"endpoint_name": None, "status": NOT_NEEDED}
        described = self._describe(endpoint_name)
        if described is None:
            return {"endpoint_name": endpoint_name, "status": NOT_FOUND}
        answer = {"endpoint_name": endpoint_name, "status": described["EndpointStatus"]}
        if described.get("FailureReason"):
            answer["failure_reason"] = described["FailureReason"]
        return answer

    def release(self, job_id: str, endpoint_name: str | None) -> Released:
        """Deletes the endpoint, its config and its model, unless another live job uses it."""
        if endpoint_name is None:
            return Released(released=False, in_use_by=[])
        if not endpoint_name.startswith(NAME_PREFIX):
            raise ValueError(f"{endpoint_name!r} is not an endpoint spotbot made (they start with {NAME_PREFIX!r})")
        in_use_by = self.jobs_using(endpoint_name, excluding=job_id)
        if in_use_by:
            log.info("bot endpoint kept", extra={"endpoint_name": endpoint_name, "in_use_by": in_use_by})
            return Released(released=False, in_use_by=in_use_by)
        described = self._describe(endpoint_name)
        status = described.get("EndpointStatus") if described else None
        if status in SETTLING:
            raise EndpointBusyError(f"endpoint {endpoint_name} is {status}: retry the release once it settles")
        deleted = status not in (None, "Deleting") and self._ignore_missing(
            self.sagemaker.delete_endpoint, EndpointName=endpoint_name
        )
        # the config and model share the endpoint's name; a release cut short left them behind
        self._ignore_missing(self.sagemaker.delete_endpoint_config, EndpointConfigName=endpoint_name)
        self._ignore_missing(self.sagemaker.delete_model, ModelName=endpoint_name)
        log.info("bot endpoint released", extra={"endpoint_name": endpoint_name, "deleted": deleted})
        return Released(released=deleted, in_use_by=[])

    def jobs_using(self, endpoint_name: str, excluding: str | None = None) -> list[str]:
        """Live jobs (SUBMITTED or RUNNING) other than `excluding` that use the endpoint."""
        derived: dict[tuple[str, str | None], str | None] = {}
        return sorted(
            job.job_id
            for job in self.index.list_jobs(LIVE_JOBS_SCANNED, consistent=True)
            if job.status in LIVE and job.job_id != excluding and self._uses(job, endpoint_name, derived)
        )

    def _uses(self, job: Job, endpoint_name: str, derived: dict[tuple[str, str | None], str | None]) -> bool:
        recorded = getattr(job, "endpoint_name", None)  # once Job records it, that is the answer
        if recorded is not None:
            return recorded == endpoint_name
        key = (job.bot, job.model_version)
        if key not in derived:
            try:
                spec = self.spec_for(job.bot, job.model_version)
            except (UnknownBotError, ModelError, ValueError) as error:
                # cannot tell (its bot is gone or changed): it keeps every endpoint of its bot, to be safe
                log.warning("cannot tell which endpoint a job uses", extra={"other_job": job.job_id, "error": str(error)})
                return is_endpoint_of(endpoint_name, job.bot)
            derived[key] = spec.name if spec else None
        return derived[key] == endpoint_name

    # SageMaker

    def _create(self, spec: EndpointSpec) -> None:
        if not self.settings.sagemaker_role_arn:
            raise ValueError("SPOTBOT_SAGEMAKER_ROLE_ARN is not set: SageMaker endpoints need an execution role")
        name = spec.name
        tags = [{"Key": "spotbot:bot", "Value": spec.bot}]
        container: dict[str, Any] = {"Image": spec.image_uri, "Environment": spec.environment}
        if spec.model_data:
            container["ModelDataUrl"] = spec.model_data
        if not self._exists(self.sagemaker.describe_model, ModelName=name):
            self._ignore_existing(
                self.sagemaker.create_model,
                ModelName=name,
                PrimaryContainer=container,
                ExecutionRoleArn=self.settings.sagemaker_role_arn,
                Tags=tags,
            )
        if not self._exists(self.sagemaker.describe_endpoint_config, EndpointConfigName=name):
            self._ignore_existing(
                self.sagemaker.create_endpoint_config,
                EndpointConfigName=name,
                ProductionVariants=[
                    {
                        "VariantName": "bot",
                        "ModelName": name,
                        "InstanceType": spec.instance_type,
                        "InitialInstanceCount": 1,
                    }
                ],
                Tags=tags,
            )
        # a racing job creating the same endpoint is fine: it is the same content
        self._ignore_existing(self.sagemaker.create_endpoint, EndpointName=name, EndpointConfigName=name, Tags=tags)

    def _describe(self, endpoint_name: str) -> dict[str, Any] | None:
        try:
            return self.sagemaker.describe_endpoint(EndpointName=endpoint_name)
        except ClientError as error:
            if _is_missing(error):
                return None
            raise

    def _exists(self, describe: Callable[..., Any], **names: str) -> bool:
        return self._ignore_missing(describe, **names)  # a describe that finds nothing is a missing one

    @staticmethod
    def _ignore_missing(call: Callable[..., Any], **kwargs: Any) -> bool:
        """Calls a describe or a delete; False when there was nothing by that name."""
        try:
            call(**kwargs)
        except ClientError as error:
            if _is_missing(error):
                return False
            raise
        return True

    @staticmethod
    def _ignore_existing(call: Callable[..., Any], **kwargs: Any) -> None:
        try:
            call(**kwargs)
        except ClientError as error:
            if not _already_exists(error):
                raise


def _code_and_message(error: ClientError) -> tuple[str, str]:
    details = error.response.get("Error", {})
    return str(details.get("Code", "")), str(details.get("Message", ""))


def _is_missing(error: ClientError) -> bool:
    code, message = _code_and_message(error)
    return code in ("ValidationException", "ValidationError", "ResourceNotFound") and "could not find" in message.lower()


def _already_exists(error: ClientError) -> bool:
    code, message = _code_and_message(error)
    return code in ("ValidationException", "ValidationError", "ResourceInUse") and "already exist" in message.lower()
