"""PDF documents as units, with PDFium (pypdfium2, the `media` extra): one page at a time.

For image bots, a page with a text layer gives its text lines as tags directly (exact, no OCR) when
the bot reads text layers (scene-text); any other page is rendered at render_dpi for the bot. For
text bots, the document's text layer is one text unit. Pages are opened, read and closed one by
one, so a 500-page document never sits in memory whole; PDFium is not thread-safe, so all of this
runs on the shard's one predicting thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from spotbot.domain.catalogue import DOCUMENT_TYPES  # noqa: F401 - the file types this module reads
from spotbot.domain import Tag
from spotbot.domain.units import MediaLimits, Unit
from spotbot.domain.limits import AssetError

TEXT_LAYER_SCORE = 1.0  # the text layer is the document's own text, not a guess
PDF_POINTS_PER_INCH = 72

_MAGIC = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (.docx, .xlsx?)"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"<!DOCTYPE html", "an HTML page"),
    (b"<html", "an HTML page"),
)


def sniff(data: bytes) -> str | None:
    """What a file really is, by its first bytes, when it is a common kind; None otherwise."""
    head = data[:16]
    if head[4:8] == b"ftyp":
        return "an MP4/MOV video"
    return next((kind for magic, kind in _MAGIC if head.lower().startswith(magic.lower())), None)


def check_pdf_header(data: bytes) -> None:
    """Cheap, before PDFium: a file that is not a PDF at all fails with what it looks like."""
    if b"%PDF-" not in data[:1024]:  # the PDF spec lets the header start within the first 1024 bytes
        looks = sniff(data)
        raise AssetError(f"not a PDF: the file is {looks}" if looks else "not a PDF: no %PDF- header")


def _open(data: bytes, limits: MediaLimits) -> Any:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        if "password" in str(error).lower():
            raise AssetError("encrypted PDF: it needs a password, and spotbot reads only unencrypted PDFs") from None
        raise AssetError(f"corrupt PDF: {error}") from None
    pages = len(pdf)
    if pages == 0:
        pdf.close()
        raise AssetError("PDF has no pages")
    if pages > limits.max_document_pages:
        pdf.close()
        raise AssetError(
            f"PDF has {pages} pages, above max_document_pages ({limits.max_document_pages}); "
            "raise SPOTBOT_MAX_DOCUMENT_PAGES to allow it"
        )
    return pdf


def page_units(data: bytes, limits: MediaLimits, *, text_layer: bool) -> Iterator[Unit]:
    """One unit per page, for image bots: text-layer tags when text_layer and the page has text, else the page rendered."""
    pdf = _open(data, limits)
    try:
        for number in range(1, len(pdf) + 1):
            page = pdf[number - 1]
            try:
                lines = _text_lines(page, limits.render_dpi) if text_layer else []
                if lines:
                    yield Unit(page=number, tags=tuple(lines))
                else:
                    yield Unit(value=_render(page, number, limits), page=number)
            finally:
                page.close()
    finally:
        pdf.close()


def document_text(data: bytes, limits: MediaLimits, max_text_bytes: int) -> str:
    """A PDF's text layer, pages apart by a blank line; a scanned PDF (no text layer) fails."""
    pdf = _open(data, limits)
    texts: list[str] = []
    size = 0
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                text = _page_text(page)
            finally:
                page.close()
            size += len(text.encode("utf-8"))
            if size > max_text_bytes:
                raise AssetError(
                    f"PDF text layer is above max_text_bytes ({max_text_bytes / 2**20:.1f} MiB) by page {index + 1}; "
                    "raise SPOTBOT_MAX_TEXT_BYTES to allow it"
                )
            if text:
                texts.append(text)
    finally:
        pdf.close()
    if not texts:
        raise AssetError("PDF has no text layer (a scan?): text bots read text-layer PDFs; tag scans with scene-text")
    return "\n\n".join(texts)


def _page_text(page: Any) -> str:
    textpage = page.get_textpage()
    try:
        return textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n").strip()
    finally:
        textpage.close()


def _text_lines(page: Any, dpi: int) -> list[Tag]:
    """The page's text runs as OCR-shaped tags, boxes in pixels of the page rendered at dpi."""
    textpage = page.get_textpage()
    try:
        if not textpage.get_text_range().strip():
            return []
        scale = dpi / PDF_POINTS_PER_INCH
        height = page.get_height()
        tags = []
        for i in range(textpage.count_rects()):
            left, bottom, right, top = textpage.get_rect(i)
            text = textpage.get_text_bounded(left, bottom, right, top).strip()
            if not text:
                continue
            x0, x1 = round(left * scale), round(right * scale)
            y0, y1 = round((height - top) * scale), round((height - bottom) * scale)  # PDF's y grows upwards
            tags.append(
                Tag(label="text", score=TEXT_LAYER_SCORE, text=text, box=[[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
            )
        return tags
    finally:
        textpage.close()


def _render(page: Any, number: int, limits: MediaLimits) -> Any:
    width, height = page.get_size()
    scale = limits.render_dpi / PDF_POINTS_PER_INCH
    pixels = round(width * scale) * round(height * scale)
    if pixels > limits.max_render_pixels:
        raise AssetError(
            f"page {number} is {width / 72:.1f}x{height / 72:.1f} in, {pixels / 1e6:.0f} megapixels at render_dpi "
            f"{limits.render_dpi}, above max_render_pixels ({limits.max_render_pixels / 1e6:.0f} megapixels); "
            "lower SPOTBOT_RENDER_DPI or raise SPOTBOT_MAX_RENDER_PIXELS"
        )
    bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255))
    try:
        return bitmap.to_pil().convert("RGB")  # a copy: the bitmap's buffer is freed below
    finally:
        bitmap.close()
