"""The review store port: decisions kept with their history, and the tag records a review queue is drawn from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from spotbot.domain import TagRecord
from spotbot.domain.reviews import Review


class ReviewStore(Protocol):
    """Review decisions beside the tag index: a table in the SQLite file locally, an index in OpenSearch."""

    def save_review(self, review: Review) -> None:
        """Keeps the decision; earlier decisions on the same tag stay as history."""
    def reviews(self, bot: str | None = None, record_id: str | None = None) -> list[Review]:
        """Every decision (on the bot's tags, or on one record), oldest first."""
    def record(self, record_id: str) -> TagRecord | None:
        """The tag record with this id (task_id(job_id, asset)); None when the index has none."""
    def low_scoring(self, bot: str, below: float) -> Iterator[TagRecord]:
        """The bot's records with at least one tag scoring below `below`, in a stable order, read lazily."""
    def sample(self, bot: str, n: int, seed: int) -> list[TagRecord]:
        """Up to n of the bot's records picked at random (the same seed, the same picks on unchanged data)."""
    def close(self) -> None: ...
