"""The built-in bots: the one table of what each reads and does. Adding a built-in bot is one line here
plus its class (which names its line with `class MyBot(Bot, builtin="my-bot")`).

The cloud side (Lambdas carry no ML packages) reads this table without importing any bot; a bot
class takes its name, file types, input kind and description from its line, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_TYPES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
DOCUMENT_TYPES = (".pdf",)  # expanded into pages (spotbot/services/documents.py)
VIDEO_TYPES = (".mp4", ".mov", ".mkv", ".webm")  # expanded into sampled frames (spotbot/services/video.py)


@dataclass(frozen=True)
class BuiltinBot:
    name: str
    spec: str  # "module:Class", imported only where the bot runs
    file_types: tuple[str, ...]
    input_kind: str
    description: str


BUILTIN_CATALOGUE: dict[str, BuiltinBot] = {
    bot.name: bot
    for bot in (
        BuiltinBot("scene-text", "bots.scene_text:SceneTextBot", IMAGE_TYPES + DOCUMENT_TYPES + VIDEO_TYPES, "image",
                   "Chinese and English text lines in images: text, score, box"),
        BuiltinBot("sentiment", "bots.sentiment:SentimentBot", (".txt",) + DOCUMENT_TYPES, "text",
                   "Chinese text: positive or negative, with a score"),
        BuiltinBot("car-model", "bots.car_model:CarModelBot", IMAGE_TYPES + VIDEO_TYPES, "image",
                   "vehicles in photos: a vehicle score, the body type, and make/model when the model has a trained head"),
    )
}  # fmt: skip
