import pytest

from spotbot.domain import (
    AssetRef,
    JobCounts,
    JobStatus,
    Tag,
    TagRecord,
    auto_shard_size,
    final_status,
    plan_shards,
    task_id,
    validate_job_id,
)


def refs(n: int) -> list[AssetRef]:
    return [AssetRef(uri=f"/a/{i}.txt", etag="e", size=1) for i in range(n)]


def test_plan_shards_deals_assets_in_order_into_numbered_shards():
    planned = plan_shards(refs(7), shard_size=3, first_shard=2)
    assert [shard for shard, _ in planned] == [2, 2, 2, 3, 3, 3, 4]
    assert [a.uri for _, a in planned] == [f"/a/{i}.txt" for i in range(7)]
    with pytest.raises(ValueError, match="at least 1"):
        plan_shards(refs(1), shard_size=0)


def test_auto_shard_size_keeps_every_worker_busy_and_caps_size():
    assert auto_shard_size(20, workers=2) == 3  # 7 shards for 2 workers
    assert auto_shard_size(1, workers=8) == 1
    assert auto_shard_size(10_000_000, workers=2) == 1000


def test_task_id_is_stable_and_distinct():
    assert task_id("j", "/a") == task_id("j", "/a")
    assert task_id("j", "/a") != task_id("j2", "/a") != task_id("j", "/b")


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        (JobCounts(total=3, done=3), JobStatus.COMPLETED),
        (JobCounts(total=3, done=2, failed=1), JobStatus.PARTIAL),
        (JobCounts(total=2, failed=2), JobStatus.FAILED),
        (JobCounts(total=2, done=1, pending=1), JobStatus.PARTIAL),
        (JobCounts(), JobStatus.COMPLETED),
    ],
)
def test_final_status(counts, status):
    assert final_status(counts) is status


def test_job_ids_are_checked():
    assert validate_job_id("nightly-2026_11") == "nightly-2026_11"
    for bad in ("", "-x", "a b", "x" * 81, "ä"):
        with pytest.raises(ValueError, match="not valid"):
            validate_job_id(bad)


def test_searchable_text_has_labels_bot_fields_and_text():
    record = TagRecord(
        job_id="j",
        bot="b",
        model_version="1",
        asset="/a",
        etag="e",
        tags=[Tag(label="text", score=0.9, text="欢迎光临", box=[[0, 0]])],
        text="正文",
    )
    assert record.searchable_text().split("\n") == ["text", "欢迎光临", "正文"]
