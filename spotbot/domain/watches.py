"""A cloud watch: a source prefix subscribed to a bot, tagged as objects arrive. No I/O here."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, Field

from spotbot.domain.errors import BadInputError
from spotbot.domain.records import AssetRef, utc_now, validate_job_id


def watch_job_id(source: str, bot: str) -> str:
    """The watch (and its job) for a source and bot: the same id every time, so registering twice is one watch."""
    digest = hashlib.sha256("\0".join((source, bot)).encode()).hexdigest()[:12]
    return validate_job_id(f"watch-{digest}")


class Watch(BaseModel):
    watch_id: str
    source: str  # s3://bucket/prefix
    bot: str
    output: str  # s3://bucket/prefix; each batch's records go to <output>/<watch_id>/part-<n>.jsonl
    model_version: str | None = None
    incremental: bool = True
    file_types: tuple[str, ...] = ()
    created_at: datetime = Field(default_factory=utc_now)

    def covers(self, uri: str) -> bool:
        """Whether an arrived object is this watch's: under its prefix and of its bot's file types."""
        return uri.startswith(self.source) and uri.lower().endswith(tuple(t.lower() for t in self.file_types))


def s3_source(source: str) -> tuple[str, str]:
    """(bucket, prefix) of an s3:// source; BadInputError names what is wrong."""
    if not source.startswith("s3://") or not source[5:].split("/", 1)[0]:
        raise BadInputError(f"source {source!r} is not an s3://bucket/prefix URI")
    bucket, _, prefix = source[5:].partition("/")
    return bucket, prefix


def asset_from_event(event: dict[str, Any]) -> AssetRef:
    """The object of an S3 "Object Created" event as EventBridge delivers it (through SQS), key URL-decoded."""
    return assets_from_event(event)[0]


def assets_from_event(event: dict[str, Any]) -> list[AssetRef]:
    """What the event's object may be: its key URL-decoded, then as written when that differs.

    S3 documents URL-encoded keys for its notifications ("red flower.jpg" arrives as "red+flower.jpg"),
    but a key can hold '+' and '%' itself, so when decoding changes the key, both readings are kept
    and the one that exists wins (WatchConsumer.exists)."""
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        raise BadInputError(f"not an S3 Object Created event: {event.get('source')!r} {event.get('detail-type')!r}")
    try:
        detail = event["detail"]
        bucket, obj = detail["bucket"]["name"], detail["object"]
        etag, size = str(obj.get("etag", "")).strip('"'), int(obj.get("size", 0))
        keys = list(dict.fromkeys((unquote_plus(obj["key"]), obj["key"])))
        return [AssetRef(uri=f"s3://{bucket}/{key}", etag=etag, size=size) for key in keys]
    except (KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"S3 event without {error}: cannot tell which object arrived") from None
