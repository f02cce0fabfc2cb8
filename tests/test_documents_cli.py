"""Documents and videos end to end, through the real `spotbot` command and its worker processes."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from PIL import Image

from tests.conftest import REPO, read_parts, run_spotbot, spotbot_env, table_columns, wait_for_done
from tests.media_files import CONTRACT, SLIDES, bad_assets, image_pdf, text_pdf

EXPECTED = json.loads((REPO / "samples" / "expected.json").read_text(encoding="utf-8"))
COLOUR_BOT = "tests.media_files:PageColourBot"


def test_scene_text_reads_pdf_pages_and_video_frames_and_bad_ones_fail_alone(tmp_path: Path):
    src, home, out = tmp_path / "src", tmp_path / "home", tmp_path / "out"
    src.mkdir()
    shutil.copy(CONTRACT, src / "contract.pdf")
    shutil.copy(SLIDES, src / "slides.mp4")
    for name, (data, _) in bad_assets().items():
        (src / name).write_bytes(data)
    run = run_spotbot(home, "tag", str(src), "--bot", "scene-text", "--out", str(out), "--job-id", "media", "--json")
    job = json.loads(run.stdout)["job"]
    assert job["status"] == "PARTIAL"
    assert job["counts"] | {"pending": 0} == {"total": 8, "pending": 0, "done": 2, "failed": 6, "skipped": 0}

    errors = {Path(t["asset"]).name: t["error"] for t in json.loads(run_spotbot(home, "status", "media", "--json").stdout)["failed_tasks"]}
    assert errors.keys() == bad_assets().keys()
    for name, (_, phrase) in bad_assets().items():
        assert phrase in errors[name], (name, errors[name])

    records = {Path(r["asset"]).name: r for r in read_parts(out / "media")}
    assert records.keys() == {"contract.pdf", "slides.mp4"}
    pages: dict[int, str] = {}
    for tag in records["contract.pdf"]["tags"]:
        pages[tag["page"]] = pages.get(tag["page"], "") + tag["text"].replace(" ", "")
    expected_pages = EXPECTED["documents"]["documents/contract.pdf"]
    text_layer = [t["text"] for t in records["contract.pdf"]["tags"] if t["page"] == 1]
    assert text_layer == expected_pages["1"]  # exact: the text layer, not OCR
    assert all(line in pages[2] for line in expected_pages["2"]), pages[2]  # the scanned page, OCR'd
    interval = 2.0
    for slide in EXPECTED["video"]["videos/slides.mp4"]:
        times = [t["t"] for t in records["slides.mp4"]["tags"] if any(s in t["text"].replace(" ", "") for s in slide["texts"])]
        assert times and all(slide["start"] <= t <= slide["start"] + interval for t in times), (slide, times)

    def search(term: str) -> str:  # the table's text, whatever the temporary folder's length made it fold
        return "".join(table_columns(run_spotbot(home, "search", term, "--job", "media").stdout))

    found = search("合同编号")
    assert "contract.pdf" in found and "(page1)" in found and "slides.mp4" not in found
    assert "(page2)" in search("电梯")
    spoken = search("感谢观看")
    assert "slides.mp4" in spoken and "(at0:0" in spoken
    hits = json.loads(run_spotbot(home, "search", "合同编号", "--json").stdout)
    assert [t["page"] for t in hits[0]["tags"] if t["text"].startswith("合同编号")] == [1]


def test_sentiment_judges_a_text_layer_pdf_and_fails_a_scan(tmp_path: Path):
    src, home, out = tmp_path / "src", tmp_path / "home", tmp_path / "out"
    src.mkdir()
    (src / "review.pdf").write_bytes(text_pdf([["The food was great"], ["and the staff were kind"]]))
    (src / "scan.pdf").write_bytes(image_pdf([Image.new("RGB", (40, 20), "white")]))
    (src / "review.txt").write_text("味道很好，服务周到，下次还来。", encoding="utf-8")
    run = run_spotbot(home, "tag", str(src), "--bot", "sentiment", "--out", str(out), "--job-id", "s", "--json")
    assert json.loads(run.stdout)["job"]["counts"]["done"] == 2
    records = {Path(r["asset"]).name: r for r in read_parts(out / "s")}
    assert records["review.pdf"]["text"] == "The food was great\n\nand the staff were kind"
    assert records["review.pdf"]["tags"][0]["label"] in {"positive", "negative"}
    assert "page" not in records["review.pdf"]["tags"][0]  # the document is judged whole
    status = json.loads(run_spotbot(home, "status", "s", "--json").stdout)
    assert [(Path(t["asset"]).name, "no text layer" in t["error"]) for t in status["failed_tasks"]] == [("scan.pdf", True)]


def test_a_limit_fails_only_the_asset_over_it(tmp_path: Path):
    src, home, out = tmp_path / "src", tmp_path / "home", tmp_path / "out"
    src.mkdir()
    (src / "short.pdf").write_bytes(text_pdf([["one"]]))
    (src / "long.pdf").write_bytes(text_pdf([["one"], ["two"], ["three"]]))
    run = run_spotbot(home, "tag", str(src), "--bot", "scene-text", "--out", str(out), "--job-id", "lim", "--json",
                      SPOTBOT_MAX_DOCUMENT_PAGES="2")
    assert json.loads(run.stdout)["job"]["counts"]["done"] == 1
    (failed,) = json.loads(run_spotbot(home, "status", "lim", "--json").stdout)["failed_tasks"]
    assert failed["asset"].endswith("long.pdf") and "SPOTBOT_MAX_DOCUMENT_PAGES" in failed["error"]


def colour(doc: int, page: int) -> tuple[int, int, int]:
    return (doc, page * 40, 200)


def test_resume_after_kill_9_mid_document_tags_each_document_once(tmp_path: Path):
    src, home, out, log = tmp_path / "src", tmp_path / "home", tmp_path / "out", tmp_path / "predicted.log"
    src.mkdir()
    docs, pages = 40, 4
    for doc in range(docs):  # every page a colour of its own, so the log says which page of which document was predicted
        images = [Image.new("RGB", (40, 20), colour(doc, page)) for page in range(1, pages + 1)]
        (src / f"doc-{doc:02d}.pdf").write_bytes(image_pdf(images, page_points=(40 * 72 / 150, 20 * 72 / 150)))
    args = ["tag", str(src), "--bot", COLOUR_BOT, "--out", str(out), "--job-id", "k9", "--workers", "2", "--shard-size", "10"]
    env = spotbot_env(home, SPOTBOT_TEST_PREDICT_LOG=str(log), SPOTBOT_TEST_DELAY="0.03", SPOTBOT_WRITE_BATCH="1")
    process = subprocess.Popen([sys.executable, "-m", "spotbot", *args], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = home / "index.sqlite3"
    wait_for_done(home, 6, timeout=120, poll=0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with sqlite3.connect(db, timeout=30) as conn:
        done_assets = {row[0] for row in conn.execute("SELECT asset FROM tasks WHERE status = 'DONE'")}
    assert 0 < len(done_assets) < docs
    predicted_before = len(log.read_text().splitlines())
    time.sleep(0.5)  # orphaned workers must have died with their parent
    assert len(log.read_text().splitlines()) == predicted_before

    resumed = json.loads(run_spotbot(home, *args, "--json", SPOTBOT_TEST_PREDICT_LOG=str(log)).stdout)
    assert resumed["job"]["status"] == "COMPLETED" and resumed["job"]["counts"]["done"] == docs
    on_resume = log.read_text().splitlines()[predicted_before:]
    done_docs = {int(Path(a).stem.split("-")[1]) for a in done_assets}
    assert not [c for c in on_resume if int(c[1:3], 16) in done_docs], "a document tagged before the kill was tagged again"

    lines = read_parts(out / "k9")
    assert Counter(line["asset"] for line in lines).most_common(1)[0][1] == 1, "a document was written twice"
    for line in lines:
        doc = int(Path(line["asset"]).stem.split("-")[1])
        got = [(t["page"], t["colour"]) for t in line["tags"]]
        assert got == [(p, "#%02x%02x%02x" % colour(doc, p)) for p in range(1, pages + 1)], line["asset"]
