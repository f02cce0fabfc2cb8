"""Incremental jobs: copy an earlier job's record of an unchanged asset instead of predicting again.

The rule is spotbot.domain.reuse; this is its I/O. A reused asset's task ends SKIPPED, and its
record -- marked `reused_from` -- goes into the job's part file and index like a predicted one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from spotbot.domain import Job, TagRecord, Task, TaskStatus, deleted_assets, reusable_for, tag_record_to_json
from spotbot.ports import OutputStore, ReuseIndex, TagIndex, TaskOutcome

AddOutcome = Callable[[TaskOutcome, TagRecord], None]


def reuse_records(tasks: Sequence[Task], index: ReuseIndex, add: AddOutcome, *, bot: str, model_version: str) -> set[str]:
    """Hands `add` a SKIPPED outcome and the reused record for each task an earlier job's record covers; returns those assets."""
    if not tasks:
        return set()
    found = index.reusable_records(bot, model_version, [(t.asset, t.etag) for t in tasks])
    reused = reusable_for(tasks, found, bot=bot, model_version=model_version)
    for asset, record in reused.items():
        add(TaskOutcome(asset, TaskStatus.SKIPPED), record)
    return set(reused)


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
    from spotbot.services.shard import reconcile_part  # the shard's own rule for what its part file holds

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


def deleted_since(index: TagIndex, job: Job, present: Iterable[str], *, max_jobs: int = 1000) -> list[str]:
    """Assets that earlier jobs of this bot over this source tagged and that the source no longer holds.

    Reports only: their records stay in the index and in the earlier jobs' output.
    """
    earlier = [j for j in index.list_jobs(limit=max_jobs) if j.bot == job.bot and j.source == job.source and j.job_id != job.job_id]
    tagged = (record.asset for j in earlier for record in index.tag_records(j.job_id))
    return deleted_assets(tagged, present)
