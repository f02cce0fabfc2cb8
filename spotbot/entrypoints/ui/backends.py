"""What the web pages read and write: the local index and review table, or the cloud API (signed like the CLI).

The pages see one small surface; `LocalBackend` and `ApiBackend` are its two sides.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from spotbot.domain import Job, NotFoundError, TagRecord, Task
from spotbot.domain.reviews import Decision, ReviewReason, record_id
from spotbot.ports import SearchQuery
from spotbot.services.reviews import ReviewItem, ReviewService


@dataclass(frozen=True)
class Hit:
    record: TagRecord
    snippet: str

    @property
    def id(self) -> str:
        return record_id(self.record)


@dataclass(frozen=True)
class JobView:
    job: Job
    failed: list[Task] = field(default_factory=list)
    per_second: list[tuple[int, int]] | None = None  # None: the backend cannot tell


class UiBackend(Protocol):
    where: str  # shown in the page header: the index file, or the API URL

    def search(self, query: SearchQuery, cursor: str | None) -> tuple[list[Hit], str | None]: ...
    def jobs(self, limit: int = 50) -> list[Job]: ...
    def job(self, job_id: str) -> JobView: ...
    def record(self, rid: str) -> TagRecord | None: ...
    def job_source(self, job_id: str) -> str | None: ...
    def queue(self, bot: str, limit: int, threshold: float | None) -> tuple[list[ReviewItem], float]: ...
    def decide(self, rid: str, decision: dict[str, Any], reviewer: str) -> dict[str, Any]: ...
    def history(self, rid: str) -> list[dict[str, Any]]: ...
    def accuracy(self) -> list[dict[str, Any]]: ...


class LocalBackend:
    """The SQLite index and its review table, behind one lock (the web server calls from many threads)."""

    def __init__(self, index: Any, reviews: ReviewService) -> None:
        self.index = index  # SQLiteTagIndex
        self.reviews = reviews
        self.where = str(index.path)
        self._lock = threading.Lock()
        self._timelines: dict[tuple[str, Any], list[tuple[int, int]]] = {}

    def search(self, query: SearchQuery, cursor: str | None) -> tuple[list[Hit], str | None]:
        offset = int(cursor) if cursor and cursor.isdigit() else 0
        with self._lock:  # the index pages by limit only: ask for what is before this page too, plus one
            found = self.index.search(SearchQuery(**{**query.__dict__, "limit": offset + query.limit + 1}))
        page = found[offset : offset + query.limit]
        more = len(found) > offset + query.limit
        return [Hit(hit.record, hit.snippet) for hit in page], (str(offset + query.limit) if more else None)

    def jobs(self, limit: int = 50) -> list[Job]:
        with self._lock:
            return [job.model_copy(update={"counts": self.index.counts(job.job_id)}) for job in self.index.list_jobs(limit)]

    def job(self, job_id: str) -> JobView:
        from spotbot.adapters.sqlite.timeline import finished_per_second

        with self._lock:
            job = self.index.get_job(job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id!r} in {self.where}")
            job = job.model_copy(update={"counts": self.index.counts(job_id)})
            key = (job_id, job.finished_at)
            if key not in self._timelines:  # a finished job's timeline never changes: read its 1 M tasks once
                self._timelines = {key: finished_per_second(self.index.db, job_id)} if job.finished_at else {}
            timeline = self._timelines.get(key) or finished_per_second(self.index.db, job_id)
            return JobView(job, self.index.failed_tasks(job_id, limit=200), timeline)

    def record(self, rid: str) -> TagRecord | None:
        return self.reviews.store.record(rid)

    def job_source(self, job_id: str) -> str | None:
        with self._lock:
            job = self.index.get_job(job_id)
        return job.source if job else None

    def queue(self, bot: str, limit: int, threshold: float | None) -> tuple[list[ReviewItem], float]:
        return self.reviews.queue(bot, limit, threshold), self.reviews.threshold(bot, threshold)

    def decide(self, rid: str, decision: dict[str, Any], reviewer: str) -> dict[str, Any]:
        return self.reviews.decide(rid, Decision.parse(decision), reviewer).model_dump(mode="json")

    def history(self, rid: str) -> list[dict[str, Any]]:
        return [review.model_dump(mode="json") for review in self.reviews.history(rid)]

    def accuracy(self) -> list[dict[str, Any]]:
        return [row.as_json() for row in self.reviews.accuracy()]


class ApiBackend:
    """The deployed API (GET /tags, /jobs, /reviews), each request SigV4-signed by ApiClient."""

    def __init__(self, client: Any) -> None:
        self.client = client  # spotbot.adapters.api_client.ApiClient
        self.where = client.base_url

    def search(self, query: SearchQuery, cursor: str | None) -> tuple[list[Hit], str | None]:
        page = self.client.search(query.text, query.bot, query.label, query.job_id, query.limit, cursor)
        hits = [Hit(TagRecord.model_validate(item), str(item.get("snippet", ""))) for item in page["items"]]
        return hits, page.get("next")

    def jobs(self, limit: int = 50) -> list[Job]:
        return [Job.model_validate(job) for job in self.client.jobs(limit)]

    def job(self, job_id: str) -> JobView:
        return JobView(Job.model_validate(self._call("GET", f"/jobs/{quote(job_id, safe='')}")))

    def record(self, rid: str) -> TagRecord | None:
        try:
            answer = self._call("GET", f"/reviews/{quote(rid, safe='')}")
        except NotFoundError:
            return None
        return TagRecord.model_validate(answer["record"])

    def job_source(self, job_id: str) -> str | None:
        try:
            return self.job(job_id).job.source
        except NotFoundError:
            return None

    def queue(self, bot: str, limit: int, threshold: float | None) -> tuple[list[ReviewItem], float]:
        answer = self._call("GET", "/reviews", query={"bot": bot, "limit": limit, "threshold": threshold})
        items = [
            ReviewItem(TagRecord.model_validate(item["record"]), int(item["tag_index"]), ReviewReason(item["reason"]))
            for item in answer["items"]
        ]
        return items, float(answer["threshold"])

    def decide(self, rid: str, decision: dict[str, Any], reviewer: str) -> dict[str, Any]:
        body = Decision.parse(decision).model_dump(mode="json", exclude_none=True)  # checked here too: no round trip to say no
        return self._call("POST", f"/reviews/{quote(rid, safe='')}", body=body | {"reviewer": reviewer})

    def history(self, rid: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/reviews/{quote(rid, safe='')}")["history"]

    def accuracy(self) -> list[dict[str, Any]]:
        return self._call("GET", "/reviews")["accuracy"]

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        from spotbot.adapters.api_client import ApiError
        from spotbot.domain import BadInputError, UnavailableError

        try:
            return self.client.request(method, path, **kwargs)
        except ApiError as error:
            if error.status == 404:
                raise NotFoundError(error.message) from None
            if 400 <= error.status < 500:
                raise BadInputError(str(error)) from None
            raise UnavailableError(str(error)) from None
