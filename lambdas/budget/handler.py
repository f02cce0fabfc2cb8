"""The budget watch: every few minutes (an EventBridge schedule), prices each running job that has a
max_cost from its Batch attempts so far and stops the ones over it, as DELETE /jobs/{id} does
(execution stopped, Batch jobs terminated, endpoint released). A stopped job resumes with
POST /jobs/{id}/resume?max_cost=<a larger budget>.

Input: the scheduled event (ignored); output `{"stopped": {job_id: cost_usd}}`.
"""

from typing import Any

from spotbot.adapters.wiring import open_cloud_jobs
from spotbot.entrypoints.steps import Step, per_container
from spotbot.services.estimate import load_price_table
from spotbot.services.job_cost import CostBasis, stop_jobs_over_budget
from spotbot.settings import BudgetWatchSettings

step = Step("spotbot-budget")
logger = step.logger


@per_container(BudgetWatchSettings)
def _connect(settings: BudgetWatchSettings) -> tuple[BudgetWatchSettings, Any]:
    """The settings, and the index and control planes the cancel needs, built once per container."""
    return settings, open_cloud_jobs(settings)


@step.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, jobs = _connect()
    basis = CostBasis(load_price_table(), endpoint_instance_type=settings.endpoint_instance_type)
    stopped = stop_jobs_over_budget(jobs, basis)
    for job_id, cost in stopped.items():
        logger.warning("stopped over budget", extra={"job_id": job_id, "cost_usd": cost.total_usd})
    return {"stopped": {job_id: cost.total_usd for job_id, cost in stopped.items()}}
