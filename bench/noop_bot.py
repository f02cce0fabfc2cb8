"""A bot that does no work, to measure what the pipeline itself costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from spotbot.bot import Bot
from spotbot.domain import Tag


class NoopBot(Bot):
    name: ClassVar[str] = "noop"
    file_types: ClassVar[tuple[str, ...]] = (".txt",)
    input_kind: ClassVar[str] = "text"
    batch_size: ClassVar[int] = 256

    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        self.model_version = "noop"

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        tag = Tag(label="seen", score=1.0)
        return [[tag] for _ in batch]


class NoopImageBot(NoopBot):
    """The same for images, pages and frames: what decoding, rendering and sampling cost."""

    name: ClassVar[str] = "noop-image"
    file_types: ClassVar[tuple[str, ...]] = (".png", ".jpg", ".pdf", ".mp4")
    input_kind: ClassVar[str] = "image"
    batch_size: ClassVar[int] = 8
