"""The model registry's event: a model archive landed in the store. Checks it and logs the outcome.

Input: the EventBridge "Object Created" event of `<models prefix>/<bot>/<version>/model.tar.gz` in the
work bucket (SPOTBOT_MODELS = s3://<work bucket>/models). Output and log line: `{"bot", "version",
"approved", "reason", "current"}`: whether the new version is sound and passes its approval rule,
and which version the bot's next job will use. Nothing is written: the registry lists the store on
every job, so this is the record of the upload, not a step the registry depends on.
"""

from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from spotbot.adapters.s3.assets import parse_s3_uri
from spotbot.services.models import ARCHIVE, ModelError
from spotbot.adapters.wiring import open_model_registry
from spotbot.entrypoints.steps import Step, per_container
from spotbot.settings import RegistrySettings

step = Step("spotbot-registry")
logger = step.logger
metrics = Metrics(namespace="SpotTaggingBot", service="spotbot-registry")


@per_container(RegistrySettings)
def _registry(settings: RegistrySettings) -> tuple[Any, str, str]:
    """The registry over the configured store, with the store's bucket and key prefix."""
    registry, _ = open_model_registry(settings)
    bucket, prefix = parse_s3_uri(settings.models)
    return registry, bucket, (prefix.rstrip("/") + "/") if prefix else ""


def archive_of(key: str, prefix: str) -> tuple[str, str] | None:
    """(bot, version) of `<prefix><bot>/<version>/model.tar.gz`; None for any other key."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) != 3 or parts[2] != ARCHIVE or not all(parts[:2]):
        return None
    return parts[0], parts[1]


@step.handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    registry, bucket, prefix = _registry()
    detail = event.get("detail") or {}
    key = unquote(detail.get("object", {}).get("key", ""))
    found = archive_of(key, prefix) if detail.get("bucket", {}).get("name") == bucket else None
    if found is None:
        logger.warning("not a model archive of the store: ignored", extra={"bucket": detail.get("bucket"), "key": key})
        metrics.add_metric(name="ModelEventsIgnored", unit=MetricUnit.Count, value=1)
        return {"ignored": key}
    bot, version = found
    try:
        published = registry.resolve(bot, version)
        approved, reason = bool(published and published.approved), (published.reason if published else "not found")
    except ModelError as error:
        approved, reason = False, str(error)
    current = registry.current(bot)
    outcome = {"bot": bot, "version": version, "approved": approved, "reason": reason,
               "current": current.version if current else None}  # fmt: skip
    if approved:
        logger.info("model version published", extra=outcome)
    else:
        logger.warning("model version not usable", extra=outcome)
    metrics.add_metric(name="ModelVersionsApproved" if approved else "ModelVersionsRejected", unit=MetricUnit.Count, value=1)
    return outcome
