import pytest

from spotbot.domain import (
    AssetRef,
    JobCounts,
    JobStatus,
    Tag,
    TagRecord,
    auto_shard_size,
    final_status,
    Job,
    JobConflictError,
    JobFinishedError,
    Task,
    TooManyShardsError,
    plan_tasks,
    shard_capacity,
    task_id,
    validate_job_id,
)


def refs(n: int) -> list[AssetRef]:
    return [AssetRef(uri=f"/a/{i}.txt", etag="e", size=1) for i in range(n)]


def test_the_planner_deals_new_assets_by_uri_into_numbered_shards():
    plan = plan_tasks("j", list(reversed(refs(7))), {}, next_shard=2, shard_size=3)
    assert [(t.shard, t.asset) for t in plan.new] == [(2 + i // 3, f"/a/{i}.txt") for i in range(7)]
    assert plan.next_shard == 5 and plan.changed == [] and plan.carry == []
    with pytest.raises(ValueError, match="at least 1"):
        plan_tasks("j", refs(1), {}, next_shard=0, shard_size=0)


def test_the_planner_resets_changed_assets_in_their_shard_and_leaves_unchanged_ones():
    known = {
        "/a/0.txt": Task(job_id="j", asset="/a/0.txt", etag="e", shard=4, status="DONE"),
        "/a/1.txt": Task(job_id="j", asset="/a/1.txt", etag="old", shard=7, status="DONE"),
    }
    plan = plan_tasks("j", refs(3) + refs(3), known, next_shard=9, shard_size=10)  # duplicates count once
    assert [(t.asset, t.shard, t.status.value, t.etag) for t in plan.changed] == [("/a/1.txt", 7, "PENDING", "e")]
    assert [(t.asset, t.shard) for t in plan.new] == [("/a/2.txt", 9)]
    assert plan.unchanged == 1 and len(plan.tasks) == 2


def test_a_scan_that_goes_on_carries_a_partial_shard_and_a_retried_call_replans_its_own_tasks():
    plan = plan_tasks("j", refs(5), {}, next_shard=0, shard_size=2, final=False)
    assert [t.shard for t in plan.new] == [0, 0, 1, 1] and [a.uri for a in plan.carry] == ["/a/4.txt"]
    mine = {"/a/0.txt": Task(job_id="j", asset="/a/0.txt", etag="e", shard=3)}  # written by a failed attempt
    again = plan_tasks("j", refs(1), mine, next_shard=3, shard_size=2, replan_from_shard=3)
    assert [(t.asset, t.shard) for t in again.new] == [("/a/0.txt", 3)]


def test_shards_grow_past_five_thousand_so_a_job_fits_one_batch_array():
    assert shard_capacity(4_999, 500) == 500
    assert shard_capacity(5_000, 500) == 1_000 and shard_capacity(6_000, 500) == 2_000
    with pytest.raises(TooManyShardsError, match="more than 10000 shards"):
        plan_tasks("j", refs(40), {}, next_shard=9_999, shard_size=1)  # shard 9,999 holds 32


def job(**kw) -> Job:
    return Job(job_id="j", bot="sentiment", source="/src", output="/out", workers=2, **kw)


def test_a_job_runs_and_finishes_by_its_counts_or_its_error():
    running = job().start(JobCounts(total=2, pending=2), workers=4, model_version="v1")
    assert (running.status, running.workers, running.model_version) == (JobStatus.RUNNING, 4, "v1")
    done = running.finish(JobCounts(total=2, done=1, failed=1))
    assert done.status is JobStatus.PARTIAL and done.finished_at is not None and done.is_finished
    failed = running.finish(JobCounts(total=2, done=2), error="States.Timeout: " + "x" * 5000)
    assert failed.status is JobStatus.FAILED and failed.error.startswith("States.Timeout") and len(failed.error) == 4000
    resumed = failed.start(JobCounts(total=2, done=2))
    assert (resumed.status, resumed.finished_at, resumed.error) == (JobStatus.RUNNING, None, None)


def test_a_cancelled_job_stays_cancelled_and_a_finished_one_cannot_be_cancelled():
    cancelled = job().start(JobCounts(total=1, pending=1)).cancel()
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cancel() is cancelled
    finalized = cancelled.finish(JobCounts(total=1, done=1))
    assert finalized.status is JobStatus.CANCELLED and finalized.finished_at == cancelled.finished_at
    with pytest.raises(JobFinishedError, match="has finished"):
        job().finish(JobCounts(total=1, done=1)).cancel()


def test_the_same_job_check_names_what_differs_and_the_endpoint_is_recorded():
    job().check_same(bot="sentiment", source="/src", output="/out")
    job().check_same(bot="sentiment", source="/src")  # no output named: any
    with pytest.raises(JobConflictError, match="source '/src', not '/other'"):
        job().check_same(bot="sentiment", source="/other")
    assert job().record_endpoint("spotbot-x").endpoint_name == "spotbot-x"
    assert job().record_endpoint("").endpoint_name is None


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


def test_a_shard_of_a_job_carries_the_jobs_id_bot_source_and_output():
    from spotbot.ports import ShardWork

    job = Job(job_id="j", bot="sentiment", source="s3://assets/r", output="s3://out/tags", workers=2)
    work = ShardWork.of(job, 3, batch_size=8, incremental=False)
    assert work == ShardWork(job_id="j", shard=3, bot="sentiment", source="s3://assets/r", output="s3://out/tags",
                             batch_size=8, incremental=False)  # fmt: skip


def test_permanent_error_names_come_from_the_modules_named_only():
    from spotbot.domain.errors import permanent_error_names
    import spotbot.services.bots  # noqa: F401 - defines UnknownBotError, a NotFoundError, elsewhere

    assert permanent_error_names(("spotbot.domain.errors",)) == [
        "BadInputError", "ConflictError", "FieldError", "ForbiddenError", "NotFoundError"]
    assert "UnknownBotError" in permanent_error_names(("spotbot.services.bots",))
    assert "UnavailableError" not in permanent_error_names(("spotbot.domain.errors",))
