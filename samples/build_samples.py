"""Build the bundled sample set in samples/: scene-text images, text-free photos, Chinese reviews.

Run from the repository root:

    python samples/build_samples.py           # (re)generate everything
    python samples/build_samples.py --check   # then run the real bots against expected.json

Every output is deterministic (fixed seeds, fixed sizes, fixed encoder settings) for a given
font file and Pillow version. The generated files are committed, so users never need to run
this; it needs a CJK font (Debian: fonts-wqy-microhei or fonts-noto-cjk) for the scene-text
images and scikit-image (only for its bundled public-domain / CC0 photos) for samples/photos/, fpdf2 for
samples/documents/ and PyAV (the `media` extra) for samples/videos/.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
SCENE_DIR = "scene-text"
PHOTO_DIR = "photos"
REVIEW_DIR = "reviews"
DOCUMENT_DIR = "documents"
VIDEO_DIR = "videos"

# --------------------------------------------------------------------------------------------
# Font
# --------------------------------------------------------------------------------------------

# (path, family name to pick inside a .ttc collection, or None for the first face)
FONT_CANDIDATES: list[tuple[str, str | None]] = [
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", None),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", None),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "Noto Sans CJK SC"),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", "Noto Sans CJK SC"),
    ("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc", "Noto Sans CJK SC"),
    ("/System/Library/Fonts/PingFang.ttc", None),
    ("C:/Windows/Fonts/msyh.ttc", None),
]


@dataclass(frozen=True)
class CjkFont:
    path: str
    index: int

    def at(self, size: int) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(self.path, size, index=self.index)


def _face_index(path: str, family: str | None) -> int | None:
    """Index of `family` inside a font file (0 when family is None); None if it is not there."""
    if family is None:
        return 0
    for index in range(16):
        try:
            font = ImageFont.truetype(path, 12, index=index)
        except OSError:
            return None
        if font.getname()[0] == family:
            return index
    return None


def _renders_chinese(font: CjkFont) -> bool:
    """True when the font has real glyphs for common simplified characters (not tofu boxes)."""
    face = font.at(32)
    masks = [np.asarray(face.getmask(ch)).tobytes() for ch in ("欢", "迎", "光", "临")]
    return all(masks) and len(set(masks)) == len(masks)


def find_cjk_font(explicit: str | None) -> CjkFont:
    tried = []
    candidates = [(explicit, None)] if explicit else FONT_CANDIDATES
    for path, family in candidates:
        tried.append(path)
        if not Path(path).is_file():
            continue
        index = _face_index(path, family)
        if index is None:
            continue
        font = CjkFont(path, index)
        if _renders_chinese(font):
            return font
    sys.exit(
        "build_samples: no usable CJK font found (tried: " + ", ".join(tried) + ").\n"
        "Install one, e.g. `apt-get install fonts-wqy-microhei` (Debian/Ubuntu), "
        "or pass --font /path/to/a/cjk-font.ttc"
    )


# --------------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------------


def text_size(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def draw_centered(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.FreeTypeFont,
    center: tuple[float, float],
    fill,
    **kwargs,
) -> None:
    draw.text(center, text, font=font, fill=fill, anchor="mm", **kwargs)


def vertical_gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    width, height = size
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    colours = (1 - t) * np.array(top, float) + t * np.array(bottom, float)
    return np.broadcast_to(colours, (height, width, 3)).copy()


def gradient_image(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    return Image.fromarray(vertical_gradient(size, top, bottom).astype(np.uint8), "RGB")


# where each line of a sign goes: (font size, centre, colour)
Placement = tuple[int, tuple[float, float], tuple[int, int, int]]


def draw_lines(draw: ImageDraw.ImageDraw, font: "CjkFont", lines: list[str], placements: list[Placement]) -> None:
    """Each line centred at its placement, in order."""
    for line, (size, center, fill) in zip(lines, placements):
        draw_centered(draw, line, font.at(size), center, fill)


@dataclass(frozen=True)
class Frame:
    """A sign's border: a rectangle `inset` pixels in from the edge, its corners rounded by `radius`."""

    inset: int
    outline: tuple[int, int, int]
    width: int
    radius: int = 0

    def draw_on(self, draw: ImageDraw.ImageDraw, size: tuple[int, int]) -> None:
        box = (self.inset, self.inset, size[0] - 1 - self.inset, size[1] - 1 - self.inset)
        if self.radius:
            draw.rounded_rectangle(box, radius=self.radius, outline=self.outline, width=self.width)
        else:
            draw.rectangle(box, outline=self.outline, width=self.width)


def board(
    size: tuple[int, int],
    *,
    background: tuple[int, int, int] | None = None,
    gradient: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None,
    frame: Frame | None = None,
) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A sign's blank: one colour, or a (top, bottom) gradient, with its frame if it has one."""
    image = gradient_image(size, *gradient) if gradient else Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    if frame:
        frame.draw_on(draw, size)
    return image, draw


def lettered(font: "CjkFont", lines: list[str], size: tuple[int, int], *, placements: list[Placement], **blank) -> Image.Image:
    """A board (`blank`: its background or gradient, and frame) with each line centred at its placement."""
    image, draw = board(size, **blank)
    draw_lines(draw, font, lines, placements)
    return image


def add_noise(pixels: np.ndarray, seed: int, sigma: float) -> Image.Image:
    rng = np.random.default_rng(seed)
    noisy = pixels.astype(float) + rng.normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------------------------
# Scene-text images. Each builder returns the image; `lines` are the strings drawn on it, and
# `expected` the strings the OCR must read (spaces removed; see expected.json).
# --------------------------------------------------------------------------------------------


@dataclass
class SceneSample:
    filename: str
    lines: list[str]
    build: Callable[[CjkFont, list[str]], Image.Image]
    expected: list[str] = field(default_factory=list)  # defaults to the lines with spaces removed
    save: dict = field(default_factory=dict)

    def expected_strings(self) -> list[str]:
        return self.expected or [line.replace(" ", "") for line in self.lines]


def shop_sign(font: CjkFont, lines: list[str]) -> Image.Image:
    """Dark shop sign with large light characters and a smaller sub-line."""
    return lettered(font, lines, (900, 300), background=(28, 32, 40), frame=Frame(12, (200, 160, 60), width=4), placements=[
        (130, (450, 125), (250, 236, 200)),
        (40, (450, 240), (200, 160, 60)),
    ])


def poster(font: CjkFont, lines: list[str]) -> Image.Image:
    """Red poster mixing Chinese and English lines."""
    return lettered(font, lines, (600, 800), background=(196, 30, 38), frame=Frame(24, (255, 215, 0), width=6), placements=[
        (110, (300, 220), (255, 215, 0)),
        (56, (300, 420), (255, 255, 255)),
        (72, (300, 590), (255, 255, 255)),
    ])


def street_plate(font: CjkFont, lines: list[str]) -> Image.Image:
    """Blue street-name plate: white border, Chinese name, pinyin below, direction arrow."""
    frame = Frame(10, (255, 255, 255), width=6, radius=18)
    image = lettered(font, lines, (720, 260), background=(0, 82, 165), frame=frame, placements=[
        (100, (330, 105), (255, 255, 255)),
        (40, (330, 200), (255, 255, 255)),
    ])
    draw = ImageDraw.Draw(image)
    draw.polygon([(600, 110), (650, 130), (600, 150)], fill=(255, 255, 255))  # arrow head
    draw.rectangle((560, 124, 605, 136), fill=(255, 255, 255))  # arrow shaft
    return image


def receipt(font: CjkFont, lines: list[str]) -> Image.Image:
    """Narrow off-white receipt: title, item lines, dashed rules, total and a thank-you line."""
    width, line_height, margin = 420, 48, 30
    rows = len(lines) + 2  # two dashed rules
    image, draw = board((width, margin * 2 + rows * line_height), background=(250, 248, 240))
    title_font, body_font = font.at(30), font.at(24)
    y = margin
    title, items, total, footer = lines[0], lines[1:-2], lines[-2], lines[-1]
    draw_centered(draw, title, title_font, (width / 2, y + line_height / 2), (30, 30, 30))
    y += line_height

    def rule() -> None:
        nonlocal y
        for x in range(margin, width - margin, 14):
            draw.line((x, y + line_height / 2, x + 7, y + line_height / 2), fill=(90, 90, 90), width=2)
        y += line_height

    rule()
    for item in items + [total]:
        if item is total:
            rule()
        draw.text((margin, y + line_height / 2), item, font=body_font, fill=(30, 30, 30), anchor="lm")
        y += line_height
    draw_centered(draw, footer, body_font, (width / 2, y + line_height / 2), (30, 30, 30))
    return image


def small_label(font: CjkFont, lines: list[str]) -> Image.Image:
    """A small 320x120 yellow warning label with one short line."""
    frame = Frame(4, (0, 0, 0), width=3)
    return lettered(font, lines, (320, 120), background=(255, 204, 0), frame=frame, placements=[(52, (160, 60), (0, 0, 0))])


def large_banner(font: CjkFont, lines: list[str]) -> Image.Image:
    """A large 1600x1000 banner on a light gradient with a headline and two sub-lines."""
    return lettered(font, lines, (1600, 1000), gradient=((235, 245, 255), (180, 210, 240)), placements=[
        (170, (800, 330), (10, 60, 120)),
        (110, (800, 560), (200, 40, 40)),
        (70, (800, 760), (40, 40, 40)),
    ])


def noisy_notice(font: CjkFont, lines: list[str]) -> Image.Image:
    """A JPEG-destined notice on a warm gradient with slight Gaussian noise."""
    image = lettered(font, lines, (800, 500), gradient=((245, 235, 215), (205, 190, 165)), placements=[
        (90, (400, 150), (60, 40, 20)),
        (60, (400, 290), (60, 40, 20)),
        (52, (400, 400), (120, 30, 30)),
    ])
    return add_noise(np.asarray(image), seed=20240607, sigma=9.0)


def rotated_sign(font: CjkFont, lines: list[str]) -> Image.Image:
    """A white no-smoking style sign rotated a few degrees on a grey wall."""
    sign = lettered(font, lines, (640, 320), background=(255, 255, 255), frame=Frame(8, (200, 20, 20), width=8), placements=[
        (110, (320, 130), (200, 20, 20)),
        (52, (320, 250), (40, 40, 40)),
    ])
    rotated = sign.rotate(4, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))
    mask = Image.new("L", sign.size, 255).rotate(4, resample=Image.Resampling.BICUBIC, expand=True)
    wall = Image.new("RGB", (rotated.width + 120, rotated.height + 120), (128, 130, 135))
    wall.paste(rotated, (60, 60), mask)
    return wall


def menu_board(font: CjkFont, lines: list[str]) -> Image.Image:
    """A dark green chalk-board menu with a title and priced dishes."""
    image, draw = board((700, 560), background=(30, 60, 45), frame=Frame(0, (140, 100, 60), width=16))
    draw_centered(draw, lines[0], font.at(80), (350, 100), (250, 250, 240))
    body = font.at(50)
    for i, line in enumerate(lines[1:]):
        draw.text((110, 220 + i * 100), line, font=body, fill=(240, 240, 220), anchor="lm")
    return image


def door_hours(font: CjkFont, lines: list[str]) -> Image.Image:
    """Glass-door opening-hours sticker: dark text on a pale panel over a photo-like gradient."""
    image, draw = board((640, 640), gradient=((90, 110, 120), (40, 50, 60)))
    draw.rounded_rectangle((80, 120, 560, 520), radius=24, fill=(245, 245, 245))
    draw_lines(draw, font, lines, [
        (72, (320, 210), (20, 20, 20)),
        (56, (320, 330), (20, 20, 20)),
        (48, (320, 440), (200, 30, 30)),
    ])
    return add_noise(np.asarray(image), seed=7, sigma=4.0)


SCENE_SAMPLES: list[SceneSample] = [
    SceneSample("shop-sign.png", ["幸福面馆", "手工拉面 现煮现卖"], shop_sign),
    SceneSample("poster.png", ["欢迎光临", "OPEN 24 HOURS", "全场八折"], poster),
    SceneSample("street-plate.png", ["人民路", "RENMIN RD"], street_plate),
    SceneSample(
        "receipt.png",
        ["便利店购物小票", "牛奶 2瓶 13.00", "面包 1个 8.00", "苹果 3个 6.00", "合计 27.00", "谢谢惠顾"],
        receipt,
    ),
    SceneSample("small-label.png", ["小心地滑"], small_label),
    SceneSample("large-banner.png", ["春季新品上市", "SPRING SALE", "买二送一 限时三天"], large_banner),
    SceneSample("parking-notice.jpg", ["停车场入口", "PARKING", "限高二点二米"], noisy_notice,
                save={"quality": 88}),
    SceneSample("no-smoking.png", ["请勿吸烟", "NO SMOKING"], rotated_sign),
    SceneSample("menu-board.png", ["今日特价", "牛肉面 18元", "蛋炒饭 15元", "酸梅汤 5元"], menu_board),
    SceneSample("opening-hours.jpg", ["营业时间", "周一至周日", "09:00-21:00"], door_hours,
                save={"quality": 90}),
]

# --------------------------------------------------------------------------------------------
# Photos: real photographs with no text, from scikit-image's bundled data
# (chelsea: CC0 by Stefan van der Walt; astronaut: NASA, public domain; rocket: SpaceX, released
# into the public domain; see the skimage.data docstrings).
# --------------------------------------------------------------------------------------------

PHOTOS: list[tuple[str, str]] = [
    ("chelsea.png", "cat.jpg"),
    ("astronaut.png", "astronaut.jpg"),
    ("rocket.jpg", "rocket.jpg"),
]
# coffee.png is not used: the OCR bot reads a spurious "O" in it (the cup rim).
PHOTO_MAX_SIDE = 640
PHOTO_QUALITY = 85

# --------------------------------------------------------------------------------------------
# Reviews: original short Chinese reviews written for this sample set. True sentiment labels.
# --------------------------------------------------------------------------------------------

REVIEWS: list[tuple[str, str]] = [
    ("positive", "这家餐厅的菜非常好吃，服务员热情周到，环境干净舒适，下次还会再来。"),
    ("negative", "菜又咸又油，等了一个小时才上菜，服务员态度很差，再也不会来了。"),
    ("positive", "酒店房间宽敞明亮，床很舒服，前台服务很热情，位置方便，非常满意。"),
    ("negative", "房间又小又脏，隔音很差，空调也坏了，整晚都睡不好，非常失望。"),
    ("positive", "手机质量很好，运行流畅，拍照清楚，电池也耐用，物超所值，推荐购买。"),
    ("negative", "耳机用了两天就坏了，声音很差，客服也不理人，质量太差，不推荐。"),
    ("positive", "快递很快，包装完好，衣服质量不错，穿着很舒服，颜色也很漂亮，好评。"),
    ("negative", "衣服质量很差，洗了一次就掉色起球，尺码也不对，退货还很麻烦，差评。"),
    ("positive", "咖啡很香，甜点也好吃，店里安静舒适，适合看书聊天，很喜欢这家店。"),
    ("negative", "咖啡又苦又凉，蛋糕不新鲜，价格还很贵，店员态度冷淡，很失望。"),
    ("positive", "这本书写得很好，内容丰富有趣，印刷清楚，孩子非常喜欢，值得购买。"),
    ("negative", "书的印刷质量很差，很多页模糊不清，还有破损，内容也很无聊，不值这个价。"),
    ("positive", "火锅味道正宗，食材新鲜，服务很周到，价格也实惠，朋友们都很满意。"),
    ("negative", "外卖送得太慢，饭菜都凉了，分量很少，味道也不好，差评。"),
    ("positive", "民宿老板人很好，房间干净温馨，风景很美，早餐也好吃，非常推荐。"),
    ("negative", "吹风机用了一周就不能用了，噪音大，还有烧焦的味道，质量太差了，很失望。"),
]


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


def save_image(image: Image.Image, path: Path, **options) -> None:
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, "JPEG", quality=options.get("quality", 85), optimize=True)
    else:
        # quantising to a palette keeps the flat-colour renders small; anti-aliasing survives with 256 colours
        palette = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette.save(path, "PNG", optimize=True)


def skimage_data_dir() -> Path:
    try:
        import skimage.data  # noqa: F401  (only its folder of bundled images is used)
    except ImportError:
        sys.exit("build_samples: scikit-image is needed for samples/photos/: `pip install scikit-image`")
    return Path(skimage.data.__file__).parent


def build_scene_text(out: Path, font: CjkFont) -> dict[str, list[str]]:
    folder = out / SCENE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for sample in SCENE_SAMPLES:
        image = sample.build(font, sample.lines)
        save_image(image, folder / sample.filename, **sample.save)
        expected[f"{SCENE_DIR}/{sample.filename}"] = sample.expected_strings()
    return expected


def build_photos(out: Path) -> dict[str, list[str]]:
    folder = out / PHOTO_DIR
    folder.mkdir(parents=True, exist_ok=True)
    data_dir = skimage_data_dir()
    expected = {}
    for source, target in PHOTOS:
        image = Image.open(data_dir / source).convert("RGB")
        scale = PHOTO_MAX_SIDE / max(image.size)
        if scale < 1:
            image = image.resize(
                (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
            )
        image.save(folder / target, "JPEG", quality=PHOTO_QUALITY, optimize=True)
        expected[f"{PHOTO_DIR}/{target}"] = []
    return expected


def build_reviews(out: Path) -> dict[str, str]:
    folder = out / REVIEW_DIR
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for number, (label, text) in enumerate(REVIEWS, start=1):
        name = f"review-{number:02d}.txt"
        (folder / name).write_text(text + "\n", encoding="utf-8", newline="\n")
        expected[f"{REVIEW_DIR}/{name}"] = label
    return expected


# a contract: page 1 has a text layer, page 2 is a scan (an image only) of a notice
CONTRACT_TEXT_PAGE = ["合同编号：HT-2026-0815", "甲方：幸福面馆有限公司", "乙方：人民路物业管理处", "租期：二〇二六年一月至十二月"]
CONTRACT_SCANNED_PAGE = ["装修通知", "三号楼电梯维修", "请走楼梯"]
A4_POINTS = (595.28, 841.89)
SCAN_DPI = 150
# two slides of a short talk, as (first second, lines): slide 2 starts off the 2-second sampling grid
VIDEO_SLIDES = [(0.0, ["第一季度销售报告", "SALES REPORT"]), (5.0, ["感谢观看", "欢迎提问"])]
VIDEO_SECONDS = 9.0
VIDEO_FPS = 12
VIDEO_SIZE = (640, 360)


def _ttf_from(font: CjkFont, folder: Path) -> Path:
    """fpdf2 embeds one TrueType face: take it out of the .ttc collection."""
    from fontTools.ttLib import TTFont

    path = folder / "cjk-face.ttf"
    TTFont(font.path, fontNumber=font.index).save(path)
    return path


def scanned_notice(font: CjkFont, lines: list[str]) -> Image.Image:
    """An A4 page as a 150-dpi scanner gives it: off-white paper, grey noise, a slight tilt."""
    size = (round(A4_POINTS[0] / 72 * SCAN_DPI), round(A4_POINTS[1] / 72 * SCAN_DPI))
    image = Image.new("L", size, 236)
    draw = ImageDraw.Draw(image)
    draw_centered(draw, lines[0], font.at(120), (size[0] // 2, 300), 30)
    for row, line in enumerate(lines[1:]):
        draw_centered(draw, line, font.at(80), (size[0] // 2, 560 + row * 160), 40)
    image = image.rotate(0.6, resample=Image.Resampling.BICUBIC, fillcolor=236)
    return add_noise(np.asarray(image.convert("RGB"), dtype=np.float64), seed=15, sigma=6.0)


def build_documents(out: Path, font: CjkFont) -> dict[str, dict[str, list[str]]]:
    import tempfile

    from fpdf import FPDF

    folder = out / DOCUMENT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    pdf = FPDF(unit="pt", format=A4_POINTS)
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))  # the same bytes every build
    with tempfile.TemporaryDirectory() as tmp:
        pdf.add_font("cjk", fname=str(_ttf_from(font, Path(tmp))))
        pdf.add_page()
        pdf.set_font("cjk", size=22)
        for row, line in enumerate(CONTRACT_TEXT_PAGE):
            pdf.text(72, 120 + row * 48, line)
        pdf.add_page()
        scan = Path(tmp) / "scan.jpg"
        scanned_notice(font, CONTRACT_SCANNED_PAGE).save(scan, "JPEG", quality=70, optimize=True)
        pdf.image(str(scan), x=0, y=0, w=A4_POINTS[0], h=A4_POINTS[1])
        pdf.output(str(folder / "contract.pdf"))
    return {f"{DOCUMENT_DIR}/contract.pdf": {"1": CONTRACT_TEXT_PAGE, "2": CONTRACT_SCANNED_PAGE}}


def slide(font: CjkFont, lines: list[str], number: int) -> Image.Image:
    background = ((24, 40, 88), (120, 28, 36))[number % 2]
    return lettered(font, lines, VIDEO_SIZE, background=background, placements=[
        (64, (VIDEO_SIZE[0] // 2, 140), (255, 255, 255)),
        (40, (VIDEO_SIZE[0] // 2, 250), (255, 220, 120)),
    ])


def build_video(out: Path, font: CjkFont) -> dict[str, list[dict]]:
    import av

    folder = out / VIDEO_DIR
    folder.mkdir(parents=True, exist_ok=True)
    slides = [slide(font, lines, n) for n, (_, lines) in enumerate(VIDEO_SLIDES)]
    with av.open(str(folder / "slides.mp4"), mode="w") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS, options={"crf": "30", "preset": "veryslow"})
        stream.width, stream.height, stream.pix_fmt = VIDEO_SIZE[0], VIDEO_SIZE[1], "yuv420p"
        stream.codec_context.options = {"crf": "30", "preset": "veryslow", "threads": "1"}  # one thread: the same bytes every build
        for index in range(round(VIDEO_SECONDS * VIDEO_FPS)):
            t = index / VIDEO_FPS
            current = max(n for n, (start, _) in enumerate(VIDEO_SLIDES) if start <= t)
            container.mux(stream.encode(av.VideoFrame.from_image(slides[current])))
        container.mux(stream.encode(None))
    return {f"{VIDEO_DIR}/slides.mp4": [{"start": start, "texts": [l.replace(" ", "") for l in lines]} for start, lines in VIDEO_SLIDES]}


GROUPS: dict[str, tuple[str, Callable[[Path, CjkFont], dict]]] = {
    "scene-text": (SCENE_DIR, lambda out, font: build_scene_text(out, font)),
    "photos": (PHOTO_DIR, lambda out, font: build_photos(out)),
    "sentiment": (REVIEW_DIR, lambda out, font: build_reviews(out)),
    "documents": (DOCUMENT_DIR, build_documents),
    "video": (VIDEO_DIR, build_video),
}


def build(out: Path, font: CjkFont, only: list[str] | None = None) -> dict:
    """Builds the groups named (all by default), keeping the other groups' files and expected results."""
    expected_path = out / "expected.json"
    expected = json.loads(expected_path.read_text(encoding="utf-8")) if only and expected_path.exists() else {}
    for group in only or list(GROUPS):
        folder, builder = GROUPS[group]
        shutil.rmtree(out / folder, ignore_errors=True)  # no stale files from an earlier sample list
        expected[group] = builder(out, font)
    expected_path.write_text(json.dumps(expected, ensure_ascii=False, indent=2) + "\n", encoding="utf-8", newline="\n")
    return expected


# --------------------------------------------------------------------------------------------
# Check against the real bots
# --------------------------------------------------------------------------------------------


def check(out: Path, expected: dict, threads: int) -> bool:
    from bots.scene_text import SceneTextBot
    from bots.sentiment import SentimentBot
    from spotbot.services.decoding import DecodeLimits, decode_image, decode_text

    limits = DecodeLimits(max_asset_bytes=64 << 20, max_image_pixels=50_000_000, max_text_bytes=1 << 20)
    ok = True
    ocr = SceneTextBot()
    ocr.load(threads=threads)
    for group in ("scene-text", "photos"):
        for rel, wanted in expected.get(group, {}).items():
            image = decode_image((out / rel).read_bytes(), limits)
            start = time.perf_counter()
            tags = ocr.predict([image])[0]
            seconds = time.perf_counter() - start
            joined = "".join(tag.text for tag in tags).replace(" ", "")
            if group == "photos":
                good = not tags
                missing = [tag.text for tag in tags]
            else:
                missing = [s for s in wanted if s not in joined]
                good = not missing
            ok &= good
            status = "ok  " if good else "FAIL"
            print(f"{status} {rel:32s} {seconds:5.2f}s read={[t.text for t in tags]}"
                  + ("" if good else f" problem={missing}"))
    ok &= check_media(out, expected, ocr, limits)
    sentiment = SentimentBot()
    sentiment.load()
    for rel, label in expected.get("sentiment", {}).items():
        tag = sentiment.predict([decode_text((out / rel).read_bytes(), limits)])[0][0]
        good = tag.label == label
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {rel:32s} expected={label} got={tag.label} ({tag.score})")
    return ok


def check_media(out: Path, expected: dict, ocr, limits) -> bool:
    """The PDF's pages and the video's slides through the pipeline's own unit readers and the OCR bot."""
    from spotbot.services.decoding import decode_asset
    from spotbot.services.units import expand_units

    ok = True
    for rel, pages in expected.get("documents", {}).items():
        for unit in expand_units(decode_asset((out / rel).read_bytes(), "image", limits, rel), True):
            tags = list(unit.tags) if unit.tags is not None else ocr.predict([unit.value])[0]
            read = "".join(tag.text for tag in tags).replace(" ", "")
            missing = [s for s in pages[str(unit.page)] if s not in read]
            ok &= not missing
            print(f"{'FAIL' if missing else 'ok  '} {rel} page {unit.page} read={[t.text for t in tags]}")
    for rel, slides in expected.get("video", {}).items():
        for unit in expand_units(decode_asset((out / rel).read_bytes(), "image", limits, rel), True):
            read = "".join(tag.text for tag in ocr.predict([unit.value])[0]).replace(" ", "")
            slide = max((s for s in slides if s["start"] <= unit.t), key=lambda s: s["start"])
            missing = [s for s in slide["texts"] if s not in read]
            ok &= not missing
            print(f"{'FAIL' if missing else 'ok  '} {rel} t={unit.t} read={read}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: samples/)")
    parser.add_argument("--font", default=os.environ.get("SAMPLES_CJK_FONT"),
                        help="a CJK font file to use instead of searching the usual places")
    parser.add_argument("--only", help=f"comma-separated groups to rebuild, of {','.join(GROUPS)} (default: all)")
    parser.add_argument("--check", action="store_true", help="after building, run the real bots on the samples")
    parser.add_argument("--threads", type=int, default=2, help="OCR threads for --check")
    args = parser.parse_args()

    font = find_cjk_font(args.font)
    print(f"font: {font.path} (face {font.index}: {' '.join(font.at(12).getname())})")
    expected = build(args.out, font, args.only.split(",") if args.only else None)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {sum(len(v) for v in expected.values())} samples to {args.out} ({total / 1024:.0f} KiB in the folder)")
    if args.check and not check(args.out, expected, args.threads):
        sys.exit("build_samples: some samples do not give their expected result")


if __name__ == "__main__":
    main()
