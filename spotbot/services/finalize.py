"""Finalizing a cloud job (the "Finalize" step): its counts from the index, its final status, its summary.

The status is the job's own rule (spotbot.domain.job.Job.finish): the task counts decide, FAILED
when the state machine caught an error (whose text the job keeps), and CANCELLED stays CANCELLED.
A Batch failure caught after some assets were tagged (an array job with failed children) leaves a
PARTIAL job -- its counts decide, the error text is kept -- which `resume` finishes. The summary `_job.json`
goes beside the output (`<output>/<job_id>/_job.json`) before the job is saved, so a job that reads
as finished always has its summary. Finalizing again (a retried step) gives the same answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from spotbot.domain import Job, NotFoundError
from spotbot.domain.job import MAX_ERROR_CHARS
from spotbot.ports import JobRecords, OutputStore
from spotbot.ports.control_planes import ComputeQueue
from spotbot.services.job_cost import CostBasis, measure_cloud_cost

log = logging.getLogger(__name__)


class JobNotFoundError(NotFoundError):
    """The job to finalize is not in the index."""


class CaughtError(BaseModel):
    """An error as a Step Functions Catch passes it on (ResultPath of the Catch)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    Error: str = "States.Unknown"
    Cause: str | None = None

    def is_from_batch(self) -> bool:
        """The tagging step's Batch job failed (some children did): its cause is the Batch job's description."""
        try:
            parsed = json.loads(self.Cause or "")
        except ValueError:
            return False
        return isinstance(parsed, dict) and bool({"JobId", "JobArn", "StatusReason", "Attempts"} & parsed.keys())

    def text(self) -> str:
        """`<Error>: <message>`; a Lambda's JSON cause gives its errorMessage, anything else is kept as it is."""
        cause = self.Cause or ""
        try:
            parsed = json.loads(cause)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("errorMessage"), str):
            cause = parsed["errorMessage"]
        text = f"{self.Error}: {cause}" if cause else self.Error
        return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


class FinalizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: str
    output: str | None = None  # default: the job's own
    error: CaughtError | None = None


@dataclass(frozen=True)
class Finalized:
    job: Job
    summary: str

    def as_output(self) -> dict[str, Any]:
        return {
            "job_id": self.job.job_id,
            "status": self.job.status.value,
            "counts": self.job.counts.model_dump(),
            "summary": self.summary,
            "error": self.job.error,
        }


def finalize_job(
    index: JobRecords,
    request: FinalizeRequest,
    open_output: Callable[[str], OutputStore],
    compute: ComputeQueue | None = None,
    cost_basis: CostBasis | None = None,
) -> Finalized:
    """Counts the job's tasks, sets its final status and finished_at, writes its summary and saves it.

    With the compute queue and a cost basis, the summary also holds the measured cost (Batch attempts).
    """
    job = index.get_job(request.job_id)
    if job is None:
        raise JobNotFoundError(f"no job {request.job_id!r} in the index")
    counts = index.counts(request.job_id)
    error = request.error.text() if request.error else None
    if error is not None and counts.done and request.error.is_from_batch():
        finished = job.finish(counts).model_copy(update={"error": error})  # what was tagged stands: PARTIAL
    else:
        finished = job.finish(counts, error=error)
    if compute is not None and cost_basis is not None:
        finished = finished.record_cost(measure_cloud_cost(finished, compute, cost_basis))
    status = finished.status
    summary = open_output(request.output or job.output).write_summary(finished)
    index.save_job(finished)
    log.info(
        "job finalized",
        extra={"status": status.value, "counts": counts.model_dump(), "summary": summary, "error": error},
    )
    return Finalized(job=finished, summary=summary)
