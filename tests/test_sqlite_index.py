from spotbot.domain import AssetRef, Tag, TagRecord, TaskStatus
from spotbot.ports import SearchQuery, TaskOutcome


def refs(*names: str, etag: str = "e1") -> list[AssetRef]:
    return [AssetRef(uri=f"/src/{n}", etag=etag, size=10) for n in names]


def record(asset: str, tags: list[Tag], text: str | None = None, job: str = "j") -> TagRecord:
    return TagRecord(job_id=job, bot="b", model_version="v1", asset=asset, etag="e1", tags=tags, text=text)


def test_add_assets_is_idempotent_and_resets_changed_assets(index):
    assert index.add_assets("j", refs("a", "b", "c"), shard_size=2) == 3
    assert index.add_assets("j", refs("a", "b", "c"), shard_size=2) == 0
    assert index.shards_with_work("j", (TaskStatus.PENDING,)) == [0, 1]
    index.record_outcomes([record("/src/a", [])], [TaskOutcome("/src/a", TaskStatus.DONE)], "j")
    # a new asset goes into a new shard; a changed one is pending again in its old shard
    assert index.add_assets("j", refs("a", etag="e2") + refs("d"), shard_size=2) == 2
    tasks = {t.asset: t for t in index.tasks_in_shard("j", 0) + index.tasks_in_shard("j", 2)}
    assert tasks["/src/a"].status is TaskStatus.PENDING and tasks["/src/a"].etag == "e2"
    assert tasks["/src/d"].shard == 2
    assert index.counts("j").model_dump() == {"total": 4, "pending": 4, "done": 0, "failed": 0, "skipped": 0}


def test_outcomes_count_attempts_and_keep_errors(index):
    index.add_assets("j", refs("a", "b"), shard_size=10)
    index.record_outcomes([], [TaskOutcome("/src/a", TaskStatus.FAILED, "corrupt")], "j")
    index.record_outcomes([], [TaskOutcome("/src/a", TaskStatus.FAILED, "still corrupt")], "j")
    (failed,) = index.failed_tasks("j")
    assert (failed.asset, failed.attempts, failed.error) == ("/src/a", 2, "still corrupt")
    assert index.done_assets("j", ["/src/a", "/src/b"]) == set()


def test_search_finds_chinese_substrings_and_filters(index):
    index.add_assets("j", refs("sign.png", "r1.txt", "r2.txt"), shard_size=10)
    records = [
        record("/src/sign.png", [Tag(label="text", score=0.99, text="欢迎光临本店")]),
        record("/src/r1.txt", [Tag(label="positive", score=0.9)], text="服务很好，价格便宜"),
        record("/src/r2.txt", [Tag(label="negative", score=0.8)], text="价格太贵了"),
    ]
    index.record_outcomes(records, [TaskOutcome(r.asset, TaskStatus.DONE) for r in records], "j")

    def assets(**query) -> list[str]:
        return sorted(hit.record.asset for hit in index.search(SearchQuery(**query)))

    assert assets(text="光临本") == ["/src/sign.png"]  # three characters: the trigram index
    assert assets(text="价格") == ["/src/r1.txt", "/src/r2.txt"]  # two characters: a substring scan
    assert assets(text="价格 便宜") == ["/src/r1.txt"]  # every word must match
    assert assets(text="价格", label="negative") == ["/src/r2.txt"]
    assert assets(label="text", bot="b", job_id="j") == ["/src/sign.png"]
    assert assets(job_id="other") == []
    assert assets(text='50%_"') == []  # LIKE and MATCH syntax in a query is taken literally
    hit = index.search(SearchQuery(text="光临"))[0]
    assert "欢迎光临本店" in hit.snippet and hit.record.tags[0].model_extra["text"] == "欢迎光临本店"


def test_retagging_replaces_the_record_and_its_search_text(index):
    index.add_assets("j", refs("a"), shard_size=10)
    index.record_outcomes([record("/src/a", [Tag(label="old", score=1)], text="旧的文字")], [], "j")
    index.record_outcomes([record("/src/a", [Tag(label="new", score=1)], text="新的文字")], [], "j")
    assert [r.tags[0].label for r in index.tag_records("j")] == ["new"]
    assert index.search(SearchQuery(text="旧的")) == []
    assert index.search(SearchQuery(label="old")) == []
    assert len(index.search(SearchQuery(text="新的文字", label="new"))) == 1
