"""Reviewing tags: the queue a person works through, their decisions, the accuracy they show, the manifest they make.

The queue mixes the tags a bot was least sure of (below the bot's threshold) with a random sample of the
rest: the first find the mistakes, the second measure accuracy without the bias of only looking where
the bot doubted itself.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from spotbot.domain import BadInputError, NotFoundError, TagRecord
from spotbot.domain.reviews import (
    Decision,
    Review,
    ReviewedAccuracy,
    ReviewReason,
    decide,
    manifest_lines,
    record_id,
    review_tag_index,
    reviewed_accuracy,
)
from spotbot.ports import ReviewStore


class ReviewSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPOTBOT_REVIEW_", frozen=True)

    thresholds: dict[str, float] = Field(
        default_factory=dict, description='Confidence below which a bot\'s tags go to review, JSON: {"car-model": 0.6}'
    )
    default_threshold: float = Field(default=0.8, ge=0, le=1, description="The threshold of bots not in thresholds")
    sample_share: float = Field(default=0.2, ge=0, le=1, description="Share of the queue drawn at random from the rest")


@dataclass(frozen=True)
class ReviewItem:
    """One tag to look at: which record, which of its tags, and why it is in the queue."""

    record: TagRecord
    tag_index: int
    reason: ReviewReason

    @property
    def record_id(self) -> str:
        return record_id(self.record)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.record_id,
            "tag_index": self.tag_index,
            "reason": self.reason.value,
            "record": self.record.model_dump(mode="json", exclude_none=True),
        }


class ReviewService:
    def __init__(self, store: ReviewStore, settings: ReviewSettings | None = None) -> None:
        self.store = store
        self.settings = settings or ReviewSettings()

    def threshold(self, bot: str, override: float | None = None) -> float:
        value = override if override is not None else self.settings.thresholds.get(bot, self.settings.default_threshold)
        if not 0 <= value <= 1:
            raise BadInputError(f"threshold {value} is not between 0 and 1")
        return value

    def queue(self, bot: str, limit: int = 20, threshold: float | None = None) -> list[ReviewItem]:
        """Up to `limit` unreviewed tags: low-confidence ones first in number, a random sample of the rest mixed in."""
        if limit < 1:
            raise BadInputError(f"limit {limit} is less than 1")
        cut = self.threshold(bot, threshold)
        reviewed = {review.record_id for review in self.store.reviews(bot)}
        wanted_sample = round(limit * self.settings.sample_share)
        low: list[ReviewItem] = []
        for record in self.store.low_scoring(bot, cut):
            item = _item(record, reviewed, lambda score: score < cut, ReviewReason.LOW_CONFIDENCE)
            if item:
                low.append(item)
                if len(low) >= limit - wanted_sample:
                    break
        seed = len(reviewed)  # stable while nothing is decided, fresh picks after each decision
        sample = []
        for record in self.store.sample(bot, max(wanted_sample, limit - len(low)) * 2, seed):
            item = _item(record, reviewed, lambda score: score >= cut, ReviewReason.SAMPLE)
            if item and all(item.record_id != other.record_id for other in sample):
                sample.append(item)
        sample = sample[: limit - len(low)]
        mixed = low + sample
        random.Random(seed).shuffle(mixed)  # a reviewer cannot tell a sampled tag from a doubtful one
        return mixed

    def decide(self, rid: str, decision: Decision, reviewer: str) -> Review:
        record = self.store.record(rid)
        if record is None:
            raise NotFoundError(f"no tag record {rid!r} in the index")
        review = decide(record, decision, reviewer)
        self.store.save_review(review)
        return review

    def history(self, rid: str) -> list[Review]:
        return self.store.reviews(record_id=rid)

    def accuracy(self, bot: str | None = None) -> list[ReviewedAccuracy]:
        return reviewed_accuracy(self.store.reviews(bot))

    def manifest(self, bot: str) -> list[dict[str, Any]]:
        lines = manifest_lines(self.store.reviews(bot), bot)
        if not lines:
            raise NotFoundError(f"no accepted or corrected {bot} tags to export: review some first (spotbot ui)")
        return lines


def _item(record: TagRecord, reviewed: set[str], wanted, reason: ReviewReason) -> ReviewItem | None:
    if record_id(record) in reviewed:
        return None
    index = review_tag_index(record.tags)
    if index is None or not wanted(record.tags[index].score):
        return None
    return ReviewItem(record=record, tag_index=index, reason=reason)


def write_manifest(lines: list[dict[str, Any]], out: Path) -> int:
    """Writes JSON Lines whole or not at all: a temporary file renamed into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    partial.replace(out)
    return len(lines)
