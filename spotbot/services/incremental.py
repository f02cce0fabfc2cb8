"""Incremental jobs at the job level: reuse before any worker starts, and report what is gone since tagged."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spotbot.domain import BadInputError, Job, TagRecord, TaskStatus, deleted_assets, tag_record_to_json
from spotbot.ports import ForgettingIndex, OutputStore, TagIndex, TaskOutcome
from spotbot.services.reusing import reuse_records
from spotbot.services.shard import reconcile_part


def reuse_before_running(
    index: TagIndex,
    output: OutputStore,
    job_id: str,
    shards: Sequence[int],
    statuses: tuple[TaskStatus, ...],
    *,
    bot: str,
    model_version: str,
) -> int:
    """Reuses what it can in these shards before any worker starts, so an unchanged source loads no model at all."""
    total = 0
    for shard in shards:
        tasks = index.tasks_in_shard(job_id, shard, statuses)
        records: list[TagRecord] = []
        outcomes: list[TaskOutcome] = []

        def add(outcome: TaskOutcome, record: TagRecord) -> None:
            outcomes.append(outcome)
            records.append(record)

        reuse_records(tasks, index, add, bot=bot, model_version=model_version)
        if not records:
            continue
        part = output.part(job_id, shard)
        try:
            reconcile_part(part, index, job_id)
            part.append([tag_record_to_json(r) for r in records])  # lines before the index, as a shard writes them
            index.record_outcomes(records, outcomes, job_id)
        finally:
            part.close()
        total += len(records)
    return total


def earlier_jobs(index: TagIndex, job: Job, *, max_jobs: int = 1000) -> list[str]:
    """Earlier jobs of this bot over this source, by id."""
    return [j.job_id for j in index.list_jobs(limit=max_jobs) if j.bot == job.bot and j.source == job.source and j.job_id != job.job_id]


def deleted_since(index: TagIndex, earlier: Sequence[str], present: Iterable[str]) -> list[str]:
    """Assets that these earlier jobs (earlier_jobs) tagged and that the source no longer holds.

    Reports only: their records stay in the index and in the earlier jobs' output (forget_deleted drops them).
    """
    tagged = (record.asset for job_id in earlier for record in index.tag_records(job_id))
    return deleted_assets(tagged, present)


def forget_deleted(index: TagIndex | ForgettingIndex, earlier: Sequence[str], deleted: Sequence[str]) -> int:
    """Drops the earlier jobs' tag records of these deleted assets from the index: search no longer finds them.

    Their tasks stay (the job's history), and so do the earlier jobs' JSON Lines: an output file is a record
    of what that job found, not a live view."""
    if not isinstance(index, ForgettingIndex):
        raise BadInputError("this tag index cannot drop records (--forget-deleted is for the local index)")
    return index.forget_records(earlier, deleted) if deleted else 0
