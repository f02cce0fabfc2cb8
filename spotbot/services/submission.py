"""POST /jobs: one job per idempotency key or job id, and the job record always the running execution's.

The job id is the execution name; StartExecution is the arbiter of who started it. Every request's
execution input carries the request (bot, source, output, workers, shard size, model version), the
pinned bot registration, the caller, and a submission id of its own -- so two requests never send the
same input, and of any number racing with one id exactly one StartExecution succeeds (202). Each of
the others gets ExecutionAlreadyExists, reads the running execution's request back, and answers 200
with that job when it asked for the same, or 409 naming the fields that differ (never their values:
a job id someone else took says nothing about their job). Only the winner writes the job record, from
the input it started the execution with.

An idempotency key names the job (`job-<sha256(principal, key)>`), so one principal's key never finds
another's job; a body may carry a job_id or a key, not both (the key cannot be side-stepped).
A cloud job id is used once: Step Functions keeps execution names for 90 days after they end.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from spotbot.domain import FieldError, Job, JobConflictError, UnavailableError, new_job_id
from spotbot.services import grants
from spotbot.services.bot_registry import resolve_cloud_bot
from spotbot.services.cloud_jobs import CloudJobs, execution_input_for, request_of
from spotbot.services.cloud_requests import JobSubmission

log = logging.getLogger(__name__)

REQUEST_FIELDS = ("bot", "source", "output", "workers", "shard_size", "model_version", "incremental", "max_cost")


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool  # False: the job existed already (a repeated idempotency key or job id)


def job_id_for(submission: JobSubmission, idempotency_key: str | None = None, principal: str | None = None) -> str:
    """The job's id: as given, else derived from the caller's idempotency key (header or body), else new."""
    key = _idempotency_key(submission, idempotency_key)
    if submission.job_id and key:
        raise FieldError("body.job_id", "send a job_id or an idempotency key, not both: the key names the job")
    if submission.job_id:
        return submission.job_id
    if key:
        scoped = f"{principal or ''}\n{key}"  # one principal's key never names another's job
        return f"job-{hashlib.sha256(scoped.encode()).hexdigest()[:20]}"
    return new_job_id()


def _idempotency_key(submission: JobSubmission, header: str | None) -> str | None:
    if header is not None and not header.strip():
        raise FieldError("header.Idempotency-Key", "is empty")
    if header and submission.idempotency_key and header.strip() != submission.idempotency_key:
        raise FieldError("body.idempotency_key", "differs from the Idempotency-Key header: send one, or the same in both")
    return header.strip() if header else submission.idempotency_key


def submit_job(
    jobs: CloudJobs,
    submission: JobSubmission,
    idempotency_key: str | None = None,
    *,
    principal: str | None = None,
    submission_id: str | None = None,
    job_id: str | None = None,
) -> Submitted:
    """Starts the job's execution (at most one per id) and records the job the execution runs.

    job_id: the caller's job_id_for() of this request, when it needed the id first (to log it).
    """
    settings = jobs.settings
    if not settings.state_machine_arn:
        raise UnavailableError("SPOTBOT_STATE_MACHINE_ARN is not set")
    job_id = job_id or job_id_for(submission, idempotency_key, principal)
    grants.check_source(settings, submission.source)
    output = submission.output or grants.default_output(settings)
    if output is None:
        raise FieldError("body.output", "no default output is configured (SPOTBOT_DEFAULT_OUTPUT): give an s3:// output")
    output = output.rstrip("/")
    grants.check_output(settings, output)
    registration = resolve_cloud_bot(jobs.index, submission.bot)
    job = Job(
        job_id=job_id,
        bot=submission.bot,
        source=submission.source,
        output=output,
        workers=submission.workers or settings.default_workers,
        model_version=submission.model_version,
        created_by=principal,
        bot_registration=registration,
        incremental=submission.incremental,
        max_cost=submission.max_cost,
    )
    request = request_of(job, submission.shard_size)

    recorded = jobs.index.get_job(job_id)  # a retry after a failed start finds the record without an execution
    if recorded is not None and recorded.execution_arn:
        check_same_request(job_id, running_request(jobs, recorded), request)
        return Submitted(job=recorded, created=False)
    taken = jobs.index.jobs_sharing_output(output, job_id)
    if taken:
        raise FieldError("body.output", "holds another job's output, or lies inside one: name a prefix no other job uses")

    execution_input = {
        **execution_input_for(jobs, job, submission.shard_size),
        "submission_id": submission_id or uuid.uuid4().hex,  # no two requests send the same input
    }
    try:
        execution_arn, created = jobs.workflow.start(job_id, execution_input)
    except Exception as error:
        if jobs.index.get_job(job_id) is None:  # nothing runs under this id: say why on the record; a retry starts it
            jobs.index.save_job(job.finish(job.counts, error=f"the execution did not start: {error}"))
        raise
    if not created:  # another request started this id first: its request is the job
        execution = jobs.workflow.describe(execution_arn)
        if execution is None or not execution.input:
            raise UnavailableError(f"job {job_id} has an execution that cannot be read yet: retry")
        running = execution.input
        check_same_request(job_id, request_in(running), request)
        existing = jobs.index.get_job(job_id) or job_from_input(running, execution_arn)
        log.info("job already started", extra={"execution_arn": execution_arn})
        return Submitted(job=existing, created=False)
    job = job.model_copy(update={"execution_arn": execution_arn})
    jobs.index.save_job(job)  # written by the one request whose execution runs
    log.info("job submitted", extra={"execution_arn": execution_arn, "bot": job.bot})
    return Submitted(job=job, created=True)


def running_request(jobs: CloudJobs, job: Job) -> dict[str, Any]:
    """The request the job's execution was started with; its record's fields when the execution is gone."""
    execution = jobs.workflow.describe(job.execution_arn) if job.execution_arn else None
    if execution is not None and execution.input:
        return request_in(execution.input)
    return {name: value for name, value in request_of(job, None).items() if name != "shard_size"}  # not recorded


def request_in(execution_input: dict[str, Any]) -> dict[str, Any]:
    """The request an execution was started with (older executions carry only its fields at the top level)."""
    if execution_input.get("request"):
        return execution_input["request"]
    return {name: execution_input[name] for name in ("bot", "source", "output", "workers") if name in execution_input}


def check_same_request(job_id: str, running: dict[str, Any], asked: dict[str, Any]) -> None:
    """409 naming each field that differs (not its value: the other job is not the caller's to read)."""
    differing = [name for name in REQUEST_FIELDS if name in running and running.get(name) != asked.get(name)]
    if differing:
        raise JobConflictError(
            f"job {job_id} exists with a different {', '.join(differing)}: "
            "a job id (or idempotency key) names one job; send the same body, or use a new key"
        )


def job_from_input(execution_input: dict[str, Any], execution_arn: str) -> Job:
    """The job as a racing request sees it before the winner's record lands: from the running execution's input."""
    return Job(
        job_id=execution_input["job_id"],
        bot=execution_input["bot"],
        source=execution_input["source"],
        output=execution_input["output"],
        workers=execution_input["workers"],
        model_version=execution_input.get("model_version") or None,
        created_by=execution_input.get("created_by"),
        bot_registration=execution_input.get("bot_config"),
        incremental=request_in(execution_input).get("incremental", True),
        max_cost=request_in(execution_input).get("max_cost"),
        execution_arn=execution_arn,
    )
