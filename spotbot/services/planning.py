"""Planning a job's tasks against the index: the planner's rule (spotbot.domain.planning) with the index's I/O."""

from __future__ import annotations

from collections.abc import Sequence

from spotbot.domain import AssetRef, TaskPlan, plan_tasks
from spotbot.ports import TagIndex


def add_assets(index: TagIndex, job_id: str, assets: Sequence[AssetRef], shard_size: int) -> int:
    """Records a task per new asset and resets the task of each changed one; returns how many it wrote."""
    return len(plan_assets(index, job_id, assets, shard_size).tasks)


def plan_assets(index: TagIndex, job_id: str, assets: Sequence[AssetRef], shard_size: int) -> TaskPlan:
    """Plans found assets against the job's known tasks and writes the plan; new shards follow the last one."""
    known = index.tasks_by_asset(job_id, [a.uri for a in assets])
    last_shard = index.max_shard(job_id)
    plan = plan_tasks(job_id, assets, known, next_shard=0 if last_shard is None else last_shard + 1, shard_size=shard_size)
    if plan.tasks:
        index.add_tasks(plan.tasks)
    return plan
