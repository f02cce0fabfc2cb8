"""The one home of how an S3 listing becomes assets: which keys a bot reads, and an object's ETag."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter

from spotbot.domain import AssetRef

_ASSETS = TypeAdapter(list[AssetRef])  # a page's assets checked in one call: a third of AssetRef(...) per item


def wanted_types(file_types: Iterable[str]) -> tuple[str, ...]:
    """Extensions, lower-cased, for `is_wanted`."""
    return tuple(t.lower() for t in file_types)


def is_wanted(key: str, wanted: tuple[str, ...]) -> bool:
    """An object (not a folder marker) whose extension, any case, is one of `wanted` (lower-case)."""
    return not key.endswith("/") and key.lower().endswith(wanted)


def unquote_etag(etag: str) -> str:
    """S3 answers ETags in double quotes; the index keeps them bare."""
    return etag.strip('"')


def asset_of(bucket: str, item: dict[str, Any]) -> AssetRef:
    """One ListObjectsV2 `Contents` item as an asset."""
    return AssetRef(uri=f"s3://{bucket}/{item['Key']}", etag=unquote_etag(item["ETag"]), size=item["Size"])


def assets_of(bucket: str, items: Iterable[dict[str, Any]]) -> list[AssetRef]:
    """ListObjectsV2 `Contents` items as assets (a page of them at a time)."""
    return _ASSETS.validate_python(
        [{"uri": f"s3://{bucket}/{item['Key']}", "etag": unquote_etag(item["ETag"]), "size": item["Size"]} for item in items]
    )
