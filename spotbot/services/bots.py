"""Finding a bot: a built-in name from the catalogue, or a "module:Class" path to your own."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from spotbot.domain import NotFoundError
from spotbot.domain.catalogue import BUILTIN_CATALOGUE
from spotbot.ports.bot import Bot

BUILTIN_BOTS: dict[str, str] = {name: bot.spec for name, bot in BUILTIN_CATALOGUE.items()}


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
