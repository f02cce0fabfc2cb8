"""Tags one shard: read and decode assets ahead, predict in micro-batches, write in bulk.

The same function serves the local process pool and the Spot worker in AWS Batch; only the
adapters passed in differ.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from spotbot.services.decoding import AssetError, DecodeLimits, decode_asset
from spotbot.domain import AssetRef, Tag, TagRecord, Task, TaskStatus, tag_record_to_json
from spotbot.ports import (
    AssetStore,
    BotRuntime,
    OutputStore,
    PartFile,
    RuntimeUnavailableError,
    ShardResult,
    ShardWork,
    TagIndex,
    TaskOutcome,
)
from spotbot.services.predicting import BotFailure, predict_each
from spotbot.services.reusing import reuse_records
from spotbot.settings import Settings


def limits_from(settings: Settings) -> DecodeLimits:
    return DecodeLimits(
        max_asset_bytes=settings.max_asset_bytes,
        max_image_pixels=settings.max_image_pixels,
        max_text_bytes=settings.max_text_bytes,
        text_encodings=tuple(settings.text_encodings),
    )


def reconcile_part(part: PartFile, index: TagIndex, job_id: str) -> None:
    """Makes a shard's part file hold exactly one line per DONE asset, before the shard is resumed.

    Lines are written before the index marks their tasks DONE, so after a crash the file may hold
    a torn last line or lines whose task is not DONE; those assets are tagged again.
    """
    records = part.read_records()
    done = index.done_assets(job_id, (r.get("asset", "") for r in records))
    latest = {r["asset"]: r for r in records if r.get("asset") in done}  # the last line of an asset wins
    part.rewrite(list(latest.values()))


@dataclass
class _ShardWriter:
    index: TagIndex
    part: PartFile
    job_id: str
    max_records: int
    max_wait_s: float
    records: list[TagRecord] = field(default_factory=list)
    outcomes: list[TaskOutcome] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0

    def add(self, outcome: TaskOutcome, record: TagRecord | None = None) -> None:
        if record is not None:
            self.records.append(record)
        self.outcomes.append(outcome)
        if len(self.outcomes) >= self.max_records or time.monotonic() - self.since >= self.max_wait_s:
            self.flush()

    def flush(self) -> None:
        if self.outcomes:
            if self.records:
                self.part.append([tag_record_to_json(r) for r in self.records])
            self.index.record_outcomes(self.records, self.outcomes, self.job_id)
            self.done += sum(o.status is TaskStatus.DONE for o in self.outcomes)
            self.failed += sum(o.status is TaskStatus.FAILED for o in self.outcomes)
        self.records, self.outcomes, self.since = [], [], time.monotonic()


def tag_shard(
    work: ShardWork,
    *,
    index: TagIndex,
    store: AssetStore,
    output: OutputStore,
    runtime: BotRuntime,
    settings: Settings,
    should_stop: Callable[[], bool] = lambda: False,
) -> ShardResult:
    statuses = (TaskStatus.PENDING, TaskStatus.FAILED) if work.retry_failed else (TaskStatus.PENDING,)
    tasks = index.tasks_in_shard(work.job_id, work.shard, statuses)
    if not tasks:
        return ShardResult(shard=work.shard, done=0, failed=0)
    part = output.part(work.job_id, work.shard)
    reconcile_part(part, index, work.job_id)
    writer = _ShardWriter(index, part, work.job_id, settings.write_batch, settings.write_interval_seconds)
    # incremental jobs (issue 12): an earlier job's record of an unchanged asset is copied, not predicted
    reused = reuse_records(tasks, index, writer.add, bot=runtime.bot_name, model_version=runtime.model_version) if work.incremental else set()
    tasks = [task for task in tasks if task.asset not in reused]
    limits = limits_from(settings)
    batch_size = work.batch_size or runtime.batch_size

    def read_and_decode(task: Task) -> Any:
        asset = AssetRef(uri=task.asset, etag=task.etag, size=0)
        return decode_asset(store.read(asset, limits.max_asset_bytes), runtime.input_kind, limits)  # type: ignore[arg-type]

    stopped = False
    try:
        with ThreadPoolExecutor(max_workers=settings.read_concurrency, thread_name_prefix="read") as pool:
            batch: list[tuple[Task, Any]] = []
            for task, decoded in _read_ahead(tasks, pool, read_and_decode, window=settings.read_concurrency * 2):
                if should_stop():  # checked per asset, so a run of bad assets cannot outlast a stop notice
                    stopped = True
                    break
                try:
                    batch.append((task, decoded.result()))
                except AssetError as error:
                    writer.add(TaskOutcome(task.asset, TaskStatus.FAILED, str(error)))
                if len(batch) >= batch_size:
                    _predict_batch(batch, runtime, writer, work.job_id)
                    batch = []
            if batch:  # at most one micro-batch, decoded already: tagging it beats redoing it
                _predict_batch(batch, runtime, writer, work.job_id)
            pool.shutdown(cancel_futures=True)
    finally:
        writer.flush()
        part.close()
    return ShardResult(shard=work.shard, done=writer.done, failed=writer.failed, stopped=stopped, reused=len(reused))


def _read_ahead(
    tasks: list[Task], pool: ThreadPoolExecutor, read: Callable[[Task], Any], window: int
) -> Iterator[tuple[Task, Future]]:
    """Keeps `window` reads in flight, yielding them in task order."""
    in_flight: deque[tuple[Task, Future]] = deque()
    for task in tasks:
        in_flight.append((task, pool.submit(read, task)))
        if len(in_flight) >= window:
            yield in_flight.popleft()
    while in_flight:
        yield in_flight.popleft()


def _predict_batch(batch: list[tuple[Task, Any]], runtime: BotRuntime, writer: _ShardWriter, job_id: str) -> None:
    # RuntimeUnavailableError passes through: the endpoint is down, not the asset bad, so the shard stops
    results = predict_each(
        runtime.predict, [decoded for _, decoded in batch], bot_name=runtime.bot_name, passthrough=(RuntimeUnavailableError,)
    )
    for (task, decoded), tags in zip(batch, results, strict=True):
        if isinstance(tags, BotFailure):
            writer.add(TaskOutcome(task.asset, TaskStatus.FAILED, f"bot error: {tags.error}"))
            continue
        record = TagRecord(
            job_id=job_id,
            bot=runtime.bot_name,
            model_version=runtime.model_version,
            asset=task.asset,
            etag=task.etag,
            tags=tags,
            text=decoded if isinstance(decoded, str) else None,
        )
        writer.add(TaskOutcome(record.asset, TaskStatus.DONE), record)
