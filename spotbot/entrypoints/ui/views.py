"""What the templates draw, worked out in Python: highlighted text, OCR boxes, the throughput chart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from spotbot.domain import Job, TagRecord


def highlight(text: str, terms: list[str]) -> list[tuple[str, bool]]:
    """The text cut into (piece, is a match) for the search terms, case-insensitive; the template escapes each piece."""
    wanted = [t for t in terms if t]
    if not wanted or not text:
        return [(text, False)]
    pattern = re.compile("|".join(re.escape(t) for t in sorted(wanted, key=len, reverse=True)), re.IGNORECASE)
    pieces: list[tuple[str, bool]] = []
    at = 0
    for match in pattern.finditer(text):
        if match.start() > at:
            pieces.append((text[at : match.start()], False))
        pieces.append((match.group(0), True))
        at = match.end()
    if at < len(text):
        pieces.append((text[at:], False))
    return pieces


@dataclass(frozen=True)
class Box:
    index: int  # the tag's position in the record
    points: str  # SVG polygon points, in the original image's pixels
    text: str
    score: float


def boxes(record: TagRecord) -> list[Box]:
    """The record's OCR lines that carry a box (a list of [x, y] corners)."""
    found = []
    for index, tag in enumerate(record.tags):
        extra = tag.model_extra or {}
        corners = extra.get("box")
        if not isinstance(corners, list) or len(corners) < 2:
            continue
        try:
            points = " ".join(f"{float(x):g},{float(y):g}" for x, y in corners)
        except (TypeError, ValueError):
            continue  # a box a bot wrote badly is not drawn
        found.append(Box(index, points, str(extra.get("text", tag.label)), tag.score))
    return found


def boxes_extent(found: list[Box]) -> tuple[int, int]:
    """A drawing area for boxes when the image's size is unknown (its file is gone): just past the boxes."""
    xs = [float(p.split(",")[0]) for box in found for p in box.points.split()]
    ys = [float(p.split(",")[1]) for box in found for p in box.points.split()]
    return (int(max(xs, default=1)) + 1, int(max(ys, default=1)) + 1)


def asset_name(asset: str) -> str:
    return PurePosixPath(asset.replace("\\", "/")).name or asset


def assets_per_second(job: Job, now: Any) -> float:
    finished = job.counts.done + job.counts.failed + job.counts.skipped
    seconds = ((job.finished_at or now) - job.created_at).total_seconds()
    return finished / seconds if seconds > 0 else 0.0


@dataclass(frozen=True)
class Chart:
    points: str  # polyline points in a WIDTH x HEIGHT box
    peak: float  # assets/s at the top of the chart
    seconds: int  # the time the x axis spans
    bars: list[tuple[float, float, float, float]]  # x, y, width, height per bucket, for hover titles
    rates: list[float]


WIDTH, HEIGHT = 600, 160


def throughput_chart(per_second: list[tuple[int, int]], buckets: int = 60) -> Chart | None:
    """Assets finished per second over the job's life, averaged into at most `buckets` bars."""
    if not per_second:
        return None
    start, end = per_second[0][0], per_second[-1][0] + 1
    span = max(end - start, 1)
    n = min(buckets, span)
    width_s = span / n
    totals = [0] * n
    for second, count in per_second:
        totals[min(int((second - start) / width_s), n - 1)] += count
    rates = [total / width_s for total in totals]
    peak = max(rates) or 1.0
    bar_w = WIDTH / n
    bars = [(i * bar_w, HEIGHT - r / peak * HEIGHT, bar_w, r / peak * HEIGHT) for i, r in enumerate(rates)]
    points = " ".join(f"{(i + 0.5) * bar_w:.1f},{HEIGHT - r / peak * HEIGHT:.1f}" for i, r in enumerate(rates))
    return Chart(points, peak, span, bars, rates)
