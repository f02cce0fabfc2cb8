"""Review decisions: the domain rules, the SQLite review store, the queue, accuracy and the training manifest."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from spotbot.adapters.sqlite.reviews import SQLiteReviewStore
from spotbot.domain import AssetRef, BadInputError, Job, NotFoundError, Tag, TagRecord, TaskStatus, task_id, utc_now
from spotbot.domain.reviews import Decision, ReviewAction, decide, latest, manifest_lines, review_tag_index, reviewed_accuracy
from spotbot.ports import TaskOutcome
from spotbot.services.planning import add_assets
from spotbot.services.reviews import ReviewService, ReviewSettings, write_manifest
from tests.conftest import run_spotbot

T0 = utc_now()


def D(tag_index: int, action: str, **fields) -> Decision:
    return Decision.parse({"tag_index": tag_index, "action": action, **fields})


def text_record(asset: str, label: str, score: float, job: str = "j1", text: str = "一段文字") -> TagRecord:
    return TagRecord(job_id=job, bot="sentiment", model_version="v1", asset=asset, etag="e", tags=[Tag(label=label, score=score)], text=text)


def ocr_record(asset: str, lines: list[tuple[str, float]], job: str = "ocr") -> TagRecord:
    tags = [Tag(label="text", score=s, text=t, box=[[0, 0], [10, 0], [10, 5], [0, 5]]) for t, s in lines]
    return TagRecord(job_id=job, bot="scene-text", model_version="ocr-1", asset=asset, etag="e", tags=tags)


def put(index, records: list[TagRecord]) -> None:
    for job_id in {r.job_id for r in records}:
        mine = [r for r in records if r.job_id == job_id]
        index.save_job(Job(job_id=job_id, bot=mine[0].bot, source="/src", output="/out", workers=1))
        add_assets(index, job_id, [AssetRef(uri=r.asset, etag=r.etag, size=1) for r in mine], shard_size=1000)
        index.record_outcomes(mine, [TaskOutcome(r.asset, TaskStatus.DONE) for r in mine], job_id)


@pytest.fixture
def store(index, settings):
    db = SQLiteReviewStore(settings.index_path)
    yield db
    db.close()


# the domain


def test_the_tag_under_review_is_the_least_sure_line_the_top_make_model_or_the_top_tag():
    assert review_tag_index(ocr_record("a", [("甲", 0.9), ("乙", 0.4), ("丙", 0.7)]).tags) == 1
    car = [Tag(label="vehicle", score=0.99), Tag(label="body:coupe", score=0.8),
           Tag(label="Boxster", score=0.3, kind="make_model"), Tag(label="Cayman", score=0.5, kind="make_model")]
    assert review_tag_index(car) == 3
    assert review_tag_index([Tag(label="negative", score=0.2), Tag(label="positive", score=0.8)]) == 1
    assert review_tag_index([]) is None


def test_a_decision_records_before_and_after_and_is_checked():
    record = ocr_record("/src/a.png", [("欢迎光临", 0.6)])
    fixed = decide(record, D(0, "fix_text", text="欢迎光临！"), "ann")
    assert fixed.before["text"] == "欢迎光临" and fixed.after["text"] == "欢迎光临！" and fixed.after["box"] == fixed.before["box"]
    assert fixed.record_id == task_id("ocr", "/src/a.png") and fixed.reviewer == "ann"
    with pytest.raises(BadInputError, match="tag 3 does not exist"):
        decide(record, D(3, "accept"), "ann")
    with pytest.raises(BadInputError, match="action: Input should be 'accept', 'correct', 'fix_text' or 'reject'"):
        D(0, "approve")
    with pytest.raises(BadInputError, match="tag_index: Input should be greater than or equal to 0"):
        D(-1, "accept")
    with pytest.raises(BadInputError, match="reviewer is empty"):
        decide(record, D(0, "accept"), "  ")
    with pytest.raises(BadInputError, match="the text is unchanged"):
        decide(record, D(0, "fix_text", text="欢迎光临"), "ann")
    with pytest.raises(BadInputError, match="no text to fix"):
        decide(text_record("/src/b.txt", "positive", 0.5), D(0, "fix_text", text="x"), "ann")
    with pytest.raises(BadInputError, match="label: String should have at most 200 characters"):
        D(0, "correct", label="x" * 201)
    with pytest.raises(BadInputError, match="label is empty"):
        decide(record, D(0, "correct", label="  "), "ann")


def test_the_last_decision_on_a_tag_wins_for_accuracy_and_the_manifest():
    a, b = text_record("/d/a.txt", "positive", 0.5), text_record("/d/b.txt", "negative", 0.9)
    history = [
        decide(a, D(0, "correct", label="food", reason="low_confidence"), "ann", now=T0),
        decide(a, D(0, "correct", label="tech", reason="low_confidence"), "bob", now=T0 + timedelta(seconds=1)),
        decide(b, D(0, "accept", reason="sample"), "ann", now=T0 + timedelta(seconds=2)),
    ]
    assert [r.after["label"] for r in latest(history) if r.after] == ["tech"]
    (row,) = reviewed_accuracy(history)
    assert (row.sample_reviewed, row.sample_right, row.queue_reviewed, row.queue_right) == (1, 1, 1, 0)
    assert row.sample_accuracy == 1.0 and row.queue_accuracy == 0.0
    lines = manifest_lines(history, "sentiment")
    assert [(l["source-ref"], l["label"], l["sentiment"]) for l in lines] == [("/d/a.txt", "tech", 1), ("/d/b.txt", "negative", 0)]
    assert lines[0]["sentiment-metadata"]["class-name"] == "tech" and lines[0]["sentiment-metadata"]["reviewer"] == "bob"
    withdrawn = history + [decide(a, D(0, "reject"), "cy", now=T0 + timedelta(seconds=3))]
    assert [l["source-ref"] for l in manifest_lines(withdrawn, "sentiment")] == ["/d/b.txt"]


# the store and the service


def test_the_store_keeps_every_decision_and_finds_records_by_id(index, store):
    put(index, [text_record("/src/a.txt", "positive", 0.5)])
    rid = task_id("j1", "/src/a.txt")
    assert store.record(rid).tags[0].label == "positive"
    assert store.record("0" * 32) is None
    service = ReviewService(store)
    service.decide(rid, D(0, "correct", label="food"), "ann")
    service.decide(rid, D(0, ReviewAction.ACCEPT), "bob")
    assert [(r.reviewer, r.action) for r in service.history(rid)] == [("ann", "correct"), ("bob", "accept")]
    assert [r.action for r in store.reviews(bot="scene-text")] == []
    with pytest.raises(NotFoundError, match="no tag record"):
        service.decide("f" * 32, D(0, "accept"), "ann")
    again = SQLiteReviewStore(store.db.execute("PRAGMA database_list").fetchone()[2])  # reopened: decisions persist
    assert len(again.reviews(record_id=rid)) == 2
    again.close()


def test_the_queue_is_the_unsure_tags_below_each_bots_threshold_plus_a_sample_and_skips_reviewed(index, store, monkeypatch):
    records = [text_record(f"/src/{i:02}.txt", "positive", score) for i, score in enumerate([0.3, 0.55, 0.65, 0.9, 0.95, 0.99])]
    records.append(ocr_record("/src/sign.png", [("人民路", 0.99), ("RENMIN RD", 0.5)]))
    put(index, records)
    service = ReviewService(store, ReviewSettings(thresholds={"sentiment": 0.6}, sample_share=0.5))
    queue = service.queue("sentiment", limit=4)
    low = {item.record.asset for item in queue if item.reason == "low_confidence"}
    sampled = {item.record.asset for item in queue if item.reason == "sample"}
    assert low == {"/src/00.txt", "/src/01.txt"}
    assert len(sampled) == 2 and sampled <= {"/src/02.txt", "/src/03.txt", "/src/04.txt", "/src/05.txt"}
    (ocr,) = service.queue("scene-text", limit=1)
    assert (ocr.tag_index, ocr.reason) == (1, "low_confidence")  # the unsure line of the sign

    service.decide(task_id("j1", "/src/00.txt"), D(0, "accept", reason="low_confidence"), "ann")
    assert "/src/00.txt" not in {item.record.asset for item in service.queue("sentiment", limit=4)}
    assert {item.record.asset for item in service.queue("sentiment", limit=4, threshold=0.7)} >= {"/src/01.txt", "/src/02.txt"}
    with pytest.raises(BadInputError, match="not between 0 and 1"):
        service.queue("sentiment", threshold=1.5)

    monkeypatch.setenv("SPOTBOT_REVIEW_THRESHOLDS", '{"sentiment": 0.1}')
    assert ReviewService(store).threshold("sentiment") == 0.1 and ReviewService(store).threshold("car-model") == 0.8


def test_the_sample_is_random_but_repeatable(index, store):
    put(index, [text_record(f"/src/{i:03}.txt", "positive", 0.9) for i in range(200)])
    first, again, other = store.sample("sentiment", 10, 1), store.sample("sentiment", 10, 1), store.sample("sentiment", 10, 2)
    assert len(first) == 10 and [r.asset for r in first] == [r.asset for r in again] != [r.asset for r in other]
    assert store.sample("car-model", 5, 1) == []


def test_low_scoring_pages_through_every_match(index, store):
    put(index, [text_record(f"/src/{i:04}.txt", "positive", 0.1 if i % 3 == 0 else 0.9) for i in range(700)])
    found = [r.asset for r in store.low_scoring("sentiment", 0.5)]
    assert len(found) == len(set(found)) == 234


def test_export_writes_a_manifest_that_training_reads(index, store, tmp_path, settings):
    from training.datasets import load_examples

    data = tmp_path / "data"
    data.mkdir()
    records = []
    for i in range(4):
        (data / f"{i}.txt").write_text("文字", encoding="utf-8")
        records.append(text_record(str(data / f"{i}.txt"), "positive", 0.5))
    put(index, records)
    service = ReviewService(store)
    with pytest.raises(NotFoundError, match="no accepted or corrected sentiment tags"):
        service.manifest("sentiment")
    for i, record in enumerate(records):
        service.decide(task_id("j1", record.asset), D(0, "accept" if i % 2 else "correct", label="negative" if i % 2 == 0 else None), "ann")
    out = tmp_path / "labels.manifest"
    assert write_manifest(service.manifest("sentiment"), out) == 4
    examples = load_examples(str(out), (".txt",), settings)
    assert sorted((Path(e.source).name, e.label) for e in examples) == [
        ("0.txt", "negative"), ("1.txt", "positive"), ("2.txt", "negative"), ("3.txt", "positive")
    ]


def test_spotbot_reviews_export_says_when_there_is_nothing(tmp_path):
    result = run_spotbot(tmp_path / "home", "reviews", "export", "--bot", "car-model", "--out", str(tmp_path / "x.manifest"), check=False)
    assert result.returncode == 2 and "no accepted or corrected car-model tags" in result.stderr
    assert not (tmp_path / "x.manifest").exists()
    bad = run_spotbot(tmp_path / "home", "ui", "--threshold", "car-model", check=False)
    assert bad.returncode == 2 and "is not BOT=NUMBER" in bad.stderr
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = run_spotbot(tmp_path / "home", "ui", "--port", str(taken.getsockname()[1]), check=False)
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1:" in busy.stderr
