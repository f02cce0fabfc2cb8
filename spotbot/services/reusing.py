"""Incremental jobs: copy an earlier job's record of an unchanged asset instead of predicting again.

The rule is spotbot.domain.reuse; this is its I/O. A reused asset's task ends SKIPPED, and its
record -- marked `reused_from` -- goes into the job's part file and index like a predicted one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from spotbot.domain import TagRecord, Task, TaskStatus, reusable_for
from spotbot.ports import ReuseIndex, TaskOutcome

AddOutcome = Callable[[TaskOutcome, TagRecord], None]


def reuse_records(tasks: Sequence[Task], index: ReuseIndex, add: AddOutcome, *, bot: str, model_version: str) -> set[str]:
    """Hands `add` a SKIPPED outcome and the reused record for each task an earlier job's record covers; returns those assets."""
    if not tasks:
        return set()
    found = index.reusable_records(bot, model_version, [(t.asset, t.etag) for t in tasks])
    reused = reusable_for(tasks, found, bot=bot, model_version=model_version)
    for asset, record in reused.items():
        add(TaskOutcome(asset, TaskStatus.SKIPPED), record)
    return set(reused)
