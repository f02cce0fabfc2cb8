"""The watch consumer: an SQS-triggered Lambda (a container image, the bots' serving image, so the bots load).

SQS hands it up to a few S3 "Object Created" events (through EventBridge); spotbot.services.
cloud_watches tags them into each matching watch's job and answers which messages to retry
(`ReportBatchItemFailures`). A message failing its third receive is dead-lettered with its error.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from spotbot.adapters.local.in_process import InProcessRuntime
from spotbot.adapters.watch_wiring import object_exists, watch_adapters
from spotbot.adapters.wiring import open_asset_store, open_cloud_index, open_model_registry, open_output_store
from spotbot.domain.watches import Watch
from spotbot.services.bots import resolve_bot
from spotbot.services.cloud_watches import WatchConsumer, consume_events
from spotbot.services.watch import WatchTarget
from spotbot.settings import Settings


@functools.lru_cache(maxsize=4)
def _runtime(settings_json: str, bot: str, model_version: str | None) -> InProcessRuntime:
    """A bot loaded once per container and model version."""
    settings = Settings.model_validate_json(settings_json)
    registry, _ = open_model_registry(settings)
    model = registry.resolve(resolve_bot(bot).name, model_version)
    return InProcessRuntime.load(bot, Path(model.path) if model and model.path else None)


@functools.lru_cache(maxsize=1)
def _consumer(settings_json: str) -> WatchConsumer:
    settings = Settings.model_validate_json(settings_json)
    index = open_cloud_index(settings)
    index.ensure_indices()
    registry, queue = watch_adapters(settings)

    def target_for(watch: Watch) -> WatchTarget:
        return WatchTarget(
            job_id=watch.watch_id, index=index, store=open_asset_store(watch.source, settings),
            output=open_output_store(watch.output), runtime=_runtime(settings_json, watch.bot, watch.model_version),
            settings=settings, bot=watch.bot, incremental=watch.incremental, retry_failed=True,
        )  # fmt: skip

    return WatchConsumer(registry=registry, queue=queue, target_for=target_for, exists=object_exists(settings))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    retry = consume_events(event.get("Records", []), _consumer(Settings().model_dump_json()))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in retry]}
