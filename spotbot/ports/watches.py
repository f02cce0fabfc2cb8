"""Ports of cloud watches (issue 12): where registrations live, and the event queue's figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from spotbot.domain.watches import Watch


class WatchRegistry(Protocol):
    """The registered watches: which prefixes the consumer tags, with which bot."""

    def save_watch(self, watch: Watch) -> None: ...
    def get_watch(self, watch_id: str) -> Watch | None: ...
    def list_watches(self) -> list[Watch]: ...
    def delete_watch(self, watch_id: str) -> bool:
        """Unsubscribes; False when there was no such watch."""


@dataclass(frozen=True)
class QueueFigures:
    waiting: int  # messages in the queue, visible or in flight
    oldest_age_s: float | None  # age of the oldest message; None when nothing waits or it is not known
    dead_letters: int  # messages in the dead-letter queue


class EventQueue(Protocol):
    """The queue of S3 events the watch consumer drains, and its dead-letter queue."""

    def figures(self) -> QueueFigures: ...
    def dead_letter(self, body: str, *, asset: str, error: str) -> None:
        """Puts a message that failed its retries into the dead-letter queue, naming the asset and the error."""
