"""Searching tag records page by page (GET /tags), with opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Protocol

from spotbot.ports import SearchHit, SearchQuery
from spotbot.services.cloud_requests import InvalidRequest


class SearchIndex(Protocol):
    def search_page(
        self, query: SearchQuery, search_after: list[Any] | None = None
    ) -> tuple[list[SearchHit], list[Any] | None]: ...


def search_tags(
    index: SearchIndex,
    query: SearchQuery,
    after: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of tag records (newest first) and the cursor of the next page (None: no more)."""
    hits, cursor = index.search_page(query, decode_cursor(after) if after else None)
    items = [hit.record.model_dump(mode="json", exclude_none=True) | {"snippet": hit.snippet} for hit in hits]
    return items, encode_cursor(cursor) if cursor is not None else None


def encode_cursor(search_after: list[Any]) -> str:
    """An opaque, URL-safe page cursor."""
    return base64.urlsafe_b64encode(json.dumps(search_after, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        value = None
    if not isinstance(value, list):
        raise InvalidRequest("query.after", "is not a cursor this API gave out: pass the `next` of the previous page")
    return value
