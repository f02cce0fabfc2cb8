"""Documents and videos as units: the readers, their limits and bad inputs, the fold, the wire."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from PIL import Image

from spotbot.domain import Tag, TagRecord, Task, TaskStatus
from spotbot.domain.units import MediaLimits, Unit, clock, fold_tags, where_found
from spotbot.ports import TaskOutcome
from spotbot.services.decoding import AssetError, DecodeLimits, decode_asset
from spotbot.services.units import MediaAsset, UnitFolds, expand_units
from tests.media_files import CONTRACT, SLIDES, bad_assets, colour_video, image_pdf, text_pdf, text_slides_video

LIMITS = DecodeLimits(max_asset_bytes=64 << 20, max_image_pixels=50_000_000, max_text_bytes=1 << 20)
EXPECTED = json.loads((CONTRACT.parents[1] / "expected.json").read_text(encoding="utf-8"))


def units_of(data: bytes, name: str, kind: str = "image", limits: DecodeLimits = LIMITS, text_layer: bool = True) -> list[Unit]:
    return list(expand_units(decode_asset(data, kind, limits, name), text_layer))  # type: ignore[arg-type]


def with_media(**changes: object) -> DecodeLimits:
    return replace(LIMITS, media=replace(MediaLimits(), **changes))


def test_a_text_layer_page_gives_its_text_exactly_and_a_scanned_page_is_rendered():
    first, second = units_of(CONTRACT.read_bytes(), "contract.pdf")
    assert first.page == 1 and first.value is None  # no render, no OCR: the bot never sees it
    assert [t.text for t in first.tags] == EXPECTED["documents"]["documents/contract.pdf"]["1"]
    assert {t.score for t in first.tags} == {1.0}
    x0, y0 = first.tags[0].box[0]
    assert 0 < x0 < 993 and 0 < y0 < 300  # pixels of the page at 120 dpi, measured from the top
    assert second.page == 2 and second.tags is None
    assert isinstance(second.value, Image.Image) and second.value.size == (993, 1404)  # A4 at 120 dpi


def test_a_bot_that_does_not_read_text_layers_gets_every_page_rendered():
    units = units_of(CONTRACT.read_bytes(), "contract.pdf", text_layer=False)
    assert [u.page for u in units] == [1, 2] and all(isinstance(u.value, Image.Image) for u in units)


def test_a_text_bot_reads_the_document_text_and_a_scan_fails():
    (unit,) = units_of(text_pdf([["Great food"], ["and kind staff"]]), "r.pdf", kind="text")
    assert unit.value == "Great food\n\nand kind staff" and unit.page is None
    with pytest.raises(AssetError, match="no text layer"):
        units_of(image_pdf([Image.new("RGB", (40, 20), "white")]), "scan.pdf", kind="text")
    with pytest.raises(AssetError, match="SPOTBOT_MAX_TEXT_BYTES"):
        units_of(text_pdf([["x" * 40]] * 3), "long.pdf", kind="text", limits=replace(LIMITS, max_text_bytes=60))


@pytest.mark.parametrize("name", sorted(bad_assets()))
def test_each_bad_document_or_video_fails_with_a_clear_error(name: str):
    data, phrase = bad_assets()[name]
    with pytest.raises(AssetError) as error:
        units_of(data, name)
    assert phrase in str(error.value)


def test_page_limits_name_their_setting():
    three = text_pdf([["a"], ["b"], ["c"]])
    with pytest.raises(AssetError, match=r"3 pages, above max_document_pages \(2\).*SPOTBOT_MAX_DOCUMENT_PAGES"):
        units_of(three, "three.pdf", limits=with_media(max_document_pages=2))
    pages = expand_units(decode_asset(CONTRACT.read_bytes(), "image", with_media(max_render_pixels=1_000_000), "c.pdf"), True)
    assert next(pages).page == 1  # the text-layer page needs no render
    with pytest.raises(AssetError, match="page 2 .* above max_render_pixels .*SPOTBOT_RENDER_DPI"):
        next(pages)


def test_video_frames_are_sampled_with_their_time_and_duplicates_skipped():
    units = units_of(SLIDES.read_bytes(), "slides.mp4")
    slides = EXPECTED["video"]["videos/slides.mp4"]
    interval = MediaLimits().video_sample_seconds
    assert len(units) == len(slides)  # 9 s sampled every 2 s is 5 candidates; 3 repeat a slide
    for unit, slide in zip(units, slides, strict=True):
        assert slide["start"] <= unit.t <= slide["start"] + interval
        assert isinstance(unit.value, Image.Image) and unit.value.size == (640, 360)


def test_a_scene_cut_is_sampled_at_once_and_a_repeated_scene_is_not():
    red, blue, green = (255, 0, 0), (0, 0, 255), (0, 255, 0)
    units = units_of(colour_video([red, blue, blue, green], seconds_each=1.5), "cuts.mp4")
    assert [u.t for u in units] == [0.0, 1.5, 4.5]
    assert [max(range(3), key=lambda c: u.value.getpixel((2, 2))[c]) for u in units] == [0, 2, 1]


def test_slides_that_differ_in_one_character_are_each_kept():
    units = units_of(text_slides_video([f"Quarterly report, slide {n}" for n in (1, 2, 3, 4)], seconds_each=3.0), "talk.mp4")
    assert [u.t for u in units] == [0.0, 4.0, 6.0, 10.0]  # each slide once, at the first sample that shows it


def test_video_limits_name_their_setting():
    with pytest.raises(AssetError, match=r"above max_video_seconds \(5 s\).*SPOTBOT_MAX_VIDEO_SECONDS"):
        units_of(SLIDES.read_bytes(), "s.mp4", limits=with_media(max_video_seconds=5))
    with pytest.raises(AssetError, match=r"max_frames_per_asset \(1\).*SPOTBOT_MAX_FRAMES_PER_ASSET"):
        units_of(SLIDES.read_bytes(), "s.mp4", limits=with_media(max_frames_per_asset=1))


def test_images_and_texts_stay_one_unit_and_bytes_bots_get_bytes():
    (unit,) = units_of(b"hello", "a.txt", kind="text")
    assert unit == Unit(value="hello")
    assert decode_asset(CONTRACT.read_bytes(), "bytes", LIMITS, "c.pdf") == CONTRACT.read_bytes()
    assert isinstance(decode_asset(CONTRACT.read_bytes(), "image", LIMITS, "C.PDF"), MediaAsset)  # types by suffix, any case


class Writer:
    def __init__(self) -> None:
        self.added: list[tuple[TaskOutcome, TagRecord | None]] = []

    def add(self, outcome: TaskOutcome, record: TagRecord | None = None) -> None:
        self.added.append((outcome, record))


class Naming:
    bot_name, model_version = "b", "v1"


def task(asset: str) -> Task:
    return Task(job_id="j", asset=asset, etag="e", shard=0)


def test_folds_write_one_record_per_asset_only_once_all_its_units_are_tagged():
    writer = Writer()
    folds = UnitFolds(writer, "j", Naming())
    doc, img = task("doc.pdf"), task("img.png")
    known = folds.add(doc, Unit(page=1, tags=(Tag(label="text", score=1.0, text="hi"),)))
    page2 = folds.add(doc, Unit(value=Image.new("RGB", (2, 2)), page=2))
    single = folds.add(img, Unit(value=Image.new("RGB", (2, 2))))
    assert known is None and page2 is not None
    folds.expanded(doc)
    folds.expanded(img)
    folds.tagged(single, [{"label": "cat", "score": 0.5}])
    assert [o.asset for o, _ in writer.added] == ["img.png"]  # doc waits for its page 2
    folds.tagged(page2, [Tag(label="text", score=0.9, text="scan", page=7)])
    outcome, record = writer.added[-1]
    assert outcome.status is TaskStatus.DONE
    assert [(t.text, t.page) for t in record.tags] == [("hi", 1), ("scan", 2)]  # the unit's page wins over the bot's
    assert writer.added[0][1].tags[0].model_extra == {}  # a one-unit asset's tags carry no place


def test_a_failed_unit_fails_its_asset_once_and_an_unfinished_asset_is_never_written():
    writer = Writer()
    folds = UnitFolds(writer, "j", Naming())
    bad, cut = task("bad.mp4"), task("cut.pdf")
    first = folds.add(bad, Unit(value=1, t=0.0))
    folds.add(bad, Unit(value=2, t=2.0))
    folds.failed(bad, "bot error: boom")
    folds.expanded(bad)
    folds.tagged(first, [])  # a late prediction of a failed asset is dropped
    folds.add(cut, Unit(value=3, page=1))  # a stop came mid-document: never expanded
    assert [(o.asset, o.status, o.error) for o, _ in writer.added] == [("bad.mp4", TaskStatus.FAILED, "bot error: boom")]


def test_fold_and_where_found_say_where_in_the_asset():
    tags = fold_tags([(Unit(page=1), [Tag(label="text", score=1, text="合同编号")]),
                      (Unit(page=3), [Tag(label="text", score=1, text="附件")])])
    assert where_found(tags, ["合同"]) == "page 1"
    assert where_found(tags, ["nothing"]) == "pages 1, 3"
    assert where_found([Tag(label="text", score=1, text="感谢", t=73.2)], ["感谢"]) == "at 1:13.2"
    assert where_found([Tag(label="cat", score=1)], ["cat"]) == ""
    assert clock(3725.0) == "1:02:05.0"


def test_the_sagemaker_runtime_sends_one_page_per_instance_under_the_payload_limit():
    """A many-page scan never goes to the endpoint whole: the worker hands it pages, one instance each."""
    from spotbot.adapters.sagemaker import wire
    from spotbot.adapters.sagemaker.runtime import SageMakerRuntime

    class Client:
        def __init__(self) -> None:
            self.bodies: list[bytes] = []

        def invoke_endpoint(self, **request: object) -> dict:
            body = request["Body"]
            self.bodies.append(body)  # type: ignore[arg-type]
            n = len(wire.decode_binary_batch(body))  # type: ignore[arg-type]
            payload = wire.encode_predictions([[] for _ in range(n)], "m")
            return {"Body": __import__("io").BytesIO(payload)}

    pages = [Image.effect_noise((800, 800), 60 + i).convert("RGB") for i in range(6)]  # noise: big PNGs
    units = units_of(image_pdf(pages, page_points=(800 * 72 / 150, 800 * 72 / 150)), "scan.pdf")
    client = Client()
    runtime = SageMakerRuntime("ep", "scene-text", client=client, max_payload_bytes=1_500_000)
    assert runtime.reads_text_layer
    assert runtime.predict([u.value for u in units]) == [[] for _ in units]
    assert len(client.bodies) > 1 and all(len(b) <= 1_500_000 for b in client.bodies)
    assert sum(len(wire.decode_binary_batch(b)) for b in client.bodies) == len(units) == 6
