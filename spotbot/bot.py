"""The public face for bot authors: subclass `spotbot.bot.Bot` (or `TrainableBot`) and run it with
`spotbot tag SOURCE --bot mypackage.module:MyBot`. The contract lives in spotbot.ports.bot, the
built-in catalogue in spotbot.domain.catalogue, and finding a bot in spotbot.services.bots.
"""

from spotbot.domain import Tag
from spotbot.domain.catalogue import BUILTIN_CATALOGUE, DOCUMENT_TYPES, IMAGE_TYPES, VIDEO_TYPES, BuiltinBot
from spotbot.ports.bot import Bot, InputKind, TrainableBot
from spotbot.services.bots import BUILTIN_BOTS, BotInfo, UnknownBotError, builtin_bots, describe_bot, resolve_bot

__all__ = [
    "BUILTIN_BOTS", "BUILTIN_CATALOGUE", "DOCUMENT_TYPES", "IMAGE_TYPES", "VIDEO_TYPES", "Bot", "BotInfo", "BuiltinBot", "InputKind", "Tag",
    "TrainableBot", "UnknownBotError", "builtin_bots", "describe_bot", "resolve_bot",
]
