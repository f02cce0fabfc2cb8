"""The domain: the records every part shares, the job lifecycle, planning, errors. No I/O here."""

from spotbot.domain.errors import (
    BadInputError,
    ConflictError,
    FieldError,
    ForbiddenError,
    NotFoundError,
    SpotbotError,
    UnavailableError,
)
from spotbot.domain.job import Job, JobConflictError, JobFinishedError, final_status
from spotbot.domain.planning import TaskPlan, TooManyShardsError, auto_shard_size, plan_tasks, shard_capacity
from spotbot.domain.reuse import RECORDED_STATUSES, deleted_assets, reusable_for, reuse_id, reused_copy
from spotbot.domain.records import (
    JOB_ID_PATTERN,
    AssetRef,
    JobCounts,
    JobStatus,
    Tag,
    TagRecord,
    Task,
    TaskStatus,
    new_job_id,
    tag_record_to_json,
    task_id,
    utc_now,
    validate_job_id,
)

__all__ = [
    "JOB_ID_PATTERN", "AssetRef", "BadInputError", "ConflictError", "FieldError", "ForbiddenError", "Job", "JobConflictError", "JobCounts",
    "JobFinishedError", "JobStatus", "NotFoundError", "SpotbotError", "Tag", "TagRecord", "Task", "TaskPlan",
    "TaskStatus", "TooManyShardsError", "UnavailableError", "auto_shard_size", "final_status", "new_job_id",
    "plan_tasks", "shard_capacity", "RECORDED_STATUSES", "deleted_assets", "reusable_for", "reuse_id", "reused_copy", "tag_record_to_json", "task_id", "utc_now", "validate_job_id",
]
