"""The ReuseIndex port on both adapters: SQLite (the conftest `index`) and OpenSearch (osmem)."""

from __future__ import annotations

import pytest

from spotbot.domain import Tag, TagRecord, TaskStatus, reused_copy
from spotbot.ports import TaskOutcome
from spotbot.services.planning import add_assets
from tests.index_contract import refs


@pytest.fixture(params=["sqlite", "opensearch"])
def any_index(request):
    return request.getfixturevalue("index" if request.param == "sqlite" else "opensearch_index")


def made(job: str, asset: str, *, etag: str = "e1", version: str = "v1", label: str = "x") -> TagRecord:
    return TagRecord(job_id=job, bot="b", model_version=version, asset=f"/src/{asset}", etag=etag, tags=[Tag(label=label, score=0.5)])


def test_reusable_records_match_bot_model_asset_and_etag_in_bulk(any_index):
    add_assets(any_index, "j1", refs(*(f"a{i}" for i in range(1200))), shard_size=2000)
    records = [made("j1", f"a{i}", label=f"l{i}") for i in range(1200)]
    any_index.record_outcomes(records, [TaskOutcome(r.asset, TaskStatus.DONE) for r in records], "j1")

    wanted = [(f"/src/a{i}", "e1") for i in range(1200)] + [("/src/a0", "e2"), ("/src/none", "e1")]
    found = any_index.reusable_records("b", "v1", wanted)
    assert len(found) == 1200  # more than one page of the multi-get
    assert found["/src/a7"].tags[0].label == "l7" and found["/src/a7"].job_id == "j1"
    assert any_index.reusable_records("b", "v1", [("/src/a0", "e2")]) == {}  # changed bytes
    assert any_index.reusable_records("b", "v2", [("/src/a0", "e1")]) == {}  # a new model version
    assert any_index.reusable_records("other", "v1", [("/src/a0", "e1")]) == {}


def test_a_reused_copy_is_indexed_under_the_new_job_and_keeps_its_origin(any_index):
    add_assets(any_index, "j1", refs("a"), shard_size=10)
    any_index.record_outcomes([made("j1", "a")], [TaskOutcome("/src/a", TaskStatus.DONE)], "j1")
    add_assets(any_index, "j2", refs("a"), shard_size=10)
    copy = reused_copy(any_index.reusable_records("b", "v1", [("/src/a", "e1")])["/src/a"], "j2")
    any_index.record_outcomes([copy], [TaskOutcome("/src/a", TaskStatus.SKIPPED)], "j2")

    (indexed,) = list(any_index.tag_records("j2"))
    assert (indexed.job_id, indexed.reused_from) == ("j2", "j1")
    assert any_index.counts("j2").skipped == 1 and any_index.done_assets("j2", ["/src/a"]) == {"/src/a"}
    assert any_index.reusable_records("b", "v1", [("/src/a", "e1")])["/src/a"].job_id == "j1"
