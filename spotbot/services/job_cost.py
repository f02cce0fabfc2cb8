"""What a cloud job has cost, measured from its Batch attempts, and the budget stop while it runs.

Finalize records the cost on the job (so `_job.json`, `spotbot status` and GET /jobs/{id} show it).
`stop_over_budget` is the check a running job needs: it plugs in as a Lambda step the state machine
runs beside "Tag assets on Spot" (a Wait / check / Choice loop, as the endpoint wait does), or on an
EventBridge schedule; over the budget it cancels the job the way DELETE /jobs/{id} does (execution
stopped, Batch jobs terminated, endpoint released), and the same job id resumes what is left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from spotbot.domain import BadInputError, Job
from spotbot.domain.job import LIVE
from spotbot.domain.pricing import JobCost, PriceTable, cloud_job_cost, over_budget, usd
from spotbot.domain.records import utc_now
from spotbot.ports.control_planes import ComputeQueue

log = logging.getLogger(__name__)
DEFAULT_INSTANCE_TYPE = "c6i.large"  # Batch does not say which instance an attempt ran on; price it as this


@dataclass(frozen=True)
class CostBasis:
    """What the measured seconds are priced at."""

    table: PriceTable
    worker_vcpus: int = 2  # the stack's worker_vcpus, for attempts that do not say
    instance_type: str = DEFAULT_INSTANCE_TYPE
    spot_discount: float | None = None
    endpoint_instance_type: str | None = None


def measure_cloud_cost(job: Job, compute: ComputeQueue, basis: CostBasis, now: datetime | None = None) -> JobCost:
    """The job's cost so far: every Batch attempt (reclaimed ones too) and, if it had one, its endpoint's hours."""
    attempts = compute.attempts_of(job.job_id)
    endpoint_hours = 0.0
    if job.endpoint_name and basis.endpoint_instance_type:
        ended = job.finished_at or now or utc_now()
        endpoint_hours = max(0.0, (ended - job.created_at).total_seconds() / 3600)  # up from the job's start to its end
    return cloud_job_cost(
        attempts, basis.table, worker_vcpus=basis.worker_vcpus, default_instance_type=basis.instance_type,
        spot_discount=basis.spot_discount, endpoint_hours=endpoint_hours,
        endpoint_instance_type=basis.endpoint_instance_type if job.endpoint_name else None, now=now,
    )  # fmt: skip


def stop_over_budget(jobs, job_id: str, basis: CostBasis, now: datetime | None = None) -> JobCost | None:
    """Cancels a running job whose measured cost has crossed its max_cost; the cost when it did, else None.

    jobs: spotbot.services.cloud_jobs.CloudJobs. Tasks not yet done stay PENDING: resuming the job
    (POST /jobs/{id}/resume, with a larger budget) tags the rest.
    """
    from spotbot.services.cloud_jobs import cancel_job  # the one way a cloud job is stopped

    job = jobs.index.get_job(job_id)
    if job is None or job.is_finished or job.max_cost is None:
        return None
    cost = measure_cloud_cost(job, jobs.compute, basis, now=now or utc_now())
    if not over_budget(cost, job.max_cost):
        return None
    cancel_job(jobs, job_id)
    stopped = jobs.index.get_job(job_id)
    message = f"stopped: measured cost {usd(cost.total_usd)} crossed the budget of {usd(job.max_cost)}; resume it to tag the rest"
    jobs.index.save_job(stopped.record_cost(cost).model_copy(update={"error": message}))
    log.info("job over budget", extra={"job_id": job_id, "cost": cost.total_usd, "max_cost": job.max_cost})
    return cost


def refuse_planned_over_budget(index, job_id: str, bot: str, *, table: PriceTable, profiles: dict) -> None:
    """After the scan: a job whose planned tasks are estimated above its max_cost fails before any worker starts.

    index: what the scanner writes to (get_job, counts). The estimate is `spotbot estimate`'s, priced on the
    tasks left to tag (a resumed job's DONE ones cost nothing). BudgetExceededError names both figures.
    """
    from spotbot.services.estimate import EstimateRequest, enforce_budget, price_assets

    job = index.get_job(job_id)
    if job is None or job.max_cost is None:
        return
    counts = index.counts(job_id)
    to_tag = counts.pending + counts.failed
    request = EstimateRequest(source=job.source, bot=bot, max_cost=job.max_cost)
    try:
        estimate = price_assets(request, job.source, to_tag, 0, from_inventory=False, table=table, profiles=profiles)
    except BadInputError as error:  # a registered bot with no recorded profile: only the running stop guards it
        log.warning("no estimate for the budget check", extra={"job_id": job_id, "reason": str(error)})
        return
    enforce_budget(estimate)  # the estimate's own refusal: BudgetExceededError


def stop_jobs_over_budget(jobs, basis: CostBasis, *, max_jobs: int = 1000, now: datetime | None = None) -> dict[str, JobCost]:
    """The budget watch: each live budgeted job among the newest max_jobs is priced, and stopped over its budget.

    jobs: spotbot.services.cloud_jobs.CloudJobs. Returns the stopped jobs' costs, by job id.
    """
    stopped: dict[str, JobCost] = {}
    after = None
    seen = 0
    while seen < max_jobs:
        page = jobs.index.list_jobs_page(min(100, max_jobs - seen), after)
        if not page:
            break
        for job, position in page:
            seen, after = seen + 1, position
            if job.status in LIVE and job.max_cost is not None:
                cost = stop_over_budget(jobs, job.job_id, basis, now=now)
                if cost is not None:
                    stopped[job.job_id] = cost
    return stopped
