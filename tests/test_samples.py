"""The bundled samples through the real bots and the real `spotbot` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CURRENT_SENTIMENT, SAMPLES, run_spotbot
from tests.test_pipeline import assert_outputs_agree


@pytest.fixture(scope="module")
def tagged(tmp_path_factory) -> tuple[Path, Path]:
    """Tags the samples once with each built-in bot: (home, out)."""
    root = tmp_path_factory.mktemp("samples")
    home, out = root / "home", root / "out"
    run_spotbot(home, "tag", str(SAMPLES), "--bot", "scene-text", "--out", str(out), "--job-id", "ocr")
    run_spotbot(home, "tag", str(SAMPLES / "reviews"), "--bot", "sentiment", "--out", str(out), "--job-id", "reviews")
    return home, out


def by_relative_path(records: list[dict]) -> dict[str, dict]:
    return {Path(r["asset"]).relative_to(SAMPLES).as_posix(): r for r in records}


def test_scene_text_reads_the_known_strings(tagged, expected):
    home, out = tagged
    records = by_relative_path(assert_outputs_agree(home, out, "ocr"))
    media = expected["documents"].keys() | expected["video"].keys()  # pages and frames: tests/test_documents_cli.py
    assert records.keys() == expected["scene-text"].keys() | expected["photos"].keys() | media
    for path, pages in expected["documents"].items():
        for page, strings in pages.items():
            read = "".join(t["text"] for t in records[path]["tags"] if t["page"] == int(page)).replace(" ", "")
            assert all(s in read for s in strings), f"{path} page {page}: read {read}"
    for path, slides in expected["video"].items():
        read = "".join(t["text"] for t in records[path]["tags"]).replace(" ", "")
        assert all(s in read for slide in slides for s in slide["texts"]), f"{path}: read {read}"
    for path, strings in expected["scene-text"].items():
        lines = [tag["text"] for tag in records[path]["tags"]]
        read = "".join(lines).replace(" ", "")
        missing = [s for s in strings if s.replace(" ", "") not in read]
        assert not missing, f"{path}: OCR read {lines}, missing {missing}"
        for tag in records[path]["tags"]:
            assert tag["label"] == "text" and 0.5 <= tag["score"] <= 1.0
            assert len(tag["box"]) == 4 and all(len(point) == 2 for point in tag["box"])
    for path in expected["photos"]:
        assert records[path]["tags"] == [], f"{path} is a photo with no text"


def test_sentiment_gets_the_known_labels(tagged, expected):
    home, out = tagged
    records = by_relative_path(assert_outputs_agree(home, out, "reviews"))
    got = {path: record["tags"][0]["label"] for path, record in records.items()}
    assert got == expected["sentiment"]
    assert all(record["model_version"] == CURRENT_SENTIMENT for record in records.values())  # the current packaged version


def test_search_finds_ocr_text_and_review_text(tagged, expected):
    home, _ = tagged
    hits = json.loads(run_spotbot(home, "search", "欢迎光临", "--json").stdout)
    assert [Path(h["asset"]).name for h in hits] == ["poster.png"]
    negative = json.loads(run_spotbot(home, "search", "--label", "negative", "--job", "reviews", "-n", "100", "--json").stdout)
    expected_negative = {p for p, label in expected["sentiment"].items() if label == "negative"}
    assert {Path(h["asset"]).relative_to(SAMPLES).as_posix() for h in negative} == expected_negative
    some_review = (SAMPLES / sorted(expected_negative)[0]).read_text(encoding="utf-8").strip()
    words = some_review[2:6]
    found = json.loads(run_spotbot(home, "search", words, "--bot", "sentiment", "--json").stdout)
    assert any(h["text"] == some_review for h in found)


def test_jobs_status_and_bots_commands(tagged):
    home, out = tagged
    jobs = json.loads(run_spotbot(home, "jobs", "--json").stdout)
    assert {j["job_id"]: j["status"] for j in jobs} == {"ocr": "COMPLETED", "reviews": "COMPLETED"}
    status = run_spotbot(home, "status", "ocr").stdout
    assert "COMPLETED" in status and "done 15" in status  # 13 images, the PDF and the video
    summary = json.loads((out / "ocr" / "_job.json").read_text())
    assert summary["counts"]["done"] == 15 and summary["status"] == "COMPLETED"
    bots = {b["name"]: b for b in json.loads(run_spotbot(home, "bots", "--json").stdout)}
    assert bots["scene-text"]["file_types"][:2] == [".jpg", ".jpeg"] and bots["sentiment"]["file_types"] == [".txt", ".pdf"]
    assert bots["sentiment"]["model_version"] == CURRENT_SENTIMENT and bots["scene-text"]["runtime"] == "in-process"
