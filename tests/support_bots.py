"""Small bots for tests, loaded through the same module:Class path a user's own bot takes."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

from spotbot.bot import Bot
from spotbot.domain import Tag


class LengthBot(Bot):
    """Tags a text by its length; logs every text it predicts when SPOTBOT_TEST_PREDICT_LOG is set."""

    name: ClassVar[str] = "length"
    file_types: ClassVar[tuple[str, ...]] = (".txt",)
    input_kind: ClassVar[str] = "text"
    batch_size: ClassVar[int] = 4
    delay_s: ClassVar[float] = 0.0

    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        self.model_version = "length-1"
        self.log = os.environ.get("SPOTBOT_TEST_PREDICT_LOG")

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        if self.delay_s:
            time.sleep(self.delay_s * len(batch))
        if self.log:
            with open(self.log, "a", encoding="utf-8") as log:
                log.write("".join(text.splitlines()[0] + "\n" for text in batch))
        return [[Tag(label="long" if len(text) > 20 else "short", score=1.0, chars=len(text))] for text in batch]


class SlowLengthBot(LengthBot):
    delay_s: ClassVar[float] = 0.02


class FussyBot(LengthBot):
    """Raises on any text holding 'boom', to show a bot error fails that asset only."""

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        if any("boom" in text for text in batch):
            raise ValueError("cannot take this text")
        return super().predict(batch)


class BrokenLoadBot(LengthBot):
    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        raise FileNotFoundError("model weights missing")


class CrashingBot(LengthBot):
    """Kills its own process (as a segfault in a native model would) on any text holding 'segfault'."""

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        if any("segfault" in text for text in batch):
            import signal

            os.kill(os.getpid(), signal.SIGSEGV)
        return super().predict(batch)


class NanBot(LengthBot):
    """Scores a text holding 'nan' as NaN, as a broken model would."""

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        tags = super().predict(batch)
        return [[Tag(label="odd", score=float("nan"))] if "nan" in text else t for text, t in zip(batch, tags)]


class FrameBot(Bot):
    """Tags an image or a video frame by its size: a cheap image bot for the video pipeline."""

    name: ClassVar[str] = "frames"
    file_types: ClassVar[tuple[str, ...]] = (".mp4", ".mov", ".mkv", ".webm", ".jpg", ".png")
    input_kind: ClassVar[str] = "image"
    batch_size: ClassVar[int] = 8

    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        self.model_version = "frames-1"

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        return [[Tag(label="frame", score=1.0, width=image.width, height=image.height)] for image in batch]
