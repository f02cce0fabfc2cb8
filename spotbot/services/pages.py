"""Bounded answers for the read side of the job API: pages cut by count and by bytes, behind opaque cursors.

A Lambda answer must stay under 6 MB, and the proxy integration escapes the JSON body once more, so a
page stops at PAGE_BYTES of (ASCII-escaped) JSON, whatever `limit` asked for. Its `next` then resumes
just after the last item it kept. A tag record's `text` is cut to HIT_TEXT_CHARS in search hits (the
hit says `truncated`); an item still over ITEM_BYTES keeps only its labels and scores.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any, Protocol

from spotbot.domain.job import LIVE
from spotbot.domain import BadInputError, FieldError, Job, JobCounts, JobStatus
from spotbot.ports import SearchHit, SearchQuery

PAGE_BYTES = 2 * 2**20
ITEM_BYTES = 256 * 2**10
HIT_TEXT_CHARS = 2000


class InvalidCursor(FieldError):
    """A page cursor this API did not give out."""

    def __init__(self, field: str) -> None:
        super().__init__(field, "is not a cursor this API gave out: pass the `next` of the previous page")


class PagedIndex(Protocol):
    def search_page(
        self, query: SearchQuery, search_after: list[Any] | None = None
    ) -> tuple[list[SearchHit], list[Any] | None]: ...
    def list_jobs_page(self, limit: int = 50, after: list[Any] | None = None) -> list[tuple[Job, list[Any]]]: ...
    def counts_of_jobs(self, job_ids: list[str]) -> dict[str, JobCounts]: ...


def encode_cursor(position: list[Any]) -> str:
    """An opaque, URL-safe page cursor."""
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "query.after") -> list[Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        value = None
    if not isinstance(value, list):
        raise InvalidCursor(field)
    return value


def json_bytes(value: Any) -> int:
    """The size of a value as the API sends it (compact, ASCII-escaped JSON)."""
    return len(json.dumps(value, separators=(",", ":"), default=str))


def search_tags(
    index: PagedIndex, query: SearchQuery, after: str | None = None, *, max_bytes: int | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of tag records (newest first) and the cursor of the next page (None: no more)."""
    position = decode_cursor(after) if after else None
    try:
        hits, cursor = index.search_page(query, position)
    except BadInputError:
        raise InvalidCursor("query.after") from None
    items = [(search_item(hit), hit.position) for hit in hits]
    return cut_page(items, cursor, max_bytes or PAGE_BYTES)


def search_item(hit: SearchHit) -> dict[str, Any]:
    """A hit as the API shows it: the record, its snippet, and `truncated` when text or tags were cut."""
    item = hit.record.model_dump(mode="json", exclude_none=True) | {"snippet": hit.snippet}
    text = item.get("text")
    if isinstance(text, str) and len(text) > HIT_TEXT_CHARS:
        item["text"] = text[:HIT_TEXT_CHARS]
        item["truncated"] = True
    if json_bytes(item) > ITEM_BYTES:  # a bot's own tag fields (boxes, long strings) are the rest of the weight
        item["tags"] = [{"label": tag["label"], "score": tag["score"]} for tag in item.get("tags", [])]
        item["snippet"] = item["snippet"][:HIT_TEXT_CHARS]
        item["truncated"] = True
    return item


def list_jobs(
    index: PagedIndex, limit: int = 50, after: str | None = None, *, max_bytes: int | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Jobs newest first, at most limit and max_bytes; live jobs' counts read in one aggregation."""
    position = decode_cursor(after) if after else None
    try:
        listed = index.list_jobs_page(limit + 1, position)
    except BadInputError:
        raise InvalidCursor("query.after") from None
    more = len(listed) > limit
    listed = listed[:limit]
    live = index.counts_of_jobs([job.job_id for job, _ in listed if job.status in LIVE])
    items = [
        ((job.model_copy(update={"counts": live[job.job_id]}) if job.job_id in live else job).model_dump(mode="json"), pos)
        for job, pos in listed
    ]
    return cut_page(items, listed[-1][1] if more and listed else None, max_bytes or PAGE_BYTES)


def cut_page(
    items: Iterable[tuple[dict[str, Any], list[Any] | None]], cursor: list[Any] | None, max_bytes: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The items that fit max_bytes (always at least one, so a page makes progress) and the next page's cursor."""
    kept: list[dict[str, Any]] = []
    last: list[Any] | None = None
    used = 0
    for item, position in items:
        size = json_bytes(item) + 1
        if kept and used + size > max_bytes and last is not None:
            return kept, encode_cursor(last)
        kept.append(item)
        last = position
        used += size
    return kept, encode_cursor(cursor) if cursor is not None else None
