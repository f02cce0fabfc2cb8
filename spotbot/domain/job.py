"""A job and its lifecycle. Every status change goes through a method here, so local and cloud agree.

SUBMITTED --start--> RUNNING --finish--> COMPLETED | PARTIAL | FAILED
    any unfinished --cancel--> CANCELLED (also a local run stopped by Ctrl-C or a signal)
    finished --start--> RUNNING again: a resume, which tags only what is missing
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from spotbot.domain.errors import ConflictError
from spotbot.domain.pricing import JobCost
from spotbot.domain.records import JobCounts, JobStatus, utc_now

FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED})
LIVE = (JobStatus.SUBMITTED, JobStatus.RUNNING)  # the other statuses: a job not finished yet
MAX_ERROR_CHARS = 4000  # of an error's text kept on the job


class JobConflictError(ConflictError):
    """The job id exists with another bot, source or output."""


class JobFinishedError(ConflictError):
    """The job has finished: it cannot be cancelled."""


def final_status(counts: JobCounts) -> JobStatus:
    """The status a job whose run ended without an error takes, from its task counts."""
    if counts.pending:
        return JobStatus.FAILED if not counts.done else JobStatus.PARTIAL
    if counts.failed and not (counts.done or counts.skipped):
        return JobStatus.FAILED
    if counts.failed:
        return JobStatus.PARTIAL
    return JobStatus.COMPLETED


class Job(BaseModel):
    job_id: str
    bot: str
    source: str
    output: str
    workers: int
    status: JobStatus = JobStatus.SUBMITTED
    counts: JobCounts = Field(default_factory=JobCounts)
    created_at: datetime = Field(default_factory=utc_now)
    finished_at: datetime | None = None
    execution_arn: str | None = None
    model_version: str | None = None
    endpoint_name: str | None = None  # the SageMaker endpoint the job's bot runs behind, if any
    error: str | None = None  # why a FAILED job failed
    created_by: str | None = None  # the IAM principal that submitted it: it (or the admin) may cancel it
    bot_registration: dict[str, Any] | None = None  # the bot as registered at submission: what every run of it uses
    incremental: bool = True  # reuse earlier jobs' records of unchanged assets; False: predict every asset again
    max_cost: float | None = None  # budget in USD: the job does not start, or stops, above it
    cost: JobCost | None = None  # measured after a run (spotbot.domain.pricing)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def check_same(self, *, bot: str, source: str, output: str | None = None) -> None:
        """Raises JobConflictError unless a request names this job's bot, source and (if given) output."""
        asked = {"bot": bot, "source": source} | ({"output": output} if output is not None else {})
        for what, value in asked.items():
            recorded = getattr(self, what)
            if recorded != value:
                raise JobConflictError(
                    f"job {self.job_id} exists with {what} {recorded!r}, not {value!r}: "
                    "use the same values to resume it, or a new job id"
                )

    def start(self, counts: JobCounts, *, workers: int | None = None, model_version: str | None = None) -> Job:
        """RUNNING, from SUBMITTED or (a resume) from any finished status; the error and finish time clear."""
        update = {"status": JobStatus.RUNNING, "counts": counts, "finished_at": None, "error": None}
        if workers is not None:
            update["workers"] = workers
        if model_version is not None:
            update["model_version"] = model_version
        return self.model_copy(update=update)

    def finish(self, counts: JobCounts, *, error: str | None = None, model_version: str | None = None) -> Job:
        """The end of a run: CANCELLED stays CANCELLED (and keeps when), an error makes it FAILED, else the counts say."""
        if self.status == JobStatus.CANCELLED:
            return self.model_copy(update={"counts": counts, "finished_at": self.finished_at or utc_now()})
        if error is not None:
            status = JobStatus.FAILED
            error = error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"
        else:
            status = final_status(counts)
        update = {"status": status, "counts": counts, "finished_at": utc_now(), "error": error}
        if model_version:
            update["model_version"] = model_version
        return self.model_copy(update=update)

    def cancel(self, counts: JobCounts | None = None) -> Job:
        """CANCELLED, once; a finished job cannot be cancelled (JobFinishedError)."""
        if self.status == JobStatus.CANCELLED:
            return self
        if self.is_finished:
            raise JobFinishedError(f"job {self.job_id} has finished ({self.status.value}): there is nothing to cancel")
        return self.model_copy(
            update={"status": JobStatus.CANCELLED, "counts": counts or self.counts, "finished_at": utc_now()}
        )

    def record_endpoint(self, endpoint_name: str | None) -> Job:
        """The SageMaker endpoint the job's bot runs behind, so release after any failure can find it."""
        return self.model_copy(update={"endpoint_name": endpoint_name or None})

    def record_cost(self, cost: JobCost) -> Job:
        """What the job's runs cost, as measured (local CPU-seconds, or Batch attempts and endpoint hours)."""
        return self.model_copy(update={"cost": cost})
