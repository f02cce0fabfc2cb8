"""In-memory control planes and job index, for testing the cloud services' rules with no AWS emulation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spotbot.domain import Job, JobCounts
from spotbot.domain.pricing import WorkerAttempt
from spotbot.ports.control_planes import ComputeJob, EndpointDefinition, Execution

STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:tag-assets"


class FakeWorkflow:
    """Executions by ARN; `start` refuses a second one of a name (returns it), like Step Functions."""

    def __init__(self) -> None:
        self.executions: dict[str, Execution] = {}
        self.started: list[tuple[str, dict[str, Any]]] = []

    def execution_arn(self, name: str) -> str:
        head, _, machine = STATE_MACHINE.rpartition(":stateMachine:")
        return f"{head}:execution:{machine}:{name}"

    def start(self, name: str, execution_input: dict[str, Any]) -> tuple[str, bool]:
        arn = self.execution_arn(name)
        if arn in self.executions:
            return arn, False
        self.executions[arn] = Execution(arn=arn, status="RUNNING", input=execution_input)
        self.started.append((name, execution_input))
        return arn, True

    def describe(self, execution_arn: str) -> Execution | None:
        return self.executions.get(execution_arn)

    def stop(self, execution_arn: str, *, error: str, cause: str) -> bool:
        if not self.is_running(execution_arn):
            return False
        self.end(execution_arn, "ABORTED", error=error, cause=cause)
        return True

    def is_running(self, execution_arn: str) -> bool:
        execution = self.executions.get(execution_arn)
        return execution is not None and execution.is_running

    def end(self, execution_arn: str, status: str, **more: Any) -> None:
        """The execution ends (or dies) on its own: SUCCEEDED, FAILED, ABORTED, TIMED_OUT."""
        old = self.executions[execution_arn]
        self.executions[execution_arn] = Execution(arn=old.arn, status=status, input=old.input, **more)


class FakeCompute:
    """Batch jobs, each tagged with the spotbot job it runs for."""

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[str, ComputeJob]] = {}
        self.terminated: dict[str, str] = {}
        self.attempts: dict[str, list[WorkerAttempt]] = {}  # by spotbot job

    def add(self, spotbot_job: str, name: str, status: str = "RUNNING") -> str:
        compute_id = f"batch-{len(self.jobs) + 1}"
        self.jobs[compute_id] = (spotbot_job, ComputeJob(job_id=compute_id, name=name, status=status))
        return compute_id

    def jobs_of(self, job_id: str) -> list[ComputeJob]:
        return [compute for owner, compute in self.jobs.values() if owner == job_id]

    def attempts_of(self, job_id: str) -> list[WorkerAttempt]:
        return list(self.attempts.get(job_id, []))

    def terminate(self, compute_job_id: str, reason: str) -> None:
        owner, compute = self.jobs[compute_job_id]
        self.jobs[compute_job_id] = (owner, ComputeJob(job_id=compute.job_id, name=compute.name, status="FAILED"))
        self.terminated[compute_job_id] = reason


class FakeEndpointHost:
    """Endpoints by name, InService once created; a status can be forced to test the settling states."""

    def __init__(self) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.definitions: dict[str, EndpointDefinition] = {}
        self.created: list[str] = []

    def describe(self, name: str) -> dict[str, Any] | None:
        found = self.endpoints.get(name)
        return dict(found) if found is not None else None

    def create(self, definition: EndpointDefinition, role_arn: str) -> None:
        self.definitions[definition.name] = definition
        self.endpoints.setdefault(definition.name, {"status": "InService"})
        self.created.append(definition.name)

    def delete_endpoint(self, name: str) -> bool:
        return self.endpoints.pop(name, None) is not None

    def delete_leftovers(self, name: str) -> None:
        self.definitions.pop(name, None)


@dataclass
class FakeIndex:
    """The parts of the cloud index the services use: jobs, bots, counts (set per job), labels."""

    jobs: dict[str, Job] = field(default_factory=dict)
    bots: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_counts: dict[str, JobCounts] = field(default_factory=dict)

    def save_job(self, job: Job) -> None:
        self.jobs[job.job_id] = job

    def get_job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def list_jobs(self, limit: int = 50, *, consistent: bool = False) -> list[Job]:
        return sorted(self.jobs.values(), key=lambda job: job.created_at, reverse=True)[:limit]

    def list_jobs_page(self, limit: int = 50, after: list[Any] | None = None, *, consistent: bool = False) -> list[tuple[Job, list[Any]]]:
        ordered = sorted(self.jobs.values(), key=lambda job: (job.created_at, job.job_id), reverse=True)
        positioned = [(job, [job.created_at.isoformat(), job.job_id]) for job in ordered]
        start = next((i + 1 for i, (_, position) in enumerate(positioned) if position == after), 0) if after else 0
        return positioned[start : start + limit]

    def counts(self, job_id: str, *, consistent: bool = True) -> JobCounts:
        return self.job_counts.get(job_id, JobCounts())

    def label_counts(self, job_id: str | None = None, bot: str | None = None) -> dict[str, int]:
        return {}

    def save_bot(self, doc: dict[str, Any]) -> None:
        self.bots[doc["name"]] = doc

    def get_bot(self, name: str) -> dict[str, Any] | None:
        return self.bots.get(name)

    def list_bots(self) -> list[dict[str, Any]]:
        return [self.bots[name] for name in sorted(self.bots)]

    def delete_bot(self, name: str) -> bool:
        return self.bots.pop(name, None) is not None

    def jobs_sharing_output(self, output: str, job_id: str) -> list[str]:
        """Other jobs whose area (<output>/<job_id>) holds this job's area or lies inside it."""
        area = f"{output.rstrip('/')}/{job_id}"
        return sorted(
            other.job_id
            for other in self.jobs.values()
            if other.job_id != job_id
            and (area.startswith(f"{other.output}/{other.job_id}/") or area == f"{other.output}/{other.job_id}"
                 or other.output == area or other.output.startswith(area + "/"))
        )
