"""Jobs in AWS: the service functions behind the REST API (lambdas/api).

Submit a job (record it, start its Step Functions execution), look at it (counts from the index,
the execution's status), cancel it (stop the execution, terminate its Batch jobs, release its
endpoint), and resume it (a new execution that tags what is missing). Each function takes a
`CloudJobs` -- the tag index and the control-plane ports, built by spotbot.adapters.wiring -- and
raises spotbot.domain.errors, which the handler turns into HTTP answers.

Submitting (idempotency, what a job may read and write, pinning its bot) is spotbot.services.submission.
Only the principal that submitted a job, or SPOTBOT_ADMIN_PRINCIPAL, may cancel or resume it (403).
A resume runs as `<job_id>-r<n>`, with the bot registration the job was submitted with.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from spotbot.domain.job import LIVE
from spotbot.domain import JOB_ID_PATTERN, ConflictError, Job, JobCounts, JobStatus, NotFoundError
from spotbot.ports import SearchHit, SearchQuery, TagIndex
from spotbot.ports.control_planes import ComputeQueue, WorkflowEngine
from spotbot.services.bot_registry import resolve_cloud_bot
from spotbot.services.grants import check_owner
from spotbot.settings import Settings

log = logging.getLogger(__name__)

RESUMABLE = (JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED)
_RESUME_SUFFIX = re.compile(r"-r(\d+)$")


# configuration


DEFAULT_JOB_DEFINITION = "*"  # the key of SPOTBOT_JOB_DEFINITIONS for every bot without its own


def job_definition_for(settings: Settings, bot: str) -> str:
    """The Batch job definition a bot's workers run as: its own (a GPU one, say), else the default."""
    return settings.job_definitions.get(bot) or settings.job_definitions.get(DEFAULT_JOB_DEFINITION, "")


# the index and the control planes


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
    def list_jobs_page(self, limit: int = 50, after: list[Any] | None = None) -> list[tuple[Job, list[Any]]]: ...
    def counts_of_jobs(self, job_ids: list[str]) -> dict[str, JobCounts]: ...
    def jobs_sharing_output(self, output: str, job_id: str) -> list[str]: ...


class EndpointReleaser(Protocol):
    """What cancel needs of spotbot.services.endpoints.BotEndpoints."""

    def release(self, job_id: str, endpoint_name: str | None = None) -> Any: ...


@dataclass
class CloudJobs:
    """The tag index and the control planes the job API works with; one per Lambda container."""

    index: CloudTagIndex
    workflow: WorkflowEngine
    compute: ComputeQueue
    settings: Settings
    endpoints: EndpointReleaser | None = None  # None: the stack serves no bot from an endpoint


# jobs


def resume_job(jobs: CloudJobs, job_id: str, principal: str | None = None, max_cost: float | None = None) -> Job:
    """Starts a new execution `<job_id>-r<n>` of a PARTIAL, FAILED or CANCELLED job; it tags only what is missing.

    The execution gets the input of the job's last one (same bot config, shard size, job definition);
    the scanner keeps the tasks already done. A job whose execution still runs cannot be resumed (409).
    max_cost: a new budget, e.g. for a job its old one stopped.
    """
    job = _job(jobs, job_id)
    check_owner(jobs.settings, f"job {job_id}", job.created_by, principal)
    previous = jobs.workflow.describe(job.execution_arn) if job.execution_arn else None
    if previous is not None and previous.is_running:
        raise ConflictError(f"job {job_id} is still running (its execution is RUNNING): cancel it first, or wait")
    if job.status not in RESUMABLE and not (job.status in LIVE and previous is not None):
        raise ConflictError(
            f"job {job_id} is {job.status.value}: only PARTIAL, FAILED or CANCELLED jobs (or one whose execution died) resume"
        )
    if previous is not None and previous.input:
        execution_input = dict(previous.input)
    else:
        execution_input = execution_input_for(jobs, job, None)
    execution_input["job_id"] = job.job_id
    if max_cost is not None:  # a new budget: the scanner and the budget stop read it on the record
        job = job.model_copy(update={"max_cost": max_cost})
    name = f"{job_id}-r{_resume_number(job) + 1}"
    execution_arn, created = jobs.workflow.start(name, execution_input)
    resumed = job.start(jobs.index.counts(job_id)).model_copy(update={"execution_arn": execution_arn})
    jobs.index.save_job(resumed)
    log.info("job resumed", extra={"execution_arn": execution_arn, "new_execution": created})
    return resumed


def _resume_number(job: Job) -> int:
    """How many resumes the job has had: its execution's name ends in -r<n> after the n-th."""
    name = (job.execution_arn or "").rpartition(":")[2]
    match = _RESUME_SUFFIX.search(name) if name != job.job_id else None
    return int(match.group(1)) if match else 0


def request_of(job: Job, shard_size: int | None) -> dict[str, Any]:
    """What a submission asked for, defaults resolved: what two requests for one job id must agree on."""
    return {
        "bot": job.bot,
        "source": job.source,
        "output": job.output,
        "workers": job.workers,
        "shard_size": shard_size,
        "model_version": job.model_version,
        "incremental": job.incremental,
        "max_cost": job.max_cost,
    }


def execution_input_for(jobs: CloudJobs, job: Job, shard_size: int | None) -> dict[str, Any]:
    """The state machine's input for a job: its request, its pinned bot registration, who asked."""
    return {
        "job_id": job.job_id,
        "bot": job.bot,
        "source": job.source,
        "output": job.output,
        "workers": job.workers,
        "shard_size": shard_size,
        "model_version": job.model_version or "",  # "": each worker takes the current version
        "job_definition": job_definition_for(jobs.settings, job.bot),
        "bot_config": job.bot_registration or resolve_cloud_bot(jobs.index, job.bot),  # pinned at submission
        "created_by": job.created_by,
        "request": request_of(job, shard_size),
    }


def console_url(execution_arn: str) -> str:
    region = execution_arn.split(":")[3]
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


def accepted(job: Job) -> dict[str, Any]:
    """The answer to POST /jobs (and to a resume)."""
    return {
        "job_id": job.job_id,
        "status": job.status.value,
        "status_url": f"/jobs/{job.job_id}",
        "execution_arn": job.execution_arn,
        "console_url": console_url(job.execution_arn) if job.execution_arn else None,
    }


def job_detail(jobs: CloudJobs, job_id: str) -> dict[str, Any]:
    """The job with live counts, its label counts, and its execution's status."""
    job = _job(jobs, job_id)
    job = job.model_copy(update={"counts": jobs.index.counts(job_id, consistent=False)})  # near-real-time: no refresh
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
        raise NotFoundError(f"no job {job_id!r}; GET /jobs lists the jobs")
    return job


def _execution(jobs: CloudJobs, execution_arn: str) -> dict[str, Any]:
    described = jobs.workflow.describe(execution_arn)
    if described is None:
        return {"status": "UNKNOWN", "error": "ExecutionDoesNotExist"}
    execution: dict[str, Any] = {"status": described.status}
    for name, value in (("started_at", described.started_at), ("stopped_at", described.stopped_at)):
        if value is not None:
            execution[name] = value.isoformat()
    for key, value in (("error", described.error), ("cause", described.cause)):
        if value:
            execution[key] = value
    return execution


def cancel_job(jobs: CloudJobs, job_id: str, principal: str | None = None) -> dict[str, Any]:
    """Stops the execution, terminates the job's unfinished Batch jobs, marks it CANCELLED, releases its endpoint.

    A stopped execution runs no Catch, so the release is done here. Cancelling a cancelled job again
    is harmless (and releases again, a no-op); a finished job cannot be cancelled (JobFinishedError, 409).
    """
    job = _job(jobs, job_id)
    check_owner(jobs.settings, f"job {job_id}", job.created_by, principal)
    cancelled = job.cancel(jobs.index.counts(job_id))  # raises JobFinishedError first: nothing is stopped
    if job.execution_arn:
        jobs.workflow.stop(job.execution_arn, error="spotbot.Cancelled", cause=f"DELETE /jobs/{job_id}")
    terminated = terminate_compute_jobs(jobs, job_id)
    if cancelled is not job:
        jobs.index.save_job(cancelled)
    released = jobs.endpoints.release(job_id, job.endpoint_name) if jobs.endpoints is not None else None
    log.info("job cancelled", extra={"terminated_batch_jobs": terminated, "endpoint_name": job.endpoint_name})
    detail = job_detail(jobs, job_id)
    detail["terminated_batch_jobs"] = terminated
    if released is not None:
        detail["endpoint_released"] = bool(getattr(released, "released", False))
    return detail


def terminate_compute_jobs(jobs: CloudJobs, job_id: str) -> list[str]:
    """Terminates this job's unfinished Batch jobs (exactly its own); their ids."""
    terminated = []
    for compute_job in jobs.compute.jobs_of(job_id):
        if not compute_job.is_finished:
            jobs.compute.terminate(compute_job.job_id, reason=f"spotbot job {job_id} cancelled")
            terminated.append(compute_job.job_id)
    return terminated
