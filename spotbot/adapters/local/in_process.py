"""The bot runtime that runs the model inside the worker process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spotbot.ports.bot import Bot
from spotbot.services.bots import resolve_bot
from spotbot.domain import Tag


class InProcessRuntime:
    def __init__(self, bot: Bot, batch_size: int | None = None) -> None:
        self.bot = bot
        self.bot_name = bot.name
        self.model_version = bot.model_version
        self.input_kind = bot.input_kind
        self.reads_text_layer = bot.reads_text_layer
        self.batch_size = batch_size or bot.batch_size

    @classmethod
    def load(
        cls, spec: str, model_dir: Path | None = None, threads: int | None = None, batch_size: int | None = None
    ) -> InProcessRuntime:
        bot = resolve_bot(spec)()
        bot.load(model_dir, threads=threads)
        return cls(bot, batch_size=batch_size)

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        results = self.bot.predict(batch)
        if len(results) != len(batch):
            raise RuntimeError(f"bot {self.bot_name} returned {len(results)} results for {len(batch)} assets")
        return results
