"""The watch consumer's Lambda handler: spotbot.entrypoints.watch_consumer (also in the bots' serving image)."""

from spotbot.entrypoints.watch_consumer import handler

__all__ = ["handler"]
