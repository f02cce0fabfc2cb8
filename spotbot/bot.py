"""The bot contract: what every bot, built in or brought by a user, implements."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from spotbot.domain import NotFoundError, Tag

InputKind = Literal["image", "text", "bytes"]

IMAGE_TYPES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class BuiltinBot:
    """What the cloud side knows of a built-in bot without importing it (Lambdas carry no ML packages).

    A test keeps this table equal to the bot classes.
    """

    name: str
    spec: str
    file_types: tuple[str, ...]
    input_kind: str
    description: str


BUILTIN_CATALOGUE: dict[str, BuiltinBot] = {
    bot.name: bot
    for bot in (
        BuiltinBot("scene-text", "bots.scene_text:SceneTextBot", IMAGE_TYPES, "image",
                   "Chinese and English text lines in images: text, score, box"),
        BuiltinBot("sentiment", "bots.sentiment:SentimentBot", (".txt",), "text",
                   "Chinese text: positive or negative, with a score"),
        BuiltinBot("car-model", "bots.car_model:CarModelBot", IMAGE_TYPES, "image",
                   "vehicles in photos: a vehicle score, the body type, and make/model when the model has a trained head"),
    )
}
BUILTIN_BOTS: dict[str, str] = {name: bot.spec for name, bot in BUILTIN_CATALOGUE.items()}


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
    description: ClassVar[str] = ""
    needs_model_version: ClassVar[bool] = False  # ships no model: it runs only once a version is in a model store

    model_version: str = "unloaded"

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


@dataclass(frozen=True)
class BotInfo:
    name: str
    spec: str
    file_types: tuple[str, ...]
    input_kind: str
    model_version: str
    runtime: str
    description: str
    needs_model_version: bool = False


class UnknownBotError(NotFoundError, ValueError):
    """No built-in bot or importable module:Class of that name (exit 2)."""


def resolve_bot(spec: str) -> type[Bot]:
    """A bot class from a built-in name ("scene-text") or a "module:Class" path to your own."""
    target = BUILTIN_BOTS.get(spec, spec)
    if ":" not in target:
        raise UnknownBotError(
            f"unknown bot {spec!r}: built-in bots are {', '.join(sorted(BUILTIN_BOTS))}; "
            "give your own as module:Class"
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownBotError(f"bot {spec!r}: cannot import module {module_name!r}: {error}") from error
    bot_class = getattr(module, class_name, None)
    if not (isinstance(bot_class, type) and issubclass(bot_class, Bot)):
        raise UnknownBotError(f"bot {spec!r}: {target} is not a subclass of spotbot.bot.Bot")
    return bot_class


def describe_bot(spec: str) -> BotInfo:
    bot_class = resolve_bot(spec)
    return BotInfo(
        name=bot_class.name,
        spec=BUILTIN_BOTS.get(spec, spec),
        file_types=bot_class.file_types,
        input_kind=bot_class.input_kind,
        model_version=bot_class.default_model_version(),
        runtime=bot_class.runtime,
        description=bot_class.description,
        needs_model_version=bot_class.needs_model_version,
    )


def builtin_bots() -> list[BotInfo]:
    return [describe_bot(name) for name in BUILTIN_BOTS]
