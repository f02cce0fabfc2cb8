"""The bot registry of the cloud API: the built-in bots, and the bots users bring as container images
(GET/POST/PUT/DELETE /bots), stored in the index's bots documents."""

from __future__ import annotations

import functools
import logging
from typing import Any, Protocol

from spotbot.bot import BUILTIN_BOTS, BUILTIN_CATALOGUE
from spotbot.domain import ConflictError, NotFoundError, utc_now
from spotbot.services.cloud_requests import BOT_NAME_PATTERN, BotRegistration, InvalidRequest

log = logging.getLogger(__name__)


class BotIndex(Protocol):
    """Where registered bots are kept (the OpenSearch bots index)."""

    def save_bot(self, doc: dict[str, Any]) -> None: ...
    def get_bot(self, name: str) -> dict[str, Any] | None: ...
    def list_bots(self) -> list[dict[str, Any]]: ...
    def delete_bot(self, name: str) -> bool: ...


@functools.cache
def _builtin_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for name, info in BUILTIN_CATALOGUE.items():  # not the classes: this Lambda carries no ML packages
        doc = {
            "name": name,
            "file_types": list(info.file_types),
            "input_kind": info.input_kind,
            "runtime": "in-container",
            "model_version": "current",  # each worker takes the model store's current version
            "description": info.description,
            "builtin": True,
        }
        docs.append((name, doc))
    return tuple(docs)


def builtin_bot_docs() -> dict[str, dict[str, Any]]:
    return {name: dict(doc) for name, doc in _builtin_docs()}


def find_bot(index: BotIndex, name: str) -> dict[str, Any] | None:
    """A built-in bot's document, else a registered one's (marked builtin: False); None when there is none."""
    builtin = builtin_bot_docs()
    if name in builtin:
        return builtin[name]
    doc = index.get_bot(name) if BOT_NAME_PATTERN.match(name) else None
    return doc | {"builtin": False} if doc is not None else None


def resolve_cloud_bot(index: BotIndex, name: str) -> dict[str, Any]:
    """The bot a job names, built in or registered; 400 naming body.bot when there is none."""
    doc = find_bot(index, name)
    if doc is None:
        raise InvalidRequest(
            "body.bot",
            f"unknown bot {name!r}: built-in bots are {', '.join(sorted(BUILTIN_BOTS))}; GET /bots lists the registered ones",
        )
    return {key: value for key, value in doc.items() if key != "updated_at"}


def list_bots(index: BotIndex) -> list[dict[str, Any]]:
    """The built-in bots, then the registered ones by name."""
    registered = [doc | {"builtin": False} for doc in index.list_bots() if doc.get("name") not in BUILTIN_BOTS]
    return list(builtin_bot_docs().values()) + registered


def get_bot(index: BotIndex, name: str) -> dict[str, Any]:
    doc = find_bot(index, name)
    if doc is None:
        raise NotFoundError(f"no bot {name!r}; GET /bots lists the bots")
    return doc


def register_bot(index: BotIndex, bot: BotRegistration, *, replace: bool) -> tuple[dict[str, Any], bool]:
    """Stores the bot; (its document, created). Built-in names are taken (409); so is an existing name unless replace."""
    if bot.name in BUILTIN_BOTS:
        raise ConflictError(f"{bot.name!r} is a built-in bot: register yours under another name")
    exists = index.get_bot(bot.name) is not None
    if exists and not replace:
        raise ConflictError(f"bot {bot.name!r} is registered already: PUT /bots/{bot.name} replaces it")
    doc = bot.model_dump(mode="json", exclude_none=True) | {"updated_at": utc_now().isoformat()}
    index.save_bot(doc)
    log.info("bot registered", extra={"bot": bot.name, "replaced": exists})
    return doc | {"builtin": False}, not exists


def delete_bot(index: BotIndex, name: str) -> None:
    if name in BUILTIN_BOTS:
        raise ConflictError(f"{name!r} is a built-in bot and cannot be deleted")
    if not (BOT_NAME_PATTERN.match(name) and index.delete_bot(name)):
        raise NotFoundError(f"no bot {name!r}; GET /bots lists the bots")
