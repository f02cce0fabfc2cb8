"""The budget watch: every few minutes (an EventBridge schedule), prices each running job that has a
max_cost from its Batch attempts so far and stops the ones over it, as DELETE /jobs/{id} does
(execution stopped, Batch jobs terminated, endpoint released). A stopped job resumes with
POST /jobs/{id}/resume?max_cost=<a larger budget>.

Input: the scheduled event (ignored); output `{"stopped": {job_id: cost_usd}}`.
"""

import functools
from typing import Any

from spotbot.adapters.wiring import open_cloud_jobs
from spotbot.entrypoints.steps import Step
from spotbot.services.estimate import load_price_table
from spotbot.services.job_cost import CostBasis, stop_jobs_over_budget
from spotbot.settings import BudgetWatchSettings, load_role

step = Step("spotbot-budget")
logger = step.logger


@functools.lru_cache(maxsize=4)
def _connect(settings_json: str) -> Any:
    """The index and control planes the cancel needs, built once per container."""
    return open_cloud_jobs(BudgetWatchSettings.model_validate_json(settings_json))


@step.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = load_role(BudgetWatchSettings)
    jobs = _connect(settings.model_dump_json())
    basis = CostBasis(load_price_table(), endpoint_instance_type=settings.endpoint_instance_type)
    stopped = stop_jobs_over_budget(jobs, basis)
    for job_id, cost in stopped.items():
        logger.warning("stopped over budget", extra={"job_id": job_id, "cost_usd": cost.total_usd})
    return {"stopped": {job_id: cost.total_usd for job_id, cost in stopped.items()}}
