"""Expands assets into units and folds unit tags back into one TagRecord per asset.

The shard's reader threads only read an asset and check its header (`open_media`); its units
(rendered pages, decoded frames) are made lazily on the predicting thread, one at a time, so a
micro-batch holds at most batch_size units whatever the asset's size. `UnitFolds` collects each
asset's unit tags and hands the shard writer one record (or one failure) per asset once all its
units are tagged: resume and exactly-once stay per asset, since an asset whose units were not
all tagged (a stop mid-document) is never written.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from spotbot.ports.bot import InputKind
from spotbot.domain import Tag, TagRecord, Task, TaskStatus
from spotbot.domain.units import Unit, fold_tags, fold_text
from spotbot.ports import LocalFile, TaskOutcome
from spotbot.services import documents, video
from spotbot.domain.limits import AssetError, DecodeLimits, check_size


@dataclass(frozen=True)
class MediaAsset:
    """A document or video read but not yet expanded: its units come from `units()`.

    `data` is the asset's bytes, or for a video a file (the asset itself, or a temporary copy from S3,
    deleted once its frames are read or the MediaAsset is dropped unread)."""

    data: bytes | Path
    suffix: str
    kind: InputKind
    limits: DecodeLimits
    temporary: bool = False

    def __post_init__(self) -> None:
        if self.temporary and isinstance(self.data, Path):
            weakref.finalize(self, self.data.unlink, missing_ok=True)

    def units(self, text_layer: bool) -> Iterator[Unit]:
        media = self.limits.media
        if self.suffix in documents.DOCUMENT_TYPES:
            assert isinstance(self.data, bytes)  # documents are read whole (at most max_asset_bytes)
            if self.kind == "text":
                yield Unit(value=documents.document_text(self.data, media, self.limits.max_text_bytes))
            else:
                yield from documents.page_units(self.data, media, text_layer=text_layer)
        elif self.kind == "text":
            raise AssetError("a video has no text to read: text bots take documents and text files")
        else:
            try:
                yield from video.frame_units(self.data, media)
            finally:
                if self.temporary and isinstance(self.data, Path):
                    self.data.unlink(missing_ok=True)


def open_media(name: str, data: bytes, kind: InputKind, limits: DecodeLimits) -> MediaAsset | None:
    """A MediaAsset for a document or video (by file type); None for every other asset."""
    suffix = PurePosixPath(name).suffix.lower()
    if kind == "bytes" or suffix not in documents.DOCUMENT_TYPES + video.VIDEO_TYPES:
        return None
    check_size(len(data), limits)
    if suffix in documents.DOCUMENT_TYPES:
        documents.check_pdf_header(data)
    return MediaAsset(data, suffix, kind, limits)


def reads_from_file(name: str, kind: InputKind) -> bool:
    """Whether this asset is a video a bot reads frames of: decoded from a file, not read into memory."""
    return kind == "image" and PurePosixPath(name).suffix.lower() in video.VIDEO_TYPES


def open_video_file(name: str, file: LocalFile, limits: DecodeLimits) -> MediaAsset:
    return MediaAsset(file.path, PurePosixPath(name).suffix.lower(), "image", limits, temporary=file.temporary)


def expand_units(decoded: Any, text_layer: bool) -> Iterator[Unit]:
    """The units of a decoded asset: a MediaAsset's pages or frames, or the asset itself as one unit."""
    if isinstance(decoded, MediaAsset):
        return decoded.units(text_layer)
    return iter((Unit(value=decoded),))


class OutcomeWriter(Protocol):
    def add(self, outcome: TaskOutcome, record: TagRecord | None = None) -> None: ...


class RecordNaming(Protocol):
    bot_name: str
    model_version: str


Ticket = tuple[str, int]  # (asset, unit's slot): which unit a prediction belongs to


@dataclass
class _Fold:
    task: Task
    units: list[Unit] = field(default_factory=list)
    tags: list[list[Tag] | None] = field(default_factory=list)
    expanded: bool = False
    error: str | None = None


@dataclass
class UnitFolds:
    writer: OutcomeWriter
    job_id: str
    runtime: RecordNaming
    _folds: dict[str, _Fold] = field(default_factory=dict)

    def add(self, task: Task, unit: Unit) -> Ticket | None:
        """Registers a unit; a ticket when the bot must tag it, None when its tags are known already."""
        fold = self._folds.setdefault(task.asset, _Fold(task))
        # keep only what the record needs: strings are its text, images are dropped once predicted
        fold.units.append(unit if isinstance(unit.value, str) else dataclasses.replace(unit, value=None))
        fold.tags.append(list(unit.tags) if unit.tags is not None else None)
        return None if unit.tags is not None else (task.asset, len(fold.units) - 1)

    def tagged(self, ticket: Ticket, tags: list[Any] | None) -> None:
        fold = self._folds.get(ticket[0])
        if fold is not None:
            fold.tags[ticket[1]] = [t if isinstance(t, Tag) else Tag.model_validate(t) for t in (tags or [])]
            self._finish_if_complete(fold)

    def failed(self, task: Task, error: str) -> None:
        fold = self._folds.setdefault(task.asset, _Fold(task))
        fold.error = fold.error or error
        self._finish_if_complete(fold)

    def is_failed(self, task: Task) -> bool:
        fold = self._folds.get(task.asset)
        return fold is not None and fold.error is not None

    def expanded(self, task: Task) -> None:
        """All the asset's units are registered: it is written as soon as they are all tagged."""
        fold = self._folds.setdefault(task.asset, _Fold(task))
        fold.expanded = True
        self._finish_if_complete(fold)

    def _finish_if_complete(self, fold: _Fold) -> None:
        if not fold.expanded or (fold.error is None and any(t is None for t in fold.tags)):
            return
        del self._folds[fold.task.asset]
        if fold.error is not None:
            self.writer.add(TaskOutcome(fold.task.asset, TaskStatus.FAILED, fold.error))
            return
        record = TagRecord(
            job_id=self.job_id,
            bot=self.runtime.bot_name,
            model_version=self.runtime.model_version,
            asset=fold.task.asset,
            etag=fold.task.etag,
            tags=fold_tags([(u, t or []) for u, t in zip(fold.units, fold.tags, strict=True)]),
            text=fold_text(fold.units),
            encoding=next((getattr(u.value, "encoding", None) for u in fold.units if isinstance(u.value, str)), None),
        )
        self.writer.add(TaskOutcome(record.asset, TaskStatus.DONE), record)
