"""Review decisions: a person looks at one tag and accepts, corrects, fixes or rejects it. No I/O here.

Every decision is kept (who, when, the tag before and after); the latest decision on a tag is the one
that counts, for accuracy and for the training manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from spotbot.domain.errors import BadInputError
from spotbot.domain.records import Tag, TagRecord, task_id, utc_now

MAX_LABEL_CHARS = 200
MAX_TEXT_CHARS = 2000
MAX_REVIEWER_CHARS = 200


class ReviewAction(StrEnum):
    ACCEPT = "accept"  # the tag is right as it is
    CORRECT = "correct"  # the label is wrong; `after` has the right one
    FIX_TEXT = "fix_text"  # OCR read the line wrong; `after` has the right text
    REJECT = "reject"  # the tag should not be there at all (no right label known)


class ReviewReason(StrEnum):
    LOW_CONFIDENCE = "low_confidence"  # the queue: the bot was unsure
    SAMPLE = "sample"  # a random pick among the rest: what measures accuracy honestly
    BROWSE = "browse"  # chosen by the person, from search


class Review(BaseModel):
    review_id: str
    record_id: str  # task_id(job_id, asset): the tag record under review
    job_id: str
    asset: str
    bot: str
    model_version: str
    tag_index: int
    action: ReviewAction
    before: dict[str, Any]
    after: dict[str, Any] | None = None
    reviewer: str
    reason: ReviewReason = ReviewReason.BROWSE
    decided_at: datetime = Field(default_factory=utc_now)

    @property
    def key(self) -> tuple[str, int]:
        """What a later decision replaces: the same tag of the same record."""
        return (self.record_id, self.tag_index)

    @property
    def tag_was_right(self) -> bool:
        return self.action is ReviewAction.ACCEPT

    def final_label(self) -> str | None:
        """The label a person vouches for; None when they rejected the tag or fixed text, not a label."""
        if self.action is ReviewAction.ACCEPT:
            return str(self.before["label"])
        if self.action is ReviewAction.CORRECT and self.after:
            return str(self.after["label"])
        return None


def record_id(record: TagRecord) -> str:
    return task_id(record.job_id, record.asset)


def review_tag_index(tags: list[Tag]) -> int | None:
    """The tag a person should check on a record: the least sure OCR line, the top make/model, else the top tag."""
    if not tags:
        return None
    lines = [i for i, tag in enumerate(tags) if "text" in (tag.model_extra or {})]
    if lines:
        return min(lines, key=lambda i: tags[i].score)
    make_models = [i for i, tag in enumerate(tags) if (tag.model_extra or {}).get("kind") == "make_model"]
    if make_models:
        return max(make_models, key=lambda i: tags[i].score)
    return max(range(len(tags)), key=lambda i: tags[i].score)


def _inline_enum(kind: type[StrEnum]) -> WithJsonSchema:
    """The enum's values in the field's own schema, not a $ref: API Gateway request models take no references."""
    return WithJsonSchema({"type": "string", "enum": [member.value for member in kind]})


class Decision(BaseModel):
    """What a person decided on one tag of a record, as a page or the API sends it."""

    model_config = ConfigDict(frozen=True)

    tag_index: int = Field(ge=0, description="Which of the record's tags (the queue gives it)")
    action: Annotated[ReviewAction, _inline_enum(ReviewAction)]
    label: str | None = Field(default=None, max_length=MAX_LABEL_CHARS, description="The right label (action correct)")
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS, description="The right text (action fix_text)")
    reason: Annotated[ReviewReason, _inline_enum(ReviewReason)] = ReviewReason.BROWSE

    @classmethod
    def parse(cls, data: Any) -> Decision:
        """A Decision from JSON-like data; BadInputError names each field at fault."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}" for p in error.errors())
            raise BadInputError(f"the decision is not valid: {problems}") from None


def decide(record: TagRecord, decision: Decision, reviewer: str, now: datetime | None = None) -> Review:
    """The review of one decision, checked against the record: a BadInputError names what is wrong."""
    reviewer = _checked("reviewer", reviewer, MAX_REVIEWER_CHARS)
    tag_index, action = decision.tag_index, decision.action
    if tag_index >= len(record.tags):
        raise BadInputError(f"tag {tag_index} does not exist: {record.asset} has {len(record.tags)} tag(s)")
    before = record.tags[tag_index].model_dump(mode="json")
    after: dict[str, Any] | None = None
    if action is ReviewAction.CORRECT:
        new_label = _checked("label", decision.label, MAX_LABEL_CHARS)
        if new_label == before["label"]:
            raise BadInputError(f"label {new_label!r} is the label already there: accept the tag instead")
        after = before | {"label": new_label}
    elif action is ReviewAction.FIX_TEXT:
        if "text" not in before:
            raise BadInputError(f"tag {tag_index} of {record.asset} has no text to fix (label {before['label']!r})")
        new_text = _checked("text", decision.text, MAX_TEXT_CHARS)
        if new_text == before["text"]:
            raise BadInputError("the text is unchanged: accept the tag instead")
        after = before | {"text": new_text}
    decided_at = now or utc_now()
    rid = record_id(record)
    review_id = hashlib.sha256(f"{rid}\0{tag_index}\0{reviewer}\0{decided_at.isoformat()}".encode()).hexdigest()[:32]
    return Review(
        review_id=review_id,
        record_id=rid,
        job_id=record.job_id,
        asset=record.asset,
        bot=record.bot,
        model_version=record.model_version,
        tag_index=tag_index,
        action=action,
        before=before,
        after=after,
        reviewer=reviewer,
        reason=decision.reason,
        decided_at=decided_at,
    )


def _checked(name: str, value: str | None, max_chars: int) -> str:
    value = (value or "").strip()
    if not value:
        raise BadInputError(f"{name} is empty")
    if len(value) > max_chars:
        raise BadInputError(f"{name} is {len(value)} characters long; at most {max_chars}")
    return value


def latest(reviews: Iterable[Review]) -> list[Review]:
    """The decision that counts per tag: the last one made (history stays in the store)."""
    last: dict[tuple[str, int], Review] = {}
    for review in sorted(reviews, key=lambda r: r.decided_at):
        last[review.key] = review
    return sorted(last.values(), key=lambda r: r.decided_at)


@dataclass(frozen=True)
class ReviewedAccuracy:
    """How often a bot's tags were right, as reviewed. `sample` is the honest figure (random picks);
    `queue` is over the low-confidence tags only, so it understates the bot."""

    bot: str
    model_version: str
    sample_reviewed: int
    sample_right: int
    queue_reviewed: int
    queue_right: int

    @property
    def sample_accuracy(self) -> float | None:
        return self.sample_right / self.sample_reviewed if self.sample_reviewed else None

    @property
    def queue_accuracy(self) -> float | None:
        return self.queue_right / self.queue_reviewed if self.queue_reviewed else None

    def as_json(self) -> dict[str, Any]:
        return self.__dict__ | {"sample_accuracy": self.sample_accuracy, "queue_accuracy": self.queue_accuracy}


def reviewed_accuracy(reviews: Iterable[Review]) -> list[ReviewedAccuracy]:
    """Per bot and model version, over the latest decision on each tag."""
    tally: dict[tuple[str, str], list[int]] = {}
    for review in latest(reviews):
        counts = tally.setdefault((review.bot, review.model_version), [0, 0, 0, 0])
        at = 0 if review.reason is ReviewReason.SAMPLE else 2
        counts[at] += 1
        counts[at + 1] += review.tag_was_right
    return [ReviewedAccuracy(bot, version, *counts) for (bot, version), counts in sorted(tally.items())]


def manifest_lines(reviews: Iterable[Review], bot: str) -> list[dict[str, Any]]:
    """A Ground Truth image/text classification manifest from the bot's label decisions, one line per asset
    (the latest decision on it wins); `label` is what training/datasets.py reads."""
    by_asset: dict[str, Review] = {}
    for review in latest(r for r in reviews if r.bot == bot):
        if review.final_label() is not None:
            by_asset[review.asset] = review
        else:
            by_asset.pop(review.asset, None)  # a later rejection withdraws an earlier label
    classes = sorted({review.final_label() or "" for review in by_asset.values()})
    lines = []
    for asset, review in sorted(by_asset.items()):
        label = review.final_label() or ""
        lines.append(
            {
                "source-ref": asset,
                "label": label,
                bot: classes.index(label),
                f"{bot}-metadata": {
                    "class-name": label,
                    "confidence": 1.0,
                    "type": "groundtruth/image-classification",
                    "job-name": f"spotbot-review-{bot}",
                    "human-annotated": "yes",
                    "creation-date": review.decided_at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
                    "reviewer": review.reviewer,
                    "action": review.action.value,
                },
            }
        )
    return lines
