"""Cloud watches (issue 12): register a prefix, tag the objects S3 reports as created, show the figures.

S3 sends every ObjectCreated event of the source buckets to EventBridge; one rule puts them on an
SQS queue (with a dead-letter queue); the watch consumer drains it in small batches. A watch is a
registration (WatchRegistry) the consumer reads on every batch, so DELETE /watches/{id} takes
effect on the next one. Each watch tags into its own watch job (spotbot.services.watch), with the
job planner's and the incremental rule's idempotence: a duplicate event is a no-op.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spotbot.domain import AssetRef, BadInputError, JobCounts, NotFoundError
from spotbot.domain.watches import Watch, assets_from_event, s3_source, watch_job_id
from spotbot.ports import TagIndex
from spotbot.ports.watches import EventQueue, WatchRegistry
from spotbot.services.bots import resolve_bot
from spotbot.services.watch import WatchTarget, open_watch_job, tag_arrivals

logger = logging.getLogger(__name__)
MAX_RECEIVES = 3  # a message that failed this many times goes to the dead-letter queue, with its error


class WatchRequest(BaseModel):
    """The body of POST /watches."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str = Field(description="s3://bucket/prefix to watch")
    bot: str = Field(description="The bot that tags what arrives")
    model_version: str | None = Field(default=None, description="Pin a model version; default: the current one")
    incremental: bool = Field(default=True, description="Reuse earlier jobs' records of unchanged objects")


class WatchStatus(BaseModel):
    """GET /watches/{id}: the watch, its job's counts, and the shared queue's lag and dead letters."""

    watch: Watch
    counts: JobCounts
    waiting: int
    lag_seconds: float | None
    dead_letters: int


def register_watch(request: WatchRequest, registry: WatchRegistry, default_output: str) -> Watch:
    """Subscribes a prefix (idempotent: the same source and bot are the same watch)."""
    s3_source(request.source)
    bot = resolve_bot(request.bot)  # an unknown bot is refused here, not on the first event
    watch = Watch(
        watch_id=watch_job_id(request.source, request.bot),
        source=request.source,
        bot=request.bot,
        output=default_output,
        model_version=request.model_version,
        incremental=request.incremental,
        file_types=bot.file_types,
    )
    existing = registry.get_watch(watch.watch_id)
    if existing is not None:
        return existing
    registry.save_watch(watch)
    return watch


def watch_status(watch_id: str, registry: WatchRegistry, index: TagIndex, queue: EventQueue) -> WatchStatus:
    watch = registry.get_watch(watch_id)
    if watch is None:
        raise NotFoundError(f"no watch {watch_id!r}")
    figures = queue.figures()
    return WatchStatus(
        watch=watch, counts=index.counts(watch_id), waiting=figures.waiting,
        lag_seconds=figures.oldest_age_s, dead_letters=figures.dead_letters,
    )  # fmt: skip


def unregister_watch(watch_id: str, registry: WatchRegistry) -> None:
    if not registry.delete_watch(watch_id):
        raise NotFoundError(f"no watch {watch_id!r}")


@dataclass
class WatchConsumer:
    """What draining the queue needs; target_for builds (and may cache) a watch's adapters and loaded bot."""

    registry: WatchRegistry
    queue: EventQueue
    target_for: Callable[[Watch], WatchTarget]
    max_receives: int = MAX_RECEIVES
    exists: Callable[[str], bool] = lambda uri: True  # whether an object exists (a HEAD): picks an event key's reading


def event_asset(event: dict[str, Any], exists: Callable[[str], bool]) -> AssetRef:
    """The event's object: the first reading of its key that exists; the URL-decoded one when none does."""
    readings = assets_from_event(event)
    if len(readings) > 1:
        for ref in readings:
            if exists(ref.uri):
                return ref
    return readings[0]


def consume_events(records: Sequence[dict[str, Any]], consumer: WatchConsumer) -> list[str]:
    """Tags the objects of a batch of SQS messages; returns the ids of the messages to retry (partial batch).

    A message whose asset failed goes back to the queue until its last receive, then to the
    dead-letter queue with the asset and the error; so does one that is not an S3 event at all.
    """
    watches = consumer.registry.list_watches()
    arrivals: dict[str, list[tuple[dict[str, Any], AssetRef]]] = {}
    errors: dict[str, tuple[str, str]] = {}  # message id -> (asset, error)
    for record in records:
        try:
            ref = event_asset(json.loads(record["body"]), consumer.exists)
        except (BadInputError, ValueError) as error:
            errors[record["messageId"]] = ("", f"not an S3 event: {error}")
            continue
        for watch in watches:
            if watch.covers(ref.uri):
                arrivals.setdefault(watch.watch_id, []).append((record, ref))
    by_id = {w.watch_id: w for w in watches}
    for watch_id, items in arrivals.items():
        try:
            target = consumer.target_for(by_id[watch_id])
            open_watch_job(target)
            failed = tag_arrivals(target, [ref for _, ref in items]).failed
        except Exception as error:  # noqa: BLE001 - the whole batch of this watch is retried through SQS
            logger.exception("watch %s: tagging a batch failed", watch_id)
            failed = {ref.uri: f"{type(error).__name__}: {error}" for _, ref in items}
        for record, ref in items:
            if ref.uri in failed:
                errors[record["messageId"]] = (ref.uri, failed[ref.uri])
    retry: list[str] = []
    for record in records:
        if record["messageId"] not in errors:
            continue
        asset, error = errors[record["messageId"]]
        if _receives(record) >= consumer.max_receives or not asset:
            consumer.queue.dead_letter(record["body"], asset=asset, error=error)
            logger.warning("dead-lettered %s after %s receives: %s", asset or record["messageId"], _receives(record), error)
        else:
            retry.append(record["messageId"])
    return retry


def _receives(record: dict[str, Any]) -> int:
    return int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
