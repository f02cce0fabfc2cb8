"""Incremental jobs (issue 12): a new job reuses an earlier job's records of unchanged assets."""

from __future__ import annotations

import json
import os
from pathlib import Path

from spotbot.adapters.sqlite.index import SQLiteTagIndex
from spotbot.domain import Tag, TagRecord, Task, reusable_for, reuse_id
from tests.conftest import read_parts, run_spotbot

LENGTH = "tests.support_bots:LengthBot"


def write_texts(folder: Path, names: list[str], body: str = "some words here") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(f"{name}\n{body}", encoding="utf-8")


def predicted(log: Path) -> list[str]:
    return sorted(log.read_text(encoding="utf-8").splitlines()) if log.exists() else []


def tag(home: Path, src: Path, out: Path, job: str, log: Path, *extra: str) -> dict:
    args = ("tag", str(src), "--bot", LENGTH, "--out", str(out), "--job-id", job, "--json", "--workers", "2", *extra)
    return json.loads(run_spotbot(home, *args, SPOTBOT_TEST_PREDICT_LOG=str(log)).stdout)


def test_reuse_id_names_bot_model_asset_and_etag():
    base = reuse_id("sentiment", "v1", "s3://b/a.txt", "e1")
    assert base == reuse_id("sentiment", "v1", "s3://b/a.txt", "e1")
    others = {reuse_id("x", "v1", "s3://b/a.txt", "e1"), reuse_id("sentiment", "v2", "s3://b/a.txt", "e1"),
              reuse_id("sentiment", "v1", "s3://b/b.txt", "e1"), reuse_id("sentiment", "v1", "s3://b/a.txt", "e2")}
    assert base not in others and len(others) == 4


def test_reusable_for_matches_etag_bot_and_version_and_names_the_first_job():
    record = TagRecord(job_id="j1", bot="b", model_version="v1", asset="a", etag="e1", tags=[Tag(label="x", score=1)])
    chained = record.model_copy(update={"job_id": "j2", "reused_from": "j1"})
    task = Task(job_id="j3", asset="a", etag="e1", shard=0)
    assert reusable_for([task], {"a": record}, bot="b", model_version="v1")["a"].reused_from == "j1"
    assert reusable_for([task], {"a": chained}, bot="b", model_version="v1")["a"].reused_from == "j1"
    assert reusable_for([task], {"a": record}, bot="b", model_version="v2") == {}
    assert reusable_for([task.model_copy(update={"etag": "e2"})], {"a": record}, bot="b", model_version="v1") == {}
    assert reusable_for([task.model_copy(update={"job_id": "j1"})], {"a": record}, bot="b", model_version="v1") == {}


def test_sqlite_reusable_records_finds_the_newest_matching_record_in_bulk(tmp_path: Path):
    index = SQLiteTagIndex(tmp_path / "index.sqlite3")
    try:
        records = [
            TagRecord(job_id=job, bot="b", model_version=v, asset=f"a{i}", etag=etag, tags=[Tag(label=job, score=1)])
            for i in range(700)
            for job, v, etag in (("old", "v1", "e"), ("new", "v1", "e"), ("other", "v2", "e"), ("stale", "v1", "x"))
        ]
        index.record_outcomes(records, [], "old")
        found = index.reusable_records("b", "v1", [(f"a{i}", "e") for i in range(700)] + [("missing", "e")])
        assert len(found) == 700 and {r.job_id for r in found.values()} == {"new"}
        assert index.reusable_records("b", "v3", [("a1", "e")]) == {}
    finally:
        index.close()


def test_a_second_job_predicts_only_new_and_changed_assets_and_its_output_is_whole(tmp_path: Path):
    home, src, out, log = tmp_path / "home", tmp_path / "src", tmp_path / "out", tmp_path / "predicted.log"
    write_texts(src, [f"r{i:02d}.txt" for i in range(12)])
    first = tag(home, src, out, "first", log)
    assert first["run"]["reused"] == 0 and len(predicted(log)) == 12

    log.unlink()
    write_texts(src, ["new-a.txt", "new-b.txt"])
    changed = src / "r03.txt"
    changed.write_text("r03.txt\na much longer text than it was before", encoding="utf-8")
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))  # a new etag for sure
    second = tag(home, src, out, "second", log)

    assert predicted(log) == ["new-a.txt", "new-b.txt", "r03.txt"]
    assert second["run"]["reused"] == 11
    counts = second["job"]["counts"]
    assert counts == {"total": 14, "pending": 0, "done": 3, "failed": 0, "skipped": 11}
    assert second["job"]["status"] == "COMPLETED"
    lines = {Path(r["asset"]).name: r for r in read_parts(out / "second")}
    assert len(lines) == 14 and len(read_parts(out / "second")) == 14
    assert {n for n, r in lines.items() if r.get("reused_from") == "first"} == {f"r{i:02d}.txt" for i in range(12)} - {"r03.txt"}
    assert lines["r03.txt"]["tags"][0]["label"] == "long" and "reused_from" not in lines["r03.txt"]
    assert all(r["job_id"] == "second" for r in lines.values())

    index = SQLiteTagIndex(home / "index.sqlite3")
    try:
        indexed = {Path(r.asset).name: r for r in index.tag_records("second")}
    finally:
        index.close()
    assert set(indexed) == set(lines) and indexed["r00.txt"].reused_from == "first"

    status = run_spotbot(home, "status", "second").stdout
    assert "reused 11" in status

    log.unlink()
    third = tag(home, src, out, "third", log)  # reusing a reused record names the job that predicted it
    assert predicted(log) == [] and third["run"]["reused"] == 14
    assert {r["reused_from"] for r in read_parts(out / "third") if Path(r["asset"]).name == "r00.txt"} == {"first"}


def test_full_retags_everything(tmp_path: Path):
    home, src, out, log = tmp_path / "home", tmp_path / "src", tmp_path / "out", tmp_path / "predicted.log"
    write_texts(src, [f"r{i}.txt" for i in range(5)])
    tag(home, src, out, "first", log)
    log.unlink()
    again = tag(home, src, out, "again", log, "--full")
    assert len(predicted(log)) == 5 and again["run"]["reused"] == 0
    assert again["job"]["counts"]["done"] == 5 and again["job"]["counts"]["skipped"] == 0


def test_resuming_a_job_keeps_its_reused_lines(tmp_path: Path):
    home, src, out, log = tmp_path / "home", tmp_path / "src", tmp_path / "out", tmp_path / "predicted.log"
    write_texts(src, [f"r{i}.txt" for i in range(6)])
    tag(home, src, out, "first", log)
    write_texts(src, ["extra.txt"])
    tag(home, src, out, "second", log)
    log.unlink()
    resumed = tag(home, src, out, "second", log)  # the same job again: nothing to do, nothing lost
    assert predicted(log) == []
    assert len(read_parts(out / "second")) == 7 and resumed["job"]["counts"]["skipped"] == 6


def test_report_deleted_lists_gone_assets_and_keeps_their_tags(tmp_path: Path):
    home, src, out, log = tmp_path / "home", tmp_path / "src", tmp_path / "out", tmp_path / "predicted.log"
    write_texts(src, ["keep.txt", "gone.txt"])
    tag(home, src, out, "first", log)
    (src / "gone.txt").unlink()
    second = tag(home, src, out, "second", log, "--report-deleted")
    assert second["run"]["deleted"] == [str(src.resolve() / "gone.txt")]
    plain = tag(home, src, out, "third", log)
    assert plain["run"]["deleted"] == []
    index = SQLiteTagIndex(home / "index.sqlite3")
    try:
        assert [Path(r.asset).name for r in index.tag_records("first")] == ["gone.txt", "keep.txt"]
    finally:
        index.close()


def test_forget_deleted_drops_the_gone_assets_earlier_tags_from_search(tmp_path: Path):
    home, src, out, log = tmp_path / "home", tmp_path / "src", tmp_path / "out", tmp_path / "predicted.log"
    write_texts(src, ["keep.txt", "gone.txt"], body="独特的词语")
    tag(home, src, out, "first", log)
    tag(home, src, out, "second", log, "--full")  # two earlier jobs hold gone.txt
    (src / "gone.txt").unlink()
    third = tag(home, src, out, "third", log, "--forget-deleted")
    assert third["run"]["deleted"] == [str(src.resolve() / "gone.txt")] and third["run"]["forgotten"] == 2
    hits = json.loads(run_spotbot(home, "search", "独特", "--json").stdout)
    assert {Path(h["asset"]).name for h in hits} == {"keep.txt"} and len(hits) == 3  # keep.txt in each of the three jobs
    assert len(read_parts(out / "first")) == 2  # the earlier jobs' JSON Lines are their history: untouched
    status = json.loads(run_spotbot(home, "status", "first", "--json").stdout)
    assert status["counts"]["done"] == 2  # and so are their tasks


def test_a_new_model_version_does_not_reuse(tmp_path: Path):
    index = SQLiteTagIndex(tmp_path / "index.sqlite3")
    try:
        record = TagRecord(job_id="j1", bot="b", model_version="v1", asset="a", etag="e", tags=[])
        index.record_outcomes([record], [], "j1")
        assert index.reusable_records("b", "v2", [("a", "e")]) == {}
        assert set(index.reusable_records("b", "v1", [("a", "e")])) == {"a"}
    finally:
        index.close()
