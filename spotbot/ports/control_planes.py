"""The AWS control planes behind ports: the workflow engine (Step Functions), the compute queue
(AWS Batch) and the endpoint host (SageMaker). Services take these injected; spotbot.adapters.aws
implements them with boto3, and tests/fakes.py in memory, so the rules are tested with no AWS."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from spotbot.domain.pricing import WorkerAttempt


@dataclass(frozen=True)
class Execution:
    """One workflow execution as the engine describes it."""

    arn: str
    status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED | PENDING_REDRIVE
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    error: str | None = None
    cause: str | None = None
    input: dict[str, Any] | None = None  # what it was started with

    @property
    def is_running(self) -> bool:
        return self.status == "RUNNING"


class WorkflowEngine(Protocol):
    """Starts and stops the tag-assets executions (Step Functions)."""

    def execution_arn(self, name: str) -> str:
        """The ARN an execution of this name has (or would have)."""

    def start(self, name: str, execution_input: dict[str, Any]) -> tuple[str, bool]:
        """(execution ARN, created); an execution of that name already there is returned, not started twice."""

    def describe(self, execution_arn: str) -> Execution | None:
        """None when there is no such execution."""

    def stop(self, execution_arn: str, *, error: str, cause: str) -> bool:
        """Stops it if it is running; True when this call stopped it."""

    def is_running(self, execution_arn: str) -> bool: ...


@dataclass(frozen=True)
class ComputeJob:
    """One Batch job (an array parent stands for its children)."""

    job_id: str
    name: str
    status: str  # SUBMITTED | PENDING | RUNNABLE | STARTING | RUNNING | SUCCEEDED | FAILED

    @property
    def is_finished(self) -> bool:
        return self.status in ("SUCCEEDED", "FAILED")


class ComputeQueue(Protocol):
    """The Spot workers' queue (AWS Batch)."""

    def jobs_of(self, job_id: str) -> list[ComputeJob]:
        """The Batch jobs of exactly this spotbot job (never another job whose id starts the same)."""

    def terminate(self, compute_job_id: str, reason: str) -> None: ...

    def attempts_of(self, job_id: str) -> list[WorkerAttempt]:
        """Every attempt of every Batch job of this spotbot job (each child of an array job), for its cost."""


@dataclass(frozen=True)
class EndpointDefinition:
    """What one endpoint runs; the model, endpoint config and endpoint all take `name`."""

    name: str
    image_uri: str
    model_data: str | None
    instance_type: str
    environment: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class EndpointHost(Protocol):
    """Where bot endpoints run (SageMaker real-time endpoints)."""

    def describe(self, name: str) -> dict[str, Any] | None:
        """`{"status", "failure_reason"?}`; None when there is no endpoint of that name."""

    def create(self, definition: EndpointDefinition, role_arn: str) -> None:
        """Creates what is missing of model, config and endpoint; a racing creator of the same name is fine."""

    def delete_endpoint(self, name: str) -> bool:
        """False when there was none."""

    def delete_leftovers(self, name: str) -> None:
        """Deletes the endpoint config and model of that name, if any (a release cut short leaves them)."""
