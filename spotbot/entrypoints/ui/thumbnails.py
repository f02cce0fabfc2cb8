"""Thumbnails made on demand from assets in the index, and kept in a cache folder.

An asset is only ever read through its job's asset store, for a record the index holds; the request
names a record id, never a path. The original's size is kept beside each thumbnail, so OCR boxes
(in the original's pixels) can be drawn over the thumbnail.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from spotbot.domain import AssetRef, TagRecord
from spotbot.services.decoding import AssetError, DecodeLimits, decode_image
from spotbot.settings import Settings

THUMB_PIXELS = 320  # the longest side; the gallery shows them at 200 CSS pixels, sharp on a 1.5x screen


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    width: int  # of the original, in the pixels the bot's boxes use
    height: int


class ThumbnailCache:
    def __init__(self, folder: Path, settings: Settings) -> None:
        self.folder = folder
        self.settings = settings
        self.limits = DecodeLimits(settings.max_asset_bytes, settings.max_image_pixels, settings.max_text_bytes)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, record: TagRecord, source: str) -> Thumbnail:
        """The record's thumbnail, made now if not cached. Raises AssetError when the asset cannot be shown."""
        key = hashlib.sha256(f"{record.asset}\0{record.etag}".encode()).hexdigest()
        jpeg_path, size_path = self.folder / f"{key}.jpg", self.folder / f"{key}.json"
        with self._lock_for(key):  # two page loads of the same asset make it once
            if jpeg_path.is_file() and size_path.is_file():
                size = json.loads(size_path.read_text())
                return Thumbnail(jpeg_path.read_bytes(), size["width"], size["height"])
            thumbnail = self._make(record, source)
            self.folder.mkdir(parents=True, exist_ok=True)
            jpeg_path.write_bytes(thumbnail.jpeg)
            size_path.write_text(json.dumps({"width": thumbnail.width, "height": thumbnail.height}))
            return thumbnail

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _make(self, record: TagRecord, source: str) -> Thumbnail:
        from spotbot.adapters.wiring import open_asset_store

        try:
            store = open_asset_store(source, self.settings)
        except (FileNotFoundError, ValueError) as error:
            raise AssetError(f"the job's source is gone: {error}") from None
        if not source.startswith("s3://") and not _inside(record.asset, source):
            raise AssetError("the asset is not under its job's source")  # a tampered index: read nothing
        data = store.read(AssetRef(uri=record.asset, etag=record.etag, size=0), self.settings.max_asset_bytes)
        image = decode_image(data, self.limits)
        width, height = image.size
        image.thumbnail((THUMB_PIXELS, THUMB_PIXELS))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=82)
        return Thumbnail(out.getvalue(), width, height)


def _inside(asset: str, source: str) -> bool:
    root = Path(source).resolve()
    path = Path(asset).resolve()
    return path == root or path.is_relative_to(root)
