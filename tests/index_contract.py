"""Behaviour every TagIndex adapter must have, as test functions over an `index` fixture.

A test module uses them with `from tests.index_contract import *` and its own `index` fixture
(tests/conftest.py's is SQLite). `pytest tests/index_contract.py` runs them against SQLite.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from spotbot.domain import AssetRef, Job, JobStatus, Tag, TagRecord, TaskStatus
from spotbot.ports import SearchQuery, TaskOutcome
from spotbot.services.planning import add_assets

__all__ = [
    "refs",
    "record",
    "test_add_assets_is_idempotent_and_resets_changed_assets",
    "test_outcomes_count_attempts_and_keep_errors",
    "test_search_finds_chinese_substrings_and_filters",
    "test_retagging_replaces_the_record_and_its_search_text",
    "test_jobs_are_saved_whole_and_listed_newest_first",
    "test_tasks_are_found_by_shard_and_status",
    "test_done_assets_are_those_whose_task_is_done",
    "test_outcomes_of_unknown_assets_are_ignored",
    "test_counts_cover_every_status_and_only_the_job",
    "test_tag_records_round_trip_in_asset_order",
    "test_search_orders_newest_first_limits_and_snips",
    "test_search_matches_case_insensitively_and_in_tag_fields",
    "test_search_words_match_as_whole_substrings",
    "test_tags_keep_the_page_and_time_they_were_found_at",
]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def refs(*names: str, etag: str = "e1") -> list[AssetRef]:
    return [AssetRef(uri=f"/src/{n}", etag=etag, size=10) for n in names]


def record(
    asset: str, tags: list[Tag], text: str | None = None, job: str = "j", created_at: datetime | None = None
) -> TagRecord:
    extra = {"created_at": created_at} if created_at else {}
    return TagRecord(job_id=job, bot="b", model_version="v1", asset=asset, etag="e1", tags=tags, text=text, **extra)


# ported from tests/test_sqlite_index.py


def test_add_assets_is_idempotent_and_resets_changed_assets(index):
    assert add_assets(index, "j", refs("a", "b", "c"), shard_size=2) == 3
    assert add_assets(index, "j", refs("a", "b", "c"), shard_size=2) == 0
    assert index.shards_with_work("j", (TaskStatus.PENDING,)) == [0, 1]
    index.record_outcomes([record("/src/a", [])], [TaskOutcome("/src/a", TaskStatus.DONE)], "j")
    # a new asset goes into a new shard; a changed one is pending again in its old shard
    assert add_assets(index, "j", refs("a", etag="e2") + refs("d"), shard_size=2) == 2
    tasks = {t.asset: t for t in index.tasks_in_shard("j", 0) + index.tasks_in_shard("j", 2)}
    assert tasks["/src/a"].status is TaskStatus.PENDING and tasks["/src/a"].etag == "e2"
    assert tasks["/src/d"].shard == 2
    assert index.counts("j").model_dump() == {"total": 4, "pending": 4, "done": 0, "failed": 0, "skipped": 0}


def test_outcomes_count_attempts_and_keep_errors(index):
    add_assets(index, "j", refs("a", "b"), shard_size=10)
    index.record_outcomes([], [TaskOutcome("/src/a", TaskStatus.FAILED, "corrupt")], "j")
    index.record_outcomes([], [TaskOutcome("/src/a", TaskStatus.FAILED, "still corrupt")], "j")
    (failed,) = index.failed_tasks("j")
    assert (failed.asset, failed.attempts, failed.error) == ("/src/a", 2, "still corrupt")
    assert index.done_assets("j", ["/src/a", "/src/b"]) == set()


def test_search_finds_chinese_substrings_and_filters(index):
    add_assets(index, "j", refs("sign.png", "r1.txt", "r2.txt"), shard_size=10)
    records = [
        record("/src/sign.png", [Tag(label="text", score=0.99, text="欢迎光临本店")]),
        record("/src/r1.txt", [Tag(label="positive", score=0.9)], text="服务很好，价格便宜"),
        record("/src/r2.txt", [Tag(label="negative", score=0.8)], text="价格太贵了"),
    ]
    index.record_outcomes(records, [TaskOutcome(r.asset, TaskStatus.DONE) for r in records], "j")

    def assets(**query) -> list[str]:
        return sorted(hit.record.asset for hit in index.search(SearchQuery(**query)))

    assert assets(text="光临本") == ["/src/sign.png"]  # three characters: the trigram index
    assert assets(text="价格") == ["/src/r1.txt", "/src/r2.txt"]  # two characters: the 1- and 2-character index
    assert assets(text="价格 便宜") == ["/src/r1.txt"]  # every word must match
    assert assets(text="价格", label="negative") == ["/src/r2.txt"]
    assert assets(label="text", bot="b", job_id="j") == ["/src/sign.png"]
    assert assets(job_id="other") == []
    assert assets(text='50%_"') == []  # LIKE and MATCH syntax in a query is taken literally
    hit = index.search(SearchQuery(text="光临"))[0]
    assert "欢迎光临本店" in hit.snippet and hit.record.tags[0].model_extra["text"] == "欢迎光临本店"


def test_retagging_replaces_the_record_and_its_search_text(index):
    add_assets(index, "j", refs("a"), shard_size=10)
    index.record_outcomes([record("/src/a", [Tag(label="old", score=1)], text="旧的文字")], [], "j")
    index.record_outcomes([record("/src/a", [Tag(label="new", score=1)], text="新的文字")], [], "j")
    assert [r.tags[0].label for r in index.tag_records("j")] == ["new"]
    assert index.search(SearchQuery(text="旧的")) == []
    assert index.search(SearchQuery(label="old")) == []
    assert len(index.search(SearchQuery(text="新的文字", label="new"))) == 1


# more of the contract


def test_jobs_are_saved_whole_and_listed_newest_first(index):
    assert index.get_job("nope") is None
    older = Job(job_id="older", bot="b", source="/src", output="/out", workers=2, created_at=T0)
    newer = Job(job_id="newer", bot="b", source="/src", output="/out", workers=1, created_at=T0 + timedelta(hours=1))
    index.save_job(older)
    index.save_job(newer)
    finished = older.model_copy(
        update={"status": JobStatus.PARTIAL, "finished_at": T0 + timedelta(minutes=5), "model_version": "v1"}
    )
    index.save_job(finished)  # saving again replaces the job
    assert index.get_job("older") == finished
    assert [j.job_id for j in index.list_jobs()] == ["newer", "older"]
    assert [j.job_id for j in index.list_jobs(limit=1)] == ["newer"]


def test_tasks_are_found_by_shard_and_status(index):
    add_assets(index, "j", refs("c", "a", "b", "e", "d"), shard_size=2)  # shards by uri (folder neighbours together)
    add_assets(index, "other", refs("x"), shard_size=2)
    assert [t.asset for t in index.tasks_in_shard("j", 0)] == ["/src/a", "/src/b"]
    assert [t.asset for t in index.tasks_in_shard("j", 2)] == ["/src/e"]
    index.record_outcomes(
        [],
        [TaskOutcome("/src/b", TaskStatus.DONE), TaskOutcome("/src/e", TaskStatus.FAILED, "bad")],
        "j",
    )
    assert index.shards_with_work("j", (TaskStatus.PENDING,)) == [0, 1]
    assert index.shards_with_work("j", (TaskStatus.PENDING, TaskStatus.FAILED)) == [0, 1, 2]
    assert index.shards_with_work("j", (TaskStatus.SKIPPED,)) == []
    assert [t.asset for t in index.tasks_in_shard("j", 0, (TaskStatus.PENDING,))] == ["/src/a"]
    (done,) = index.tasks_in_shard("j", 0, (TaskStatus.DONE,))
    assert (done.job_id, done.etag, done.shard, done.attempts, done.error) == ("j", "e1", 0, 1, None)
    assert index.tasks_in_shard("j", 7) == []


def test_done_assets_are_those_whose_task_is_done(index):
    add_assets(index, "j", refs("a", "b", "c"), shard_size=10)
    index.record_outcomes(
        [record("/src/a", []), record("/src/b", [])],
        [TaskOutcome("/src/a", TaskStatus.DONE), TaskOutcome("/src/b", TaskStatus.SKIPPED)],
        "j",
    )
    assert index.done_assets("j", iter(["/src/a", "/src/b", "/src/c", "/src/unknown"])) == {"/src/a", "/src/b"}  # SKIPPED: reused, with its record
    assert index.done_assets("other", ["/src/a"]) == set()


def test_outcomes_of_unknown_assets_are_ignored(index):
    add_assets(index, "j", refs("a"), shard_size=10)
    index.record_outcomes([], [TaskOutcome("/src/zzz", TaskStatus.DONE)], "j")
    assert index.counts("j").model_dump() == {"total": 1, "pending": 1, "done": 0, "failed": 0, "skipped": 0}


def test_counts_cover_every_status_and_only_the_job(index):
    assert index.counts("j").model_dump() == {"total": 0, "pending": 0, "done": 0, "failed": 0, "skipped": 0}
    add_assets(index, "j", refs("a", "b", "c", "d", "e"), shard_size=2)
    add_assets(index, "other", refs("a", "b"), shard_size=2)
    index.record_outcomes(
        [],
        [
            TaskOutcome("/src/a", TaskStatus.DONE),
            TaskOutcome("/src/b", TaskStatus.DONE),
            TaskOutcome("/src/c", TaskStatus.FAILED, "x"),
            TaskOutcome("/src/d", TaskStatus.SKIPPED),
        ],
        "j",
    )
    assert index.counts("j").model_dump() == {"total": 5, "pending": 1, "done": 2, "failed": 1, "skipped": 1}
    assert index.counts("other").total == 2


def test_tag_records_round_trip_in_asset_order(index):
    records = [
        record("/src/b.png", [Tag(label="text", score=0.5, text="出口", box=[[1, 2], [3, 4]])], created_at=T0),
        record("/src/a.txt", [Tag(label="positive", score=0.75)], text="很好", created_at=T0),
        record("/src/c.txt", [], created_at=T0),
    ]
    index.record_outcomes(records, [], "j")
    index.record_outcomes([record("/src/a.txt", [], job="other")], [], "other")
    assert list(index.tag_records("j")) == sorted(records, key=lambda r: r.asset)
    assert [r.asset for r in index.tag_records("other")] == ["/src/a.txt"]
    assert list(index.tag_records("none")) == []


def test_search_orders_newest_first_limits_and_snips(index):
    long_text = "前言" * 40 + "关键字在这里" + "后记" * 40
    records = [
        record("/src/old.txt", [Tag(label="x", score=1)], text="同样的词", created_at=T0),
        record("/src/new-b.txt", [Tag(label="x", score=1)], text="同样的词", created_at=T0 + timedelta(days=1)),
        record("/src/new-a.txt", [Tag(label="x", score=1)], text="同样的词", created_at=T0 + timedelta(days=1)),
        record("/src/long.txt", [Tag(label="y", score=1)], text=long_text, created_at=T0),
    ]
    index.record_outcomes(records, [], "j")
    hits = index.search(SearchQuery(text="同样", limit=10))
    assert [h.record.asset for h in hits] == ["/src/new-a.txt", "/src/new-b.txt", "/src/old.txt"]
    assert [h.record.asset for h in index.search(SearchQuery(label="x", limit=2))] == ["/src/new-a.txt", "/src/new-b.txt"]
    (hit,) = index.search(SearchQuery(text="关键字"))
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…") and "关键字在这里" in hit.snippet
    assert len(hit.snippet) == 62
    assert len(index.search(SearchQuery())) == 4


def test_search_matches_case_insensitively_and_in_tag_fields(index):
    records = [
        record("/src/sign.png", [Tag(label="text", score=1, text="EXIT Only")]),
        record("/src/r.txt", [Tag(label="positive", score=1)], text="The exit was easy"),
        record("/src/s.txt", [Tag(label="negative", score=1)], text="no way out"),
    ]
    index.record_outcomes(records, [], "j")

    def assets(text: str) -> list[str]:
        return sorted(hit.record.asset for hit in index.search(SearchQuery(text=text)))

    assert assets("exit") == ["/src/r.txt", "/src/sign.png"]
    assert assets("Ex") == ["/src/r.txt", "/src/sign.png"]
    assert assets("onl xit") == ["/src/sign.png"]  # every word, anywhere
    assert assets("exit only") == ["/src/sign.png"]
    assert assets("negative") == ["/src/s.txt"]  # labels are searchable text
    assert assets("way out") == ["/src/s.txt"]
    assert assets("t ox") == []


def test_search_words_match_as_whole_substrings(index):
    records = [
        record("/src/yes.txt", [], text="东西价格便宜"),
        record("/src/no.txt", [], text="价格便利，格便宜"),  # every trigram of 价格便宜, but not in a row
    ]
    index.record_outcomes(records, [], "j")
    assert [hit.record.asset for hit in index.search(SearchQuery(text="价格便宜"))] == ["/src/yes.txt"]


def test_tags_keep_the_page_and_time_they_were_found_at(index):
    """Documents' and videos' tags carry `page` and `t`: search (and so GET /tags) gives them back."""
    add_assets(index, "j", refs("contract.pdf", "talk.mp4"), shard_size=10)
    records = [
        record("/src/contract.pdf", [Tag(label="text", score=1.0, text="合同编号 HT-1", box=[[0, 0], [9, 0], [9, 9], [0, 9]], page=3)]),
        record("/src/talk.mp4", [Tag(label="text", score=0.9, text="感谢观看", t=73.2)]),
    ]
    index.record_outcomes(records, [TaskOutcome(r.asset, TaskStatus.DONE) for r in records], "j")
    (document,) = index.search(SearchQuery(text="合同编号"))
    assert document.record.tags[0].model_extra == {"text": "合同编号 HT-1", "box": [[0, 0], [9, 0], [9, 9], [0, 9]], "page": 3}
    (video,) = index.search(SearchQuery(text="感谢观看"))
    assert video.record.tags[0].model_extra["t"] == 73.2
