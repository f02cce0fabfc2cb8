"""Continuous tagging (issue 12): tag assets as they arrive, into one long-lived watch job.

The same rules as a job: arrivals are planned against the watch job's tasks (an unchanged asset
-- a duplicate event -- is left alone, a changed one is tagged again), each batch's new tasks form
a shard of their own (one JSON Lines part per batch), and the incremental rule reuses an earlier
job's record of an unchanged asset. `spotbot watch` feeds it filesystem events; the cloud watch
consumer feeds it S3 events from SQS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from spotbot.domain import AssetRef, Job, TaskStatus
from spotbot.ports import AssetStore, BotRuntime, OutputStore, ShardWork, TagIndex
from spotbot.services.planning import plan_assets
from spotbot.services.shard import tag_shard
from spotbot.settings import Settings


@dataclass
class ArrivalResult:
    """What tagging one batch of arrivals did."""

    arrived: int = 0
    planned: int = 0  # new or changed assets; the rest were known and unchanged (duplicates)
    done: int = 0
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # asset -> error, for this batch's assets

    def add(self, other: ArrivalResult) -> None:
        self.arrived += other.arrived
        self.planned += other.planned
        self.done += other.done
        self.reused += other.reused
        self.failed.update(other.failed)


@dataclass
class WatchTarget:
    """Everything a batch of arrivals is tagged with: one watch job, its adapters, and the loaded bot."""

    job_id: str
    index: TagIndex
    store: AssetStore
    output: OutputStore
    runtime: BotRuntime
    settings: Settings
    bot: str  # the bot as asked for (a name or module:Class), as the job records it
    incremental: bool = True
    retry_failed: bool = False  # the cloud consumer retries through SQS redelivery; locally, a change retries


def open_watch_job(target: WatchTarget) -> Job:
    """The watch job, created or resumed (RUNNING); a job id used by another bot, source or output is refused."""
    job = target.index.get_job(target.job_id)
    if job is None:
        job = Job(
            job_id=target.job_id,
            bot=target.bot,
            source=target.store.source,
            output=target.output.location,
            workers=1,
            model_version=target.runtime.model_version,
        )
    else:
        job.check_same(bot=target.bot, source=target.store.source, output=target.output.location)
    job = job.start(target.index.counts(target.job_id), workers=1, model_version=target.runtime.model_version)
    target.index.save_job(job)
    return job


def close_watch_job(target: WatchTarget, job: Job) -> Job:
    """The watch stopped: the job finishes from its counts, and starts again (a resume) when the watch does."""
    job = target.index.get_job(job.job_id) or job
    job = job.finish(target.index.counts(job.job_id), model_version=target.runtime.model_version)
    target.index.save_job(job)
    return job


def tag_arrivals(target: WatchTarget, arrivals: Iterable[AssetRef], should_stop: Callable[[], bool] = lambda: False) -> ArrivalResult:
    """Plans the arrived assets into the watch job and tags the shards that hold their work."""
    refs = list({ref.uri: ref for ref in arrivals}.values())  # the last event of an asset wins
    result = ArrivalResult(arrived=len(refs))
    if not refs:
        return result
    index = target.index
    result.planned = len(plan_assets(index, target.job_id, refs, target.settings.max_shard_size).tasks)
    uris = [ref.uri for ref in refs]
    # the planned tasks, and those a stopped watch left PENDING: unchanged, so not planned again
    with_work = (TaskStatus.PENDING, TaskStatus.FAILED) if target.retry_failed else (TaskStatus.PENDING,)
    shards = {t.shard for t in index.tasks_by_asset(target.job_id, uris).values() if t.status in with_work}
    for shard in sorted(shards):
        work = ShardWork(
            job_id=target.job_id,
            shard=shard,
            bot=target.bot,
            source=target.store.source,
            output=target.output.location,
            retry_failed=target.retry_failed,
            incremental=target.incremental,
        )
        tagged = tag_shard(
            work, index=index, store=target.store, output=target.output, runtime=target.runtime,
            settings=target.settings, should_stop=should_stop,
        )
        result.done += tagged.done
        result.reused += tagged.reused
    tasks = index.tasks_by_asset(target.job_id, uris)
    result.failed = {a: t.error or "failed" for a, t in tasks.items() if t.status is TaskStatus.FAILED}
    return result


def watch_folder(
    target: WatchTarget,
    batches: Iterator[Sequence[AssetRef]],
    *,
    file_types: tuple[str, ...],
    on_batch: Callable[[ArrivalResult], None] = lambda result: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ArrivalResult:
    """Catches up on what arrived while nobody watched, then tags each batch of arrivals until the feed ends.

    The feed should be listening before this is called, so nothing that arrives during the catch-up is missed.
    """
    job = open_watch_job(target)
    total = ArrivalResult()
    try:
        caught_up = tag_arrivals(target, target.store.scan(file_types), should_stop)
        total.add(caught_up)
        on_batch(caught_up)
        for batch in batches:
            result = tag_arrivals(target, batch, should_stop)
            total.add(result)
            if result.planned:
                target.index.save_job(job.model_copy(update={"counts": target.index.counts(job.job_id)}))
            on_batch(result)
    finally:
        close_watch_job(target, job)
    return total
