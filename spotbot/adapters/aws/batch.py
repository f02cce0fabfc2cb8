"""ComputeQueue on AWS Batch (boto3).

The state machine names a job's Batch jobs after the job and gives each SPOTBOT_JOB_ID in its
environment. Listing by name narrows the candidates; the environment decides, so `nightly` never
matches `nightly-2`'s workers whatever they are named.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from spotbot.domain.pricing import WorkerAttempt
from spotbot.ports.control_planes import ComputeJob

_DESCRIBE_AT_ONCE = 100  # DescribeJobs takes at most 100 ids


class BatchQueue:
    def __init__(self, client: Any, job_queue: str | None) -> None:
        self.client = client  # boto3 "batch"
        self.job_queue = job_queue

    def jobs_of(self, job_id: str) -> list[ComputeJob]:
        if not self.job_queue:
            return []
        pages = self.client.get_paginator("list_jobs").paginate(
            jobQueue=self.job_queue, filters=[{"name": "JOB_NAME", "values": [f"{job_id}*"]}]
        )
        candidates = [summary["jobId"] for page in pages for summary in page["jobSummaryList"]]
        found: list[ComputeJob] = []
        for start in range(0, len(candidates), _DESCRIBE_AT_ONCE):
            described = self.client.describe_jobs(jobs=candidates[start : start + _DESCRIBE_AT_ONCE])["jobs"]
            found += [
                ComputeJob(job_id=job["jobId"], name=job["jobName"], status=job["status"])
                for job in described
                if spotbot_job_of(job) == job_id
            ]
        return found

    def terminate(self, compute_job_id: str, reason: str) -> None:
        self.client.terminate_job(jobId=compute_job_id, reason=reason)

    def attempts_of(self, job_id: str) -> list[WorkerAttempt]:
        attempts: list[WorkerAttempt] = []
        for parent in self.jobs_of(job_id):
            described = self._describe([parent.job_id])
            if not described:
                continue
            if described[0].get("arrayProperties", {}).get("size"):  # an array parent: its children ran
                pages = self.client.get_paginator("list_jobs").paginate(arrayJobId=parent.job_id)
                children = [s["jobId"] for page in pages for s in page["jobSummaryList"]]
                described = self._describe(children)
            attempts += [attempt for job in described for attempt in attempts_in(job)]
        return attempts

    def _describe(self, ids: list[str]) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        for start in range(0, len(ids), _DESCRIBE_AT_ONCE):
            jobs += self.client.describe_jobs(jobs=ids[start : start + _DESCRIBE_AT_ONCE])["jobs"]
        return jobs


def attempts_in(described: dict[str, Any]) -> list[WorkerAttempt]:
    """A described Batch job's attempts (times in epoch milliseconds); a running one has no stoppedAt yet."""
    vcpus = next((int(float(r["value"])) for r in (described.get("container") or {}).get("resourceRequirements", [])
                  if r.get("type") == "VCPU"), None) or (described.get("container") or {}).get("vcpus")  # fmt: skip
    found = [
        WorkerAttempt(started_at=_when(a.get("startedAt")), stopped_at=_when(a.get("stoppedAt")),
                      status_reason=a.get("statusReason", ""), vcpus=vcpus)
        for a in described.get("attempts", [])
    ]  # fmt: skip
    if described.get("status") == "RUNNING" and described.get("startedAt") and not any(a.stopped_at is None for a in found):
        found.append(WorkerAttempt(started_at=_when(described["startedAt"]), stopped_at=None, vcpus=vcpus))  # the current one
    return found


def _when(millis: int | None) -> datetime | None:
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc) if millis else None


def spotbot_job_of(described: dict[str, Any]) -> str | None:
    """The SPOTBOT_JOB_ID a described Batch job runs for; None for a job spotbot did not submit."""
    environment = (described.get("container") or {}).get("environment") or []
    for variable in environment:
        if variable.get("name") == "SPOTBOT_JOB_ID":
            return variable.get("value")
    return None
