"""Planning tasks: which found assets need a task, and in which shard. One rule for local and cloud.

The planner is pure: given the assets a scan found and the tasks the job already has for them, it
says which tasks to write. A new asset gets a PENDING task in the next shard with room; an asset whose
etag changed gets a PENDING task again in its old shard; an unchanged asset is left as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from spotbot.domain.errors import BadInputError
from spotbot.domain.records import AssetRef, Task, utc_now

BATCH_ARRAY_MAX = 10_000  # an AWS Batch array job has at most this many children: one per shard
FIXED_SIZE_SHARDS = 5_000  # shards past this grow, so a huge job still fits BATCH_ARRAY_MAX


class TooManyShardsError(BadInputError):
    """A job would need more shards than one Batch array job can hold."""


def auto_shard_size(asset_count: int, workers: int, max_shard_size: int = 1000) -> int:
    """About four shards per worker, so the pool stays busy to the end; at most max_shard_size."""
    return max(1, min(max_shard_size, math.ceil(asset_count / max(1, workers * 4))))


def shard_capacity(shard: int, shard_size: int) -> int:
    """How many assets shard number `shard` holds: shard_size, doubling every 1,000 shards after the first 5,000."""
    if shard < FIXED_SIZE_SHARDS:
        return shard_size
    return shard_size * 2 ** ((shard - FIXED_SIZE_SHARDS) // 1000 + 1)


@dataclass
class TaskPlan:
    """What to write for one batch of found assets."""

    new: list[Task] = field(default_factory=list)  # assets with no task yet, dealt into shards
    changed: list[Task] = field(default_factory=list)  # assets whose etag changed: PENDING again, same shard
    unchanged: int = 0
    next_shard: int = 0  # the first shard the next batch may fill
    carry: list[AssetRef] = field(default_factory=list)  # new assets held back to fill a shard (final=False)

    @property
    def tasks(self) -> list[Task]:
        return self.changed + self.new


def plan_tasks(
    job_id: str,
    found: Iterable[AssetRef],
    known: Mapping[str, Task],
    *,
    next_shard: int,
    shard_size: int,
    final: bool = True,
    replan_from_shard: int | None = None,
) -> TaskPlan:
    """Classifies found assets against the job's known tasks (by asset uri) and deals new ones into shards.

    Assets are deduplicated (the first one found wins) and new ones sorted by uri, so neighbours in a
    folder share a shard. With final=False a last, partly filled shard is held back in `carry`, for a
    scan that goes on. replan_from_shard: tasks in shards from this one were planned by an attempt that
    did not finish, and are planned again as new.
    """
    if shard_size < 1:
        raise BadInputError(f"shard size must be at least 1, got {shard_size}")
    now = utc_now()
    plan = TaskPlan(next_shard=next_shard)
    new_assets: dict[str, AssetRef] = {}
    seen: set[str] = set()
    for asset in found:
        if asset.uri in seen:
            continue
        seen.add(asset.uri)
        task = known.get(asset.uri)
        if task is None or (replan_from_shard is not None and task.shard >= replan_from_shard):
            new_assets[asset.uri] = asset
        elif task.etag != asset.etag:
            plan.changed.append(Task(job_id=job_id, asset=asset.uri, etag=asset.etag, shard=task.shard, updated_at=now))
        else:
            plan.unchanged += 1
    pending = sorted(new_assets.values(), key=lambda a: a.uri)
    while pending:
        size = shard_capacity(plan.next_shard, shard_size)
        if len(pending) < size and not final:
            plan.carry = pending
            break
        if plan.next_shard >= BATCH_ARRAY_MAX:
            raise TooManyShardsError(
                f"job {job_id} needs more than {BATCH_ARRAY_MAX} shards: give a larger shard size "
                f"(now {shard_size}) or split the source into several jobs"
            )
        plan.new.extend(
            Task(job_id=job_id, asset=a.uri, etag=a.etag, shard=plan.next_shard, updated_at=now) for a in pending[:size]
        )
        pending = pending[size:]
        plan.next_shard += 1
    return plan
