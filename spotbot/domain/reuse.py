"""The reuse rule: a tag record made for (bot, model version, asset, etag) serves any later job. No I/O here.

An asset whose bytes (etag) and bot model are unchanged gets the same tags again, so a new job copies
the earlier record instead of predicting; a new etag or model version misses by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from spotbot.domain.records import TagRecord, Task, TaskStatus

RECORDED_STATUSES = (TaskStatus.DONE, TaskStatus.SKIPPED)  # a task in either has its record in the job's output


def reuse_id(bot: str, model_version: str, asset: str, etag: str) -> str:
    """Deterministic id of the reusable record for this asset version and model: a multi-get key."""
    return hashlib.sha256(f"{bot}\0{model_version}\0{asset}\0{etag}".encode()).hexdigest()[:32]


def record_reuse_id(record: TagRecord) -> str:
    return reuse_id(record.bot, record.model_version, record.asset, record.etag)


def reused_copy(record: TagRecord, job_id: str) -> TagRecord:
    """The record as the new job's own, naming the job that predicted it (the first one, through chains of reuse)."""
    return record.model_copy(update={"job_id": job_id, "reused_from": record.reused_from or record.job_id})


def reusable_for(
    tasks: Iterable[Task], found: Mapping[str, TagRecord], *, bot: str, model_version: str
) -> dict[str, TagRecord]:
    """Of the records found for these tasks, those that really match (asset, etag, bot, model version), by asset.

    A record of the task's own job is not reuse (resume handles it).
    """
    matched: dict[str, TagRecord] = {}
    for task in tasks:
        record = found.get(task.asset)
        if (
            record is not None
            and record.etag == task.etag
            and record.bot == bot
            and record.model_version == model_version
            and record.job_id != task.job_id
        ):
            matched[task.asset] = reused_copy(record, task.job_id)
    return matched


def deleted_assets(tagged: Iterable[str], present: Iterable[str]) -> list[str]:
    """Assets an earlier job tagged that the source no longer holds, sorted."""
    still = set(present)
    return sorted({asset for asset in tagged if asset not in still})


__all__ = ["RECORDED_STATUSES", "deleted_assets", "record_reuse_id", "reusable_for", "reuse_id", "reused_copy"]
