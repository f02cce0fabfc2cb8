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
- Release. `release(job_id)` finds the endpoint on the job record (`ensure` records `endpoint_name`
  before it creates anything, so a failure at any point can find it). It is deleted (with its config
  and model) only when no other live job uses it. Live means the job's execution is RUNNING in Step
  Functions (the WorkflowEngine), not a status in the index: a job whose execution died without
  finalizing (stopped in the console, States.Runtime) pins no endpoint. Which endpoint another job
  uses is its `endpoint_name`; for an older record without one it is derived from its bot and model
  version, the way `ensure` names it. Releasing nothing, or an endpoint already gone, is a no-op,
  so the failure path may release twice.
- No assets, no endpoint: `ensure` given `tasks: 0` (the scan's task count) starts nothing.
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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

from spotbot.services.bots import BUILTIN_BOTS, UnknownBotError
from spotbot.domain.job import LIVE
from spotbot.domain import BadInputError, Job, JobStatus, UnavailableError
from spotbot.ports.control_planes import EndpointDefinition, EndpointHost, WorkflowEngine
from spotbot.services.models import ARCHIVE, ModelError, ModelRegistry
from spotbot.settings import Settings

log = logging.getLogger(__name__)

SAGEMAKER_ENDPOINT = "sagemaker-endpoint"
IN_CONTAINER = "in-container"
NOT_NEEDED = "NotNeeded"  # status of a bot that needs no endpoint
NOT_FOUND = "NotFound"  # status of an endpoint that does not exist (any more)
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
USABLE = frozenset({"InService", "Creating", "Updating", "SystemUpdating"})  # ensure takes these as they are
SETTLING = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed"})
LIVE_JOBS_SCANNED = 10_000  # newest jobs looked at for users of an endpoint
NAME_PREFIX = "spotbot-"
_DIGEST_CHARS = 10
_MAX_NAME = 63  # SageMaker model, endpoint config and endpoint names
_NOT_NAME_CHARS = re.compile(r"[^a-zA-Z0-9-]+")


class EndpointBusyError(UnavailableError):
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
    tasks: int | None = Field(default=None, ge=0)  # the scan's task count, when it ran first: 0 starts nothing


class DescribeEndpoint(_Request):
    action: Literal["describe"]
    endpoint_name: Annotated[str | None, BeforeValidator(_none_if_empty)] = None


class ReleaseEndpoint(_Request):
    """`{"action": "release", "job_id"}`: the endpoint comes from the job record; an explicit name also works."""

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
REQUEST = TypeAdapter(EndpointRequest)


class EndpointRequestError(BadInputError):
    """The step's input is not valid (no or unknown action, a missing field)."""


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

    def definition(self) -> EndpointDefinition:
        return EndpointDefinition(
            name=self.name,
            image_uri=self.image_uri,
            model_data=self.model_data,
            instance_type=self.instance_type,
            environment=self.environment,
            tags={"spotbot:bot": self.bot},
        )

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
    def get_job(self, job_id: str) -> Job | None: ...
    def save_job(self, job: Job) -> None: ...
    def list_jobs(self, limit: int = 50, *, consistent: bool = False) -> list[Job]: ...


ModelDataLookup = Callable[[str, str | None], str | None]  # (built-in bot, pinned version) -> s3:// archive or None


def model_data_from(registry: ModelRegistry) -> ModelDataLookup:
    """The S3 archive of a built-in bot's pinned (or current) version, when it lives in an S3 model store."""

    def lookup(bot: str, version: str | None) -> str | None:
        resolved = registry.resolve(bot, version)
        if resolved is None or not resolved.store.startswith("s3://"):
            return None  # none, or a packaged version: the serving image has it
        return f"{resolved.store.rstrip('/')}/{bot}/{resolved.version}/{ARCHIVE}"

    return lookup


class BotEndpoints:
    """Starts, describes and releases the SageMaker endpoints bots are served from."""

    def __init__(
        self,
        host: EndpointHost,
        index: EndpointJobIndex,
        workflow: WorkflowEngine,
        settings: Settings,
        builtin_model_data: ModelDataLookup | None = None,
    ) -> None:
        self.host = host
        self.index = index
        self.workflow = workflow  # says which jobs are live: their executions are RUNNING
        self.settings = settings
        self.builtin_model_data = builtin_model_data or (lambda bot, version: None)

    # which endpoint

    def spec_for(
        self, bot: str, model_version: str | None = None, registration: dict[str, Any] | None = None
    ) -> EndpointSpec | None:
        """The endpoint the bot needs for this model version; None when it runs in the container.

        registration: the bot as the job pinned it at submission; a bot replaced since does not change the job.
        """
        if bot in BUILTIN_BOTS:
            if self.settings.builtin_bot_runtime != SAGEMAKER_ENDPOINT:
                return None
            if not self.settings.serving_image_uri:
                raise BadInputError("SPOTBOT_SERVING_IMAGE_URI is not set: built-in bots on endpoints need the serving image")
            return EndpointSpec(
                bot=bot,
                image_uri=self.settings.serving_image_uri,
                model_data=self.builtin_model_data(bot, model_version),
                instance_type=self.settings.endpoint_instance_type,
            )
        doc = registration if registration is not None else self.index.get_bot(bot)
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
            raise BadInputError(f"bot {bot!r} is registered without image_uri or model_data: register it again (PUT /bots)")
        return EndpointSpec(
            bot=bot,
            image_uri=doc["image_uri"],
            model_data=doc["model_data"],
            instance_type=doc.get("instance_type") or self.settings.endpoint_instance_type,
        )

    # the three actions

    def ensure(self, job_id: str, bot: str, model_version: str | None = None, *, tasks: int | None = None) -> Ensured:
        """The bot's endpoint, created when there is none; none for in-container bots or a job with no tasks."""
        job = self.index.get_job(job_id)
        spec = self.spec_for(bot, model_version, job.bot_registration if job is not None else None)
        if spec is None:
            return Ensured(runtime=IN_CONTAINER, endpoint_name=None, status=NOT_NEEDED)
        if tasks == 0:
            log.info("no assets to tag: no endpoint started", extra={"bot": bot})
            return Ensured(runtime=SAGEMAKER_ENDPOINT, endpoint_name=None, status=NOT_NEEDED)
        name = spec.name
        self._record(job_id, name)  # first: a failure from here on can release it
        described = self.host.describe(name)
        status = described["status"] if described else None
        if status in USABLE:
            log.info("bot endpoint exists", extra={"endpoint_name": name, "endpoint_status": status})
            return Ensured(runtime=SAGEMAKER_ENDPOINT, endpoint_name=name, status=status)
        if status == "Failed":
            self.host.delete_endpoint(name)
            raise EndpointBusyError(
                f"endpoint {name} had failed ({described.get('failure_reason', 'no reason given')}); "
                "it is being deleted: retry to create it again"
            )
        if status is not None:  # Deleting, OutOfService, ...
            raise EndpointBusyError(f"endpoint {name} is {status}: retry once it is gone")
        if not self.settings.sagemaker_role_arn:
            raise BadInputError("SPOTBOT_SAGEMAKER_ROLE_ARN is not set: SageMaker endpoints need an execution role")
        self.host.create(spec.definition(), self.settings.sagemaker_role_arn)
        log.info("bot endpoint created", extra={"endpoint_name": name, "bot": bot, "for_job": job_id})
        return Ensured(runtime=SAGEMAKER_ENDPOINT, endpoint_name=name, status="Creating")

    def _record(self, job_id: str, endpoint_name: str) -> None:
        job = self.index.get_job(job_id)
        if job is None:
            log.warning("ensuring an endpoint for a job not in the index", extra={"endpoint_name": endpoint_name})
        elif job.endpoint_name != endpoint_name:
            self.index.save_job(job.record_endpoint(endpoint_name))

    def describe(self, endpoint_name: str | None) -> dict[str, Any]:
        """`{"endpoint_name", "status", "failure_reason"?}`; NotNeeded for no endpoint, NotFound for a missing one."""
        if endpoint_name is None:
            return {"endpoint_name": None, "status": NOT_NEEDED}
        described = self.host.describe(endpoint_name)
        return {"endpoint_name": endpoint_name} | (described or {"status": NOT_FOUND})

    def release(self, job_id: str, endpoint_name: str | None = None) -> Released:
        """Deletes the job's endpoint (named, or recorded on the job), its config and model, unless a live job uses it."""
        if endpoint_name is None:
            job = self.index.get_job(job_id)
            endpoint_name = job.endpoint_name if job is not None else None
        if endpoint_name is None:
            return Released(released=False, in_use_by=[])
        if not endpoint_name.startswith(NAME_PREFIX):
            raise BadInputError(f"{endpoint_name!r} is not an endpoint spotbot made (they start with {NAME_PREFIX!r})")
        in_use_by = self.jobs_using(endpoint_name, excluding=job_id)
        if in_use_by:
            log.info("bot endpoint kept", extra={"endpoint_name": endpoint_name, "in_use_by": in_use_by})
            return Released(released=False, in_use_by=in_use_by)
        described = self.host.describe(endpoint_name)
        status = described["status"] if described else None
        if status in SETTLING:
            raise EndpointBusyError(f"endpoint {endpoint_name} is {status}: retry the release once it settles")
        deleted = status not in (None, "Deleting") and self.host.delete_endpoint(endpoint_name)
        self.host.delete_leftovers(endpoint_name)  # a release cut short left the config and model behind
        log.info("bot endpoint released", extra={"endpoint_name": endpoint_name, "deleted": deleted})
        return Released(released=deleted, in_use_by=[])

    def jobs_using(self, endpoint_name: str, excluding: str | None = None) -> list[str]:
        """Live jobs other than `excluding` that use the endpoint: unfinished in the index, execution RUNNING."""
        derived: dict[tuple[str, str | None, str], str | None] = {}
        return sorted(
            job.job_id
            for job in self.index.list_jobs(LIVE_JOBS_SCANNED, consistent=True)
            if job.status in LIVE
            and job.job_id != excluding
            and self._uses(job, endpoint_name, derived)
            and self._is_live(job)
        )

    def _is_live(self, job: Job) -> bool:
        if not job.execution_arn:
            return False  # its execution never started; when it does, it ensures the endpoint again
        running = self.workflow.is_running(job.execution_arn)
        if not running:
            log.warning("job's execution is not running: it keeps no endpoint", extra={"other_job": job.job_id})
        return running

    def _uses(self, job: Job, endpoint_name: str, derived: dict[tuple[str, str | None, str], str | None]) -> bool:
        if job.endpoint_name is not None:
            return job.endpoint_name == endpoint_name
        key = (job.bot, job.model_version, json.dumps(job.bot_registration, sort_keys=True))  # jobs pin their own bot
        if key not in derived:
            try:
                spec = self.spec_for(job.bot, job.model_version, job.bot_registration)
            except (UnknownBotError, ModelError, ValueError) as error:
                # cannot tell (its bot is gone or changed): it keeps every endpoint of its bot, to be safe
                log.warning("cannot tell which endpoint a job uses", extra={"other_job": job.job_id, "error": str(error)})
                return is_endpoint_of(endpoint_name, job.bot)
            derived[key] = spec.name if spec else None
        return derived[key] == endpoint_name
