"""The bot contract: what every bot, built in or brought by a user, implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

from spotbot.domain import Tag
from spotbot.domain.catalogue import BUILTIN_CATALOGUE

InputKind = Literal["image", "text", "bytes"]


class Bot(ABC):
    """A model that tags assets.

    `load` runs once per process; `predict` takes a batch of decoded assets (PIL RGB images,
    str texts or raw bytes, as `input_kind` says) and returns one list of tags per asset,
    in order. An empty list means the bot found nothing to tag (an image with no text).
    """

    name: ClassVar[str]
    file_types: ClassVar[tuple[str, ...]]  # lower-case extensions with the dot: (".png", ".jpg")
    input_kind: ClassVar[InputKind]
    batch_size: ClassVar[int] = 8
    runtime: ClassVar[str] = "in-process"
    needs_model_version: ClassVar[bool] = False  # ships no model: it runs only once a version is in a model store
    reads_text_layer: ClassVar[bool] = False  # True: a PDF page's text layer stands for OCR of it (scene-text)
    description: ClassVar[str] = ""

    model_version: str = "unloaded"

    def __init_subclass__(cls, builtin: str | None = None, **kwargs: Any) -> None:
        """`class MyBot(Bot, builtin="my-bot")` takes its metadata from the catalogue line of that name."""
        super().__init_subclass__(**kwargs)
        if builtin is not None:
            line = BUILTIN_CATALOGUE[builtin]
            cls.name, cls.file_types, cls.description = line.name, line.file_types, line.description
            cls.input_kind = line.input_kind  # type: ignore[assignment]

    @abstractmethod
    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        """Load the model. model_dir None means the bot's packaged default model."""

    @abstractmethod
    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        """Tags for each decoded asset of the batch, in order."""

    @classmethod
    def default_model_version(cls) -> str:
        return "builtin"


class TrainableBot(Bot):
    """A bot whose labels come from a head over a backbone's embeddings, so users can fine-tune it."""

    @abstractmethod
    def load_backbone(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        """Load only what embed() needs; model_dir is a version that carries the backbone, if any."""

    @abstractmethod
    def embed(self, batch: list[Any]) -> Any:
        """A float32 array [len(batch), dim] of embeddings for decoded assets."""

    @abstractmethod
    def head_manifest(self) -> dict[str, Any]:
        """model.json fields (bot, format, backbone) of a version made of this backbone and a head."""

    def backbone_files(self, model_dir: Path | None) -> list[Path]:
        """Files a new version must carry over from the version it was trained on."""
        return []
