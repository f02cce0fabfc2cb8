"""The records every part shares, and the rules on them. No I/O here."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spotbot.domain.errors import BadInputError

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")  # also a valid Step Functions execution name


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    DONE = "DONE"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class JobStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Tag(BaseModel):
    """One label on an asset; bots add their own fields (OCR `text` and `box`, say)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    label: str
    score: float


class AssetRef(BaseModel):
    """An asset as a scan finds it: where it is and which version of it."""

    model_config = ConfigDict(frozen=True)

    uri: str
    etag: str
    size: int


class Task(BaseModel):
    job_id: str
    asset: str
    etag: str
    shard: int
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    error: str | None = None
    updated_at: datetime = Field(default_factory=utc_now)

    @property
    def id(self) -> str:
        return task_id(self.job_id, self.asset)


class TagRecord(BaseModel):
    """The tags one job put on one asset. `text` is the asset's own text, for text assets."""

    job_id: str
    bot: str
    model_version: str
    asset: str
    etag: str
    tags: list[Tag]
    text: str | None = None
    encoding: str | None = None  # the text's encoding, for text assets (detected when no configured one fits)
    created_at: datetime = Field(default_factory=utc_now)
    reused_from: str | None = None  # the job that predicted these tags, when this job reused them

    def searchable_text(self) -> str:
        """What full-text search matches: labels, string fields of tags, and the asset's text."""
        parts: list[str] = []
        for tag in self.tags:
            parts.append(tag.label)
            parts.extend(v for v in (tag.model_extra or {}).values() if isinstance(v, str))
        if self.text:
            parts.append(self.text)
        return "\n".join(parts)

    def snippet(self, terms: list[str], width: int = 60) -> str:
        """The text a search hit shows: around the first term found in the found text and the asset's text."""
        found_text = [str(v) for t in self.tags for v in (t.model_extra or {}).values() if isinstance(v, str)]
        body = (" ".join(found_text + [self.text or ""]).strip() or self.searchable_text()).replace("\n", " ")
        for term in terms:
            at = body.lower().find(term.lower())
            if at >= 0:
                start = max(0, at - width // 2)
                return ("…" if start else "") + body[start : start + width] + ("…" if start + width < len(body) else "")
        return body[:width] + ("…" if len(body) > width else "")


class JobCounts(BaseModel):
    total: int = 0
    pending: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0

    @classmethod
    def from_statuses(cls, by_status: dict[str, int]) -> JobCounts:
        counts = {status.value.lower(): by_status.get(status.value, 0) for status in TaskStatus}
        return cls(total=sum(counts.values()), **counts)


def task_id(job_id: str, asset: str) -> str:
    """Document id of a task: stable, so re-running a job addresses the same task."""
    return hashlib.sha256(f"{job_id}\0{asset}".encode()).hexdigest()[:32]


def validate_job_id(job_id: str) -> str:
    if not JOB_ID_PATTERN.match(job_id):
        raise BadInputError(
            f"job id {job_id!r} is not valid: use 1-80 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return job_id


def new_job_id(now: datetime | None = None) -> str:
    now = now or utc_now()
    return f"job-{now:%Y%m%d-%H%M%S}-{hashlib.sha256(str(now.timestamp()).encode()).hexdigest()[:6]}"


def tag_record_to_json(record: TagRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude_none=True)
