"""Predicting a batch so that a bot's error lands on the asset that caused it, not on its neighbours.

The Spot worker (services.shard) and the serving process (entrypoints.serving) both use this: when
the bot raises on a batch, each item is tried alone, and only the item that still fails gets the error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spotbot.domain import Tag


@dataclass(frozen=True)
class BotFailure:
    """The bot could not tag this one item."""

    error: str


def predict_each(
    predict: Callable[[list[Any]], list[Any]],
    batch: list[Any],
    *,
    bot_name: str = "bot",
    passthrough: tuple[type[BaseException], ...] = (),
) -> list[list[Tag] | BotFailure]:
    """Tags per item, in order; errors of `passthrough` types (the runtime is down) are raised, not blamed."""
    if not batch:
        return []
    try:
        results = predict(batch)
        if len(results) != len(batch):
            raise RuntimeError(f"{bot_name} returned {len(results)} results for {len(batch)} assets")
        tagged = [[t if isinstance(t, Tag) else Tag.model_validate(t) for t in (tags or [])] for tags in results]
        for tags in tagged:
            _check_finite(tags)
        return tagged
    except passthrough:
        raise
    except Exception as error:  # noqa: BLE001 - a bot error fails the item that caused it
        if len(batch) == 1:
            return [BotFailure(f"{type(error).__name__}: {error}")]
        return [
            outcome
            for item in batch
            for outcome in predict_each(predict, [item], bot_name=bot_name, passthrough=passthrough)
        ]


def _check_finite(tags: list[Tag]) -> None:
    """NaN and Infinity are not JSON: a bot that gives them fails that asset, not the shard's output."""
    for tag in tags:
        values = [tag.score, *(tag.model_extra or {}).values()]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ValueError(f"the bot gave a tag that is not a finite number: {tag.label} {values}")
