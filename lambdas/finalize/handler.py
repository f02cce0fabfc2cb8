"""The "Finalize" step: parse the state input, call spotbot.services.finalize, hand back its output.

Input `{"job_id", "output", "error": null | {"Error", "Cause"}}` (the error a Catch caught, on the
failure path); output `{"job_id", "status", "counts", "summary", "error"}`.
"""

from typing import Any

from spotbot.adapters.wiring import open_cloud_index, open_compute_queue, open_output_store
from spotbot.services.estimate import load_price_table
from spotbot.services.job_cost import CostBasis
from spotbot.entrypoints.steps import Step, parse_event, per_container
from spotbot.services.finalize import FinalizeRequest, finalize_job
from spotbot.settings import FinalizeSettings

step = Step("spotbot-finalize")
logger = step.logger


@per_container(FinalizeSettings)
def _connect(settings: FinalizeSettings) -> tuple[FinalizeSettings, Any, Any]:
    """The index and (when the stack names the queue) the Batch queue, built once per container."""
    return settings, open_cloud_index(settings), open_compute_queue(settings)


@step.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_event(FinalizeRequest, event, step="finalize")
    logger.append_keys(job_id=request.job_id)
    settings, index, compute = _connect()
    basis = CostBasis(load_price_table(), endpoint_instance_type=settings.endpoint_instance_type)
    finalized = finalize_job(index, request, lambda output: open_output_store(output, settings), compute, basis)
    return finalized.as_output()
