"""ComputeQueue on AWS Batch (boto3).

The state machine names a job's Batch jobs after the job and gives each SPOTBOT_JOB_ID in its
environment. Listing by name narrows the candidates; the environment decides, so `nightly` never
matches `nightly-2`'s workers whatever they are named.
"""

from __future__ import annotations

from typing import Any

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


def spotbot_job_of(described: dict[str, Any]) -> str | None:
    """The SPOTBOT_JOB_ID a described Batch job runs for; None for a job spotbot did not submit."""
    environment = (described.get("container") or {}).get("environment") or []
    for variable in environment:
        if variable.get("name") == "SPOTBOT_JOB_ID":
            return variable.get("value")
    return None
