"""Tags one shard: read and decode assets ahead, predict in micro-batches, write in bulk.

The same function serves the local process pool and the Spot worker in AWS Batch; only the
adapters passed in differ.
"""

from __future__ import annotations

import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spotbot.services.decoding import AssetError, DecodeLimits, decode_asset
from spotbot.domain import AssetRef, TagRecord, Task, TaskStatus, tag_record_to_json
from spotbot.domain.units import MediaLimits
from spotbot.services.units import Ticket, UnitFolds, expand_units, open_video_file, reads_from_file
from spotbot.ports import (
    AssetJournal,
    AssetStore,
    FileAssetStore,
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
        media=MediaLimits(**{f: getattr(settings, f) for f in MediaLimits.__dataclass_fields__}),
        max_decode_side=settings.max_decode_side,
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
    journal: AssetJournal | None = None

    def add(self, outcome: TaskOutcome, record: TagRecord | None = None) -> None:
        if record is not None:
            self.records.append(record)
        self.outcomes.append(outcome)
        if len(self.outcomes) >= self.max_records or time.monotonic() - self.since >= self.max_wait_s:
            self.flush()
        if self.journal is not None:
            self.journal.ended(outcome.asset)

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
    journal: AssetJournal | None = None,
) -> ShardResult:
    statuses = (TaskStatus.PENDING, TaskStatus.FAILED) if work.retry_failed else (TaskStatus.PENDING,)
    skip = set(work.skip)
    tasks = [t for t in index.tasks_in_shard(work.job_id, work.shard, statuses) if t.asset not in skip]
    if not tasks:
        return ShardResult(shard=work.shard, done=0, failed=0)
    part = output.part(work.job_id, work.shard)
    reconcile_part(part, index, work.job_id)
    writer = _ShardWriter(index, part, work.job_id, settings.write_batch, settings.write_interval_seconds, journal=journal)
    # incremental jobs (issue 12): an earlier job's record of an unchanged asset is copied, not predicted
    reused = reuse_records(tasks, index, writer.add, bot=runtime.bot_name, model_version=runtime.model_version) if work.incremental else set()
    tasks = [task for task in tasks if task.asset not in reused]
    limits = limits_from(settings)
    suspects = set(work.suspects)

    def read_and_decode(task: Task) -> Any:
        if journal is not None:
            journal.started(task.asset)
        asset = AssetRef(uri=task.asset, etag=task.etag, size=0)
        if reads_from_file(task.asset, runtime.input_kind) and isinstance(store, FileAssetStore):
            spool = settings.spool_dir or Path(tempfile.gettempdir())
            return open_video_file(task.asset, store.open_file(asset, limits.media.max_video_bytes, spool), limits)
        return decode_asset(store.read(asset, limits.max_asset_bytes), runtime.input_kind, limits, task.asset)  # type: ignore[arg-type]

    stopped = False
    try:
        # suspects (in flight when a worker died) go first and alone, so a second death names its asset
        alone = [t for t in tasks if t.asset in suspects]
        rest = [t for t in tasks if t.asset not in suspects]
        stopped = _tag_tasks(alone, read_and_decode, runtime, writer, work.job_id, settings, 1, 1, should_stop)
        if not stopped:
            if alone:
                writer.flush()
            batch_size = work.batch_size or runtime.batch_size
            stopped = _tag_tasks(
                rest, read_and_decode, runtime, writer, work.job_id, settings, settings.read_concurrency, batch_size, should_stop
            )
    finally:
        writer.flush()
        part.close()
    return ShardResult(shard=work.shard, done=writer.done, failed=writer.failed, stopped=stopped, reused=len(reused))


def _tag_tasks(
    tasks: list[Task],
    read_and_decode: Callable[[Task], Any],
    runtime: BotRuntime,
    writer: _ShardWriter,
    job_id: str,
    settings: Settings,
    concurrency: int,
    batch_size: int,
    should_stop: Callable[[], bool],
) -> bool:
    """Reads `concurrency` assets ahead and predicts in batches of `batch_size`; True if told to stop."""
    if not tasks:
        return False
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="read")
    stopped = False
    folds = UnitFolds(writer, job_id, runtime)  # units (pages, frames) back into one record per asset
    text_layer = bool(getattr(runtime, "reads_text_layer", False))
    by_asset = {task.asset: task for task in tasks}
    try:
        batch: list[tuple[Ticket, Any]] = []
        for task, decoded in _read_ahead(tasks, pool, read_and_decode, window=concurrency * 2 if concurrency > 1 else 1):
            if should_stop():  # checked per asset, so a run of bad assets cannot outlast a stop notice
                stopped = True
                break
            try:
                # a video is opened, not read (a local file), or copied from S3, whose socket reads time out
                # on their own: a long copy is not a hung read
                timeout = None if reads_from_file(task.asset, runtime.input_kind) else settings.read_timeout_seconds
                units = expand_units(decoded.result(timeout=timeout), text_layer)
                for number, unit in enumerate(units):  # lazy: one page or frame at a time
                    if number and (stopped := should_stop()):  # and per unit: a long video cannot outlast it either
                        break
                    ticket = folds.add(task, unit)
                    if ticket is not None:
                        batch.append((ticket, unit.value))
                    if len(batch) >= batch_size:
                        _predict_batch(batch, runtime, folds, by_asset)
                        batch = []
                    if folds.is_failed(task):
                        break
            except AssetError as error:
                folds.failed(task, str(error))
            except FutureTimeout:  # a file that blocks on read (a hung mount): it fails, the shard goes on
                decoded.cancel()
                folds.failed(task, f"reading took longer than read_timeout_seconds ({settings.read_timeout_seconds:g} s)")
            if stopped:
                break  # the asset stays PENDING: its retry tags it whole
            folds.expanded(task)
        if batch:  # at most one micro-batch, decoded already: tagging it beats redoing it
            _predict_batch(batch, runtime, folds, by_asset)
        return stopped
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a read stuck in the kernel must not hold the shard


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


def _predict_batch(batch: list[tuple[Ticket, Any]], runtime: BotRuntime, folds: UnitFolds, tasks: dict[str, Task]) -> None:
    # RuntimeUnavailableError passes through: the endpoint is down, not the asset bad, so the shard stops
    results = predict_each(
        runtime.predict, [value for _, value in batch], bot_name=runtime.bot_name, passthrough=(RuntimeUnavailableError,)
    )
    for (ticket, _), tags in zip(batch, results, strict=True):
        if isinstance(tags, BotFailure):
            folds.failed(tasks[ticket[0]], f"bot error: {tags.error}")
        else:
            folds.tagged(ticket, tags)
