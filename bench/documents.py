"""Documents and video benchmarks (figures, not pass/fail).

- pages per second: text-layer pages (text read, no OCR) vs scanned pages (rendered at render_dpi, then OCR)
- video: frames decoded per second, and OCR calls saved by frame dedup on a 10-minute, 12-slide talk
- peak RSS of a one-worker `spotbot tag`: images only vs a 300-page scan and the talk, with a no-op image
  bot (what the pipeline holds), and with scene-text (images vs a 10-page scan, the samples' PDF and video)

Run from the repository root: `python bench/documents.py` (nice it on a shared machine).
"""

from __future__ import annotations

import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from samples.build_samples import find_cjk_font  # noqa: E402
from spotbot.services.decoding import decode_asset  # noqa: E402
from spotbot.services.shard import limits_from  # noqa: E402
from spotbot.services.units import expand_units  # noqa: E402
from spotbot.settings import Settings  # noqa: E402

LIMITS = limits_from(Settings())
SLIDES, SLIDE_SECONDS, FPS = 12, 50, 10  # a 10-minute talk


def text_layer_pdf(pages: int) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.set_font("helvetica", size=11)
    for page in range(pages):
        pdf.add_page()
        for row in range(40):
            pdf.text(60, 60 + 18 * row, f"Page {page + 1} line {row + 1}: the tenant pays the rent on the first day.")
    return bytes(pdf.output())


def scanned_pdf(pages: int, font) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    for page in range(pages):
        image = Image.new("L", (1240, 1754), 236)
        draw = ImageDraw.Draw(image)
        for row, line in enumerate(["装修通知", f"第{page + 1}页", "三号楼电梯维修", "请走楼梯"]):
            draw.text((620, 300 + row * 220), line, font=font.at(90), fill=30, anchor="mm")
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=70)
        buffer.seek(0)
        pdf.add_page()
        pdf.image(buffer, x=0, y=0, w=595.28, h=841.89)
    return bytes(pdf.output())


def slide_talk(font) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for number in range(SLIDES):
            image = Image.new("RGB", (1280, 720), (24, 40, 88))
            draw = ImageDraw.Draw(image)
            draw.text((640, 300), f"第{number + 1}张：季度报告", font=font.at(72), fill="white", anchor="mm")
            draw.text((640, 450), f"SLIDE {number + 1}", font=font.at(48), fill=(255, 220, 120), anchor="mm")
            frame = av.VideoFrame.from_image(image)
            for _ in range(SLIDE_SECONDS * FPS):
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f}/s ({count} in {seconds:.2f} s)"


def bench_pages(font, ocr) -> None:
    data = text_layer_pdf(200)
    start = time.perf_counter()
    units = list(expand_units(decode_asset(data, "image", LIMITS, "t.pdf"), True))
    print(f"text-layer pages         {rate(len(units), time.perf_counter() - start)}")
    data = scanned_pdf(20, font)
    start = time.perf_counter()
    rendered = 0
    for unit in expand_units(decode_asset(data, "image", LIMITS, "s.pdf"), True):
        rendered += 1
    render_s = time.perf_counter() - start
    print(f"scanned pages, render    {rate(rendered, render_s)} at {LIMITS.media.render_dpi} dpi")
    start = time.perf_counter()
    found = 0
    data = scanned_pdf(3, font)
    for unit in expand_units(decode_asset(data, "image", LIMITS, "s.pdf"), True):
        found += len(ocr.predict([unit.value])[0])
    print(f"scanned pages, rendered+OCR {rate(3, time.perf_counter() - start)} ({found} text lines)")


def bench_video(data: bytes, ocr) -> None:
    import av

    start = time.perf_counter()
    with av.open(io.BytesIO(data)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    print(f"video frames decoded     {rate(decoded, time.perf_counter() - start)} (1280x720 H.264, decode only)")
    start = time.perf_counter()
    units = list(expand_units(decode_asset(data, "image", LIMITS, "talk.mp4"), True))
    sampling_s = time.perf_counter() - start
    candidates = round(SLIDES * SLIDE_SECONDS / LIMITS.media.video_sample_seconds)
    print(f"video sampled + deduped  {rate(decoded, sampling_s)}: {len(units)} frames kept of {candidates} samples "
          f"(every {LIMITS.media.video_sample_seconds:g} s) and {decoded} frames: {candidates - len(units)} OCR calls saved")
    start = time.perf_counter()
    lines = sum(len(tags) for tags in ocr.predict([u.value for u in units]))
    print(f"video kept frames OCR    {rate(len(units), time.perf_counter() - start)} ({lines} text lines)")


def peak_rss(src: Path, bot: str, home: Path) -> float:
    """Peak RSS (MiB) of the largest process of a one-worker `spotbot tag` run, measured in a fresh parent."""
    probe = (
        "import resource, subprocess, sys; "
        f"subprocess.run([sys.executable, '-m', 'spotbot', 'tag', {str(src)!r}, '--bot', {bot!r}, '--workers', '1', "
        f"'--out', {str(home / 'out')!r}, '--json'], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    env = {"PYTHONPATH": str(REPO), "SPOTBOT_HOME": str(home), "PATH": "/usr/bin:/bin"}
    shutil.rmtree(home, ignore_errors=True)
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip())


def main() -> None:
    from bots.scene_text import SceneTextBot

    font = find_cjk_font(None)
    ocr = SceneTextBot()
    ocr.load(threads=2)
    bench_pages(font, ocr)
    talk = slide_talk(font)
    bench_video(talk, ocr)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images, media, small = root / "images", root / "media", root / "small"
        shutil.copytree(REPO / "samples" / "scene-text", images)
        media.mkdir()
        (media / "scan-300.pdf").write_bytes(scanned_pdf(300, font))
        (media / "talk.mp4").write_bytes(talk)
        small.mkdir()
        (small / "scan-10.pdf").write_bytes(scanned_pdf(10, font))
        shutil.copy(REPO / "samples" / "documents" / "contract.pdf", small)
        shutil.copy(REPO / "samples" / "videos" / "slides.mp4", small)
        for bot, other, what in (
            ("bench.noop_bot:NoopImageBot", media, "300-page scan + 10-min talk"),
            ("scene-text", small, "10-page scan + the samples' PDF and video"),
        ):
            image_rss, media_rss = peak_rss(images, bot, root / "h1"), peak_rss(other, bot, root / "h2")
            print(f"peak RSS, one worker, {bot}: images only {image_rss:.0f} MiB; {what} {media_rss:.0f} MiB "
                  f"({media_rss / image_rss:.2f}x, target <= 1.5x)")
    print(json.dumps({"render_dpi": LIMITS.media.render_dpi, "video_sample_seconds": LIMITS.media.video_sample_seconds}))


if __name__ == "__main__":
    main()
