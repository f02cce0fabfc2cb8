"""Turns asset bytes into what a bot reads, enforcing the size limits. Errors name the asset's fault."""

from __future__ import annotations

import codecs
import io
from typing import Any

from typing import TYPE_CHECKING

from spotbot.ports.bot import InputKind
from spotbot.domain.limits import AssetError, DecodeLimits, check_size, mib  # noqa: F401 (the decoders' errors and limits)

if TYPE_CHECKING:  # Pillow loads on the first image decoded: the Lambdas that raise AssetError never need it
    from PIL import Image


def decode_image(data: bytes, limits: DecodeLimits) -> Image.Image:
    """An RGB image, upright as its EXIF orientation says."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    check_size(len(data), limits)
    Image.MAX_IMAGE_PIXELS = None  # our own max_image_pixels check below replaces Pillow's global one
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size  # read from the header, before any pixel is decoded
        if width * height > limits.max_image_pixels:
            raise AssetError(
                f"image is {width}x{height} ({width * height / 1e6:.0f} megapixels), above "
                f"max_image_pixels ({limits.max_image_pixels / 1e6:.0f} megapixels); "
                "raise SPOTBOT_MAX_IMAGE_PIXELS to allow it"
            )
        longest = max(width, height)
        if image.format == "JPEG" and longest > limits.max_decode_side:  # DCT scaling: never holds the full image
            # draft picks the smallest of 1/2, 1/4, 1/8 that is at least the size asked: asking for just over
            # half the cap lands above half the cap and at most the cap (8000 px -> 4000 at a 4096 cap)
            wanted = limits.max_decode_side // 2 + 1
            image.draft(image.mode, (-(-width * wanted // longest), -(-height * wanted // longest)))  # ceil, in integers
        image.load()
        if max(image.size) > limits.max_decode_side:  # formats without draft (or past 1/8): reduce to the cap
            image = image.reduce(-(-max(image.size) // limits.max_decode_side))
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = _to_rgb(image)
    except AssetError:
        raise
    except UnidentifiedImageError as error:
        raise AssetError("not an image, or an image format that cannot be read") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise AssetError(f"corrupt or truncated image: {error}") from error
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    from PIL import Image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")  # 16-bit greyscale to 8-bit
    return image.convert("RGB")


def decode_text(data: bytes, limits: DecodeLimits) -> str:
    check_size(len(data), limits)
    if len(data) > limits.max_text_bytes:
        raise AssetError(
            f"text is {mib(len(data))}, above max_text_bytes ({mib(limits.max_text_bytes)}); "
            "raise SPOTBOT_MAX_TEXT_BYTES to allow it"
        )
    text, encoding = _decode_with_bom(data) or (None, None)
    if text is None:
        errors = []
        for encoding in limits.text_encodings:
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError as error:
                errors.append(f"{encoding}: invalid byte {data[error.start]:#04x} at offset {error.start}")
            except LookupError as error:
                raise AssetError(f"unknown text encoding {encoding!r} in SPOTBOT_TEXT_ENCODINGS") from error
        if text is None:
            text, encoding = detect_encoding(data) or (None, None)
        if text is None:
            raise AssetError(
                "text is not in an accepted encoding (" + "; ".join(errors) + ") and no encoding could be detected; "
                "add its encoding to SPOTBOT_TEXT_ENCODINGS, e.g. utf-8,gb18030"
            )
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise AssetError("text file holds only white space")
    if "\x00" in text:
        raise AssetError("text holds NUL bytes: a binary file with a text extension?")
    return DecodedText(text, encoding)


class DecodedText(str):
    """A text asset's text (a plain str to every bot) that remembers the encoding it was read in."""

    encoding: str | None

    def __new__(cls, text: str, encoding: str | None) -> DecodedText:
        decoded = super().__new__(cls, text)
        decoded.encoding = encoding
        return decoded

    def __reduce__(self) -> Any:  # a str subclass with state must say how to pickle itself
        return (DecodedText, (str(self), self.encoding))


GB_TIE = 0.05  # Chinese text in GB18030/GBK is common: on a near tie in chaos, detection prefers it


def detect_encoding(data: bytes) -> tuple[str, str] | None:
    """The text and its encoding, detected by charset-normalizer when no configured encoding fits."""
    from charset_normalizer import from_bytes

    matches = [m for m in from_bytes(data) if not m.encoding.startswith(("utf_16", "utf_32"))]  # no BOM: not UTF-16
    if not matches:
        return None
    best = min(matches, key=lambda m: m.chaos)
    chinese = next((m for m in matches if m.encoding == "gb18030" and m.chaos <= best.chaos + GB_TIE), None)
    chosen = chinese or best
    return str(chosen), chosen.encoding


def _decode_with_bom(data: bytes) -> tuple[str, str] | None:
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as error:
                raise AssetError(f"text has a {encoding} byte-order mark but invalid bytes at offset {error.start}") from error
    return None


def decode_asset(data: bytes, kind: InputKind, limits: DecodeLimits, name: str = "") -> Any:
    """What the bot reads of an asset; for a document or video (by name's type), a lazy source of its units."""
    from spotbot.services.units import open_media  # documents and video: spotbot/services/units.py

    media = open_media(name, data, kind, limits)
    if media is not None:
        return media
    if kind == "image":
        return decode_image(data, limits)
    if kind == "text":
        return decode_text(data, limits)
    check_size(len(data), limits)
    return data
