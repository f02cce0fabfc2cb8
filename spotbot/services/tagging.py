"""The service layer: what the CLI (and later the Lambda handlers) call. Business rules live here once."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

from spotbot.services.bots import resolve_bot
from spotbot.domain import (
    RECORDED_STATUSES,
    BadInputError,
    Job,
    JobCounts,
    NotFoundError,
    SpotbotError,
    TaskStatus,
    auto_shard_size,
    new_job_id,
    tag_record_to_json,
    validate_job_id,
)
from spotbot.services.models import ModelError, ModelRegistry
from spotbot.ports import AssetStore, JobRunner, OutputStore, ShardWork, TagIndex
from spotbot.domain.pricing import JobCost, local_job_cost
from spotbot.services.estimate import load_price_table
from spotbot.services.planning import plan_assets
from spotbot.services.incremental import deleted_since, earlier_jobs, forget_deleted, reuse_before_running
from spotbot.settings import Settings


@dataclass(frozen=True)
class TagRequest:
    """How to tag: the source and the output are the stores tag_assets is handed."""

    bot: str
    workers: int | None = None
    shard_size: int | None = None
    job_id: str | None = None
    batch_size: int | None = None
    retry_failed: bool = True
    model_version: str | None = None  # pin a version; default: the registry's current one
    incremental: bool = True  # reuse earlier jobs' records of unchanged assets; False (--full) re-tags
    report_deleted: bool = False  # list assets earlier jobs tagged that are gone from the source
    forget_deleted: bool = False  # and drop those earlier records from the index (implies report_deleted)


@dataclass
class JobRun:
    """What one run of a job did: the job as it ended, and this run's own figures."""

    job: Job
    summary_path: str
    scanned: int = 0
    new_tasks: int = 0
    processed: int = 0
    reused: int = 0  # assets whose record an earlier job made, copied instead of predicted
    deleted: list[str] = field(default_factory=list)  # with report_deleted: tagged before, gone now
    forgotten: int = 0  # with forget_deleted: earlier records of the deleted assets dropped from the index
    wall_seconds: float = 0.0
    tagging_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what the scan left out, and why

    @property
    def assets_per_second(self) -> float:
        return self.processed / self.tagging_seconds if self.tagging_seconds > 0 else 0.0


ProgressCallback = Callable[[str, JobCounts], None]


def tag_assets(
    request: TagRequest,
    settings: Settings,
    *,
    index: TagIndex,
    store: AssetStore,
    output: OutputStore,
    runner_for: Callable[[int], JobRunner],
    lock: Callable[[str], AbstractContextManager[Any]],
    registry: ModelRegistry | None = None,
    on_progress: ProgressCallback = lambda phase, counts: None,
) -> JobRun:
    """Scans the source, records a task per asset, and runs the shards that still have work.

    Running it again with the same job id tags only what is missing.
    """
    started = time.monotonic()
    bot_class = resolve_bot(request.bot)
    model = registry.resolve(bot_class.name, request.model_version) if registry else None
    if model is None and request.model_version:
        raise ModelError(f"cannot pin {bot_class.name} model version {request.model_version}: no model store given")
    job_id = validate_job_id(request.job_id) if request.job_id else new_job_id()
    workers = request.workers or settings.workers
    if workers < 1:
        raise BadInputError(f"workers must be at least 1, got {workers}")
    with lock(job_id):  # one run of a job at a time (JobLockedError, a ConflictError, otherwise)
        job = index.get_job(job_id)
        model_version = model.version if model else bot_class.default_model_version()
        if job is None:
            job = Job(
                job_id=job_id,
                bot=request.bot,
                source=store.source,
                output=output.location,
                workers=workers,
                model_version=model_version,
            )
        else:
            job.check_same(bot=request.bot, source=store.source, output=output.location)
        index.save_job(job)

        on_progress("scan", index.counts(job_id))
        try:
            assets = list(store.scan(bot_class.file_types))
            shard_size = request.shard_size or auto_shard_size(len(assets), workers, settings.max_shard_size)
            new_tasks = len(plan_assets(index, job_id, assets, shard_size).tasks)
        except (SpotbotError, OSError) as error:  # the source is down or unreadable: no ghost job left RUNNING
            index.save_job(job.finish(index.counts(job_id), error=str(error)))
            raise

        statuses = (TaskStatus.PENDING, TaskStatus.FAILED) if request.retry_failed else (TaskStatus.PENDING,)
        shards = index.shards_with_work(job_id, statuses)
        reused = 0
        if request.incremental:
            reused = reuse_before_running(
                index, output, job_id, shards, statuses, bot=bot_class.name, model_version=model_version
            )
            shards = index.shards_with_work(job_id, statuses) if reused else shards
        deleted, forgotten = [], 0
        if request.report_deleted or request.forget_deleted:
            earlier = earlier_jobs(index, job)
            deleted = deleted_since(index, earlier, (a.uri for a in assets))
            forgotten = forget_deleted(index, earlier, deleted) if request.forget_deleted else 0
        before = index.counts(job_id)
        job = job.start(before, workers=workers, model_version=model_version)
        index.save_job(job)

        threads = max(1, (os.cpu_count() or 1) // min(workers, max(1, len(shards))))
        work = [
            ShardWork.of(
                job,  # its bot, source and output are the request's: a resumed job's are checked above
                shard,
                retry_failed=request.retry_failed,
                batch_size=request.batch_size,
                threads=threads,
                model_dir=str(model.path) if model and model.path else None,
                incremental=request.incremental,  # again in the shard: a module bot's model version is known once loaded
            )
            for shard in shards
        ]
        tagging_started, cpu_before = time.monotonic(), _cpu_seconds()
        on_progress("tag", before)
        try:
            restore_outputs(index, output, job_id)
            outcome = runner_for(workers).run(work, on_tick=lambda: on_progress("tag", index.counts(job_id)))
            tagging_seconds = time.monotonic() - tagging_started
            counts = index.counts(job_id)
            model_versions = {r.model_version for r in outcome.results if r.model_version}
            job = job.finish(counts, model_version=", ".join(sorted(model_versions)))
            job = job.record_cost(run_cost(job, _cpu_seconds() - cpu_before))
            summary_path = output.write_summary(job)
        except (SpotbotError, OSError) as error:  # the bot would not load, a service or disk failed: the job did, no asset
            reason = f"{error.strerror}: {error.filename}" if isinstance(error, OSError) and error.strerror else str(error)
            index.save_job(job.finish(index.counts(job_id), error=reason))
            raise
        except BaseException:
            index.save_job(job.cancel(index.counts(job_id)))  # resumable: the same job id tags the rest
            raise
        index.save_job(job)
        on_progress("done", counts)
    return JobRun(
        job=job,
        summary_path=summary_path,
        scanned=len(assets),
        new_tasks=new_tasks,
        processed=sum(r.done + r.failed for r in outcome.results),
        reused=reused + sum(r.reused for r in outcome.results),
        deleted=deleted,
        forgotten=forgotten,
        wall_seconds=time.monotonic() - started,
        tagging_seconds=tagging_seconds,
        errors=outcome.errors,
        skipped=list(getattr(store, "skipped", ())),  # only a local folder can hold pipes, devices and sockets
    )


def restore_outputs(index: TagIndex, output: OutputStore, job_id: str) -> int:
    """Makes every part file hold one line per recorded (DONE or reused) asset of its shard again, from the index (which holds
    every tag): a deleted output folder or a corrupted part is whole after a resume. Returns the parts rewritten."""
    last = index.max_shard(job_id)
    records: dict[str, dict] | None = None
    rewritten = 0
    for shard in range(last + 1 if last is not None else 0):
        done = [t.asset for t in index.tasks_in_shard(job_id, shard, RECORDED_STATUSES)]
        part = output.part(job_id, shard)
        lines = part.read_records()
        if sorted(r.get("asset", "") for r in lines) == sorted(done):
            continue
        if records is None:  # read the index once, only when some part needs it
            records = {r.asset: tag_record_to_json(r) for r in index.tag_records(job_id)}
        part.rewrite([records[asset] for asset in done if asset in records])
        part.close()
        rewritten += 1
    return rewritten


def job_status(index: TagIndex, job_id: str) -> Job:
    job = index.get_job(job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r}; `spotbot jobs` lists the jobs")
    return job.model_copy(update={"counts": index.counts(job_id)})


def default_output_dir(job: Job | None, requested: str | None, fallback: str = "spotbot-output") -> str:
    """A resumed job keeps writing where it started, unless told otherwise."""
    if requested:
        return requested
    return job.output if job else str(Path(fallback).resolve())


def _cpu_seconds() -> float:
    """User+system CPU of this process and its finished children (the pool's workers, once shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_cost(job: Job, cpu_seconds: float) -> JobCost:
    """The job's CPU-seconds on this machine, this run's added to earlier runs', priced as Spot vCPU-hours."""
    earlier = job.cost.cpu_seconds if job.cost and job.cost.where == "local" else 0.0
    return local_job_cost(earlier + cpu_seconds, load_price_table())
