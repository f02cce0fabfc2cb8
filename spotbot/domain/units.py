"""Units: what a bot sees of an asset. An image is one unit; a document's pages and a video's
sampled frames are units carrying `page` (counted from 1, as PDF viewers show it) or `t` (seconds).

The fold rule: an asset's tags are its units' tags in unit order, each stamped with its unit's
`page` or `t`, so one TagRecord per asset says where in the asset each tag was found. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spotbot.domain.records import Tag


@dataclass(frozen=True)
class MediaLimits:
    """The document and video limits (Settings fields of the same names); each fails only its asset."""

    max_document_pages: int = 1000
    render_dpi: int = 120  # A4 is 993x1403: near the OCR detector's 960-pixel side, and OCR memory stays as for photos
    max_render_pixels: int = 25_000_000
    max_video_seconds: float = 3 * 3600.0
    max_video_bytes: int = 16 * 2**30
    max_frames_per_asset: int = 2000
    video_sample_seconds: float = 2.0
    video_dedup_fraction: float = 0.0003


@dataclass(frozen=True)
class Unit:
    """One thing a bot tags. `tags` set means they are known without the bot (a PDF page's text layer)."""

    value: Any = None
    page: int | None = None
    t: float | None = None
    tags: tuple[Tag, ...] | None = None

    def where(self) -> dict[str, Any]:
        """The fields stamped on this unit's tags: {"page": 3}, {"t": 73.2} or nothing for a whole asset."""
        return {k: v for k, v in (("page", self.page), ("t", self.t)) if v is not None}


def stamp_tags(unit: Unit, tags: list[Tag] | tuple[Tag, ...]) -> list[Tag]:
    """A unit's tags with its page or time on each; a bot's own `page`/`t` field is overwritten."""
    where = unit.where()
    if not where:
        return list(tags)
    return [Tag.model_validate({**tag.model_dump(), **where}) for tag in tags]


def fold_tags(per_unit: list[tuple[Unit, list[Tag]]]) -> list[Tag]:
    """The tags of an asset from its units' tags, in unit order (page 1 before page 2, t=0 before t=2)."""
    return [tag for unit, tags in per_unit for tag in stamp_tags(unit, tags)]


def fold_text(units: list[Unit]) -> str | None:
    """The asset's own text, for text units (a text file, a document's text layer); None for images."""
    texts = [unit.value for unit in units if isinstance(unit.value, str)]
    return "\n\n".join(texts) if texts else None


def clock(seconds: float) -> str:
    """73.2 -> "1:13.2", as a video player shows a time."""
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{minutes}:{rest:04.1f}"
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else text


def where_found(tags: list[Tag], terms: list[str]) -> str:
    """Where in the asset a search's terms are: "page 2", "pages 1, 3", "at 0:06.0"; "" for whole assets.

    Tags holding a term (in any string field) count; with no term found there, all tags with a place do.
    """
    placed = [t for t in tags if (t.model_extra or {}).get("page") is not None or (t.model_extra or {}).get("t") is not None]
    lowered = [term.lower() for term in terms if term]
    matching = [
        t for t in placed
        if any(term in str(v).lower() for term in lowered for v in (t.model_extra or {}).values() if isinstance(v, str))
    ]
    chosen = matching or placed
    pages = sorted({int(t.model_extra["page"]) for t in chosen if t.model_extra.get("page") is not None})
    times = sorted({float(t.model_extra["t"]) for t in chosen if t.model_extra.get("t") is not None})
    parts = []
    if pages:
        parts.append(("page " if len(pages) == 1 else "pages ") + ", ".join(map(str, pages[:8])) + ("…" if len(pages) > 8 else ""))
    if times:
        parts.append("at " + ", ".join(clock(t) for t in times[:8]) + ("…" if len(times) > 8 else ""))
    return "; ".join(parts)
