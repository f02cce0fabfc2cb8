"""The "Scan assets" step: parse the state input, call spotbot.adapters.s3.scan, hand back its output.

Input `{"job_id", "bot", "source", "shard_size", "workers", "continuation", "file_types"?}`; output
`{"job_id", "done", "continuation", "assets", "shards"}`. The state machine loops on `done`, passing
`continuation` back in. It retries the step's errors, except those a retry cannot mend
(spotbot.domain.errors.permanent_error_names: ScanRequestError, SourceNotFoundError, TooManyShardsError,
InventoryError ...); a budgeted job estimated over its max_cost fails with BudgetExceededError once the
scan is done. The Catch releases the endpoint and records the error.
"""

from typing import Any

from spotbot.adapters.s3.lean_listing import LeanListingClient
from spotbot.adapters.s3.listing import listing_s3_client
from spotbot.adapters.wiring import open_cloud_index
from spotbot.entrypoints.steps import Step, parse_event, per_container
from spotbot.adapters.s3.scan import ScanRequest, ScanRequestError, scan_assets
from spotbot.services.estimate import load_bot_profiles, load_price_table
from spotbot.services.job_cost import refuse_planned_over_budget
from spotbot.settings import ScannerSettings

step = Step("spotbot-scanner")
logger = step.logger


@per_container(ScannerSettings)
def _connect(settings: ScannerSettings) -> tuple[ScannerSettings, Any, Any, Any]:
    """The S3 clients and the index, built once per container (keyed by the settings they come from)."""
    s3 = listing_s3_client(settings.s3_endpoint_url, max_pool_connections=8)  # manifests and work state
    lister = LeanListingClient(settings.s3_endpoint_url, settings.region, max_pool_connections=settings.scan_parallelism + 8)
    index = open_cloud_index(settings)
    index.ensure_indices()  # idempotent, once per container: the scan may be the first writer of a fresh stack
    return settings, s3, lister, index


@step.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_event(ScanRequest, event, step="scan", error=ScanRequestError)
    logger.append_keys(job_id=request.job_id)
    settings, s3, lister, index = _connect()
    result = scan_assets(
        request,
        settings,
        s3=s3,
        index=index,
        continuation=event.get("continuation"),
        remaining_time_ms=getattr(context, "get_remaining_time_in_millis", None),
        bot_registry=index,
        list_client=lister,
    )
    logger.info("scan step done", extra=result.as_output() | {"continuation": None, "new_tasks": result.new_tasks})
    if result.done:  # a budgeted job whose planned tasks cost more fails here, before any worker starts
        refuse_planned_over_budget(index, request.job_id, request.bot, table=load_price_table(), profiles=load_bot_profiles())
    return result.as_output()
