"""Documents and videos made for tests: good ones and each kind of bad one, written with fpdf2 and PyAV."""

from __future__ import annotations

import io
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from spotbot.bot import Bot
from spotbot.domain import Tag
from tests.conftest import REPO

SAMPLES = REPO / "samples"
CONTRACT = SAMPLES / "documents" / "contract.pdf"
SLIDES = SAMPLES / "videos" / "slides.mp4"


def text_pdf(lines_per_page: list[list[str]], password: str | None = None) -> bytes:
    """A PDF whose pages hold the given lines as a text layer (Latin-1 core font)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    if password:
        pdf.set_encryption(owner_password=password, user_password=password)
    pdf.set_font("helvetica", size=20)
    for lines in lines_per_page:
        pdf.add_page()
        for row, line in enumerate(lines):
            pdf.text(72, 100 + 40 * row, line)
    return bytes(pdf.output())


def image_pdf(images: list[Image.Image], page_points: tuple[float, float] = (200, 100)) -> bytes:
    """A scan-like PDF: each page one image (PNG, lossless), no text layer."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=page_points)
    for image in images:
        pdf.add_page()
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        buffer.seek(0)
        pdf.image(buffer, x=0, y=0, w=page_points[0], h=page_points[1])
    return bytes(pdf.output())


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, "JPEG")
    return buffer.getvalue()


def audio_only_mp4() -> bytes:
    """One second of silence in an MP4: a container with no video stream."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(16):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, i * 1024, Fraction(1, 16000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def colour_video(colours: list[tuple[int, int, int]], seconds_each: float, fps: int = 10) -> bytes:
    """A video of flat-colour scenes, each seconds_each long."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for colour in colours:
            image = Image.new("RGB", (160, 96), colour)
            for _ in range(round(seconds_each * fps)):
                container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def text_slides_video(texts: list[str], seconds_each: float, fps: int = 10) -> bytes:
    """A 640x360 talk whose slides differ only in one short line of text."""
    import av
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=36)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for text in texts:
            image = Image.new("RGB", (640, 360), (24, 40, 88))
            ImageDraw.Draw(image).text((320, 180), text, font=font, fill="white", anchor="mm")
            for _ in range(round(seconds_each * fps)):
                container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def bad_assets() -> dict[str, tuple[bytes, str]]:
    """Each kind of bad document and video, with a phrase its error must hold."""
    return {
        "encrypted.pdf": (text_pdf([["secret"]], password="pw"), "encrypted PDF"),
        "corrupt.pdf": (b"%PDF-1.7\n" + os.urandom(2000), "corrupt PDF"),
        "photo-really.pdf": (jpeg_bytes(), "not a PDF: the file is a JPEG image"),
        "audio-only.mp4": (audio_only_mp4(), "video has no video stream (it holds: audio)"),
        "truncated.mp4": (SLIDES.read_bytes()[: len(SLIDES.read_bytes()) // 2], "video"),
        "photo-really.mov": (jpeg_bytes(), "not a video: the file is a JPEG image"),
    }


class PageColourBot(Bot):
    """Tags each page or frame by its top-left pixel; logs it (SPOTBOT_TEST_PREDICT_LOG) and sleeps a little."""

    name: ClassVar[str] = "page-colour"
    file_types: ClassVar[tuple[str, ...]] = (".pdf", ".mp4")
    input_kind: ClassVar[str] = "image"
    batch_size: ClassVar[int] = 3

    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        self.model_version = "colour-1"
        self.log = os.environ.get("SPOTBOT_TEST_PREDICT_LOG")
        self.delay_s = float(os.environ.get("SPOTBOT_TEST_DELAY", "0"))

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        time.sleep(self.delay_s * len(batch))
        colours = ["#%02x%02x%02x" % image.getpixel((2, 2)) for image in batch]
        if self.log:
            with open(self.log, "a", encoding="utf-8") as log:
                log.write("".join(f"{c}\n" for c in colours))
        return [[Tag(label="colour", score=1.0, colour=c)] for c in colours]
