"""The scanner step (lambdas/scanner): the real handler against a moto S3 server and osmem.

One moto server and one source tree for the module; every test gets an empty osmem clone. The
partition logic of the parallel listing also runs against a small in-memory ListObjectsV2 with tiny
pages, over random key sets, where a bug would show as a missing or doubled key.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import re
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from lambdas.scanner.handler import handler
from spotbot.adapters.opensearch.index import OpenSearchTagIndex
from spotbot.bot import BUILTIN_BOTS, resolve_bot
from spotbot.domain import AssetRef, Task, TaskStatus, shard_capacity
from spotbot.ports import TaskOutcome
from spotbot.adapters.s3.listing import (
    KeyRange,
    ParallelLister,
    SourceAccessDeniedError,
    SourceNotFoundError,
    source_error,
    split_points,
)
from spotbot.entrypoints.steps import parse_event
from spotbot.adapters.s3.scan import BUILTIN_FILE_TYPES, ScanRequest, ScanRequestError, scan_assets
from spotbot.settings import Settings
from tests.conftest import MOTO_CREDENTIALS
from tests.moto_bridges import FakeContext as LambdaContext

SOURCE = "assets"
WORK = "work"
ODD_KEYS = [
    "photos/with space.jpg",
    "photos/中文 照片.png",
    "photos/a+b=c.JPG",
    "photos/deep/er/x%20y.jpeg",
    "photos/ümlaut/ß.gif",
]
UNWANTED = ["photos/notes.txt", "photos/archive.zip", "photos/folder-marker.jpg/", "photos/jpg", "other/outside.jpg"]


def tree_keys() -> list[str]:
    keys = [f"photos/2024/{month:02d}/day {day:02d}/IMG_{i:03d}.jpg" for month in (1, 2) for day in range(1, 6) for i in range(40)]
    keys += [f"photos/flat/{i:05d}.PNG" for i in range(1_150)]  # more than one page in one folder
    keys += [f"photos/tiny/{random.Random(i).randrange(16**6):06x}/img.webp" for i in range(300)]  # many small folders
    return keys + ODD_KEYS


EXPECTED = sorted({f"s3://{SOURCE}/{key}" for key in tree_keys()})


class FakeContext(LambdaContext):
    """A Lambda context with a fixed time left."""

    def __init__(self, remaining_ms: int = 600_000) -> None:
        super().__init__("spotbot-scanner")
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture(scope="module")
def moto_endpoint(moto_url):
    with pytest.MonkeyPatch.context() as mp:
        for name, value in MOTO_CREDENTIALS.items():
            mp.setenv(name, value)
        endpoint = moto_url
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket=SOURCE)
        s3.create_bucket(Bucket=WORK)
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key in tree_keys():
            if key not in ODD_KEYS:
                backend.put_object(SOURCE, key, key.encode())  # in process: quicker than 2,000 PUTs
        for key in ODD_KEYS + UNWANTED:
            s3.put_object(Bucket=SOURCE, Key=key, Body=key.encode())  # through HTTP: the odd characters
        yield endpoint


@pytest.fixture
def s3(moto_endpoint):
    return boto3.client("s3", endpoint_url=moto_endpoint)


@pytest.fixture
def index(opensearch_index):
    return opensearch_index


@pytest.fixture
def cloud_env(monkeypatch, moto_endpoint, osmem_clone):
    for name, value in {
        "SPOTBOT_S3_ENDPOINT_URL": moto_endpoint,
        "SPOTBOT_WORK_BUCKET": WORK,
        "SPOTBOT_OPENSEARCH_ENDPOINT": osmem_clone.url,
        "SPOTBOT_OPENSEARCH_SIGV4": "false",
        "SPOTBOT_SCAN_PARALLELISM": "8",
        "SPOTBOT_SCAN_TIME_BUDGET_SECONDS": "600",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def event(job_id: str, source: str = f"s3://{SOURCE}/photos/", **more: Any) -> dict[str, Any]:
    return {"job_id": job_id, "bot": "scene-text", "source": source, "shard_size": 100, "workers": 4, "continuation": None, **more}


def run_scan(job_id: str, context: FakeContext | None = None, **more: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Calls the handler the way the state machine loops: until done, passing the continuation back."""
    outputs = []
    body = event(job_id, **more)
    while True:
        output = handler(json.loads(json.dumps(body)), context or FakeContext())
        json.dumps(output)  # Step Functions state is JSON
        outputs.append(output)
        if output["done"]:
            return output, outputs
        assert len(json.dumps(output)) < 256 * 1024
        body = {**body, "continuation": output["continuation"]}
        assert len(outputs) < 500, "the scan makes no progress"


def indexed_tasks(index: OpenSearchTagIndex, job_id: str) -> dict[int, list[str]]:
    index.refresh()
    shards = index.shards_with_work(job_id, tuple(TaskStatus), consistent=True)
    return {shard: [t.asset for t in index.tasks_in_shard(job_id, shard, consistent=True)] for shard in shards}


def assert_consistent(s3, index, job_id: str, output: dict[str, Any]) -> dict[int, list[str]]:
    """Every asset exactly once in the index, under one shard; shards dense from 0; no manifests for nobody."""
    tasks = indexed_tasks(index, job_id)
    assert sorted(tasks) == list(range(output["shards"]))
    listed = [asset for assets in tasks.values() for asset in assets]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == EXPECTED
    assert output["assets"] == len(EXPECTED)
    assert "Contents" not in s3.list_objects_v2(Bucket=WORK, Prefix=f"jobs/{job_id}/shards/")
    return tasks


# the built-in file types and the pure parts


def test_builtin_file_types_match_the_bot_classes():
    assert set(BUILTIN_FILE_TYPES) == set(BUILTIN_BOTS)
    for name in BUILTIN_BOTS:
        assert BUILTIN_FILE_TYPES[name] == resolve_bot(name).file_types, name


def test_shards_grow_so_a_job_fits_one_batch_array():
    assert [shard_capacity(n, 500) for n in (0, 4_999, 5_000, 5_999, 6_000, 9_999)] == [500, 500, 1000, 1000, 2000, 16000]
    assert sum(shard_capacity(n, 500) for n in range(10_000)) == 33_500_000


def test_split_points_cut_after_the_page_and_never_inside_a_folder():
    names = [f"flat/{i:05d}.jpg" for i in range(1000)]
    points = split_points("flat/", names[-1], None, names, 64)
    assert {"flat/01", "flat/09", "flat/1", "flat/9"} <= set(points)
    assert all(p > names[-1] and "/" not in p[len("flat/") :] for p in points)
    assert split_points("flat/", "flat/01999.jpg", "flat/02", [f"flat/{i:05d}.jpg" for i in range(1000, 2000)], 64) == []


class ListingFake:
    """ListObjectsV2 over a sorted key list, as S3 answers it (common prefixes count toward MaxKeys)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(set(keys))

    def list_objects_v2(self, Bucket, Prefix="", StartAfter="", Delimiter=None, MaxKeys=1000):
        i = max(bisect.bisect_right(self.keys, StartAfter), bisect.bisect_left(self.keys, Prefix))
        contents, prefixes = [], []
        while i < len(self.keys) and self.keys[i].startswith(Prefix) and len(contents) + len(prefixes) < MaxKeys:
            key = self.keys[i]
            cut = key.find(Delimiter, len(Prefix)) if Delimiter else -1
            if cut < 0:
                contents.append({"Key": key, "ETag": '"e"', "Size": 1})
                i += 1
                continue
            prefixes.append({"Prefix": key[: cut + 1]})
            i = bisect.bisect_left(self.keys, key[:cut] + chr(ord(Delimiter) + 1), i)
        truncated = i < len(self.keys) and self.keys[i].startswith(Prefix)
        return {"Contents": contents, "CommonPrefixes": prefixes, "IsTruncated": truncated}


@pytest.mark.parametrize("seed", range(12))
def test_parallel_listing_lists_every_key_once_whatever_the_layout(seed):
    rng = random.Random(seed)
    alphabet = "ab09 -._+é中/~"
    keys = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10))) + ".jpg" for _ in range(rng.randint(20, 600))]
    keys += [f"n/{i:04d}.jpg" for i in range(rng.randint(0, 300))] + [f"t/{rng.random():.6f}/x.jpg" for _ in range(100)]
    for prefix in ("", "a", "n/", "t/"):
        lister = ParallelLister(ListingFake(keys), "b", (".jpg",), rng.choice((1, 4, 8)), page_size=rng.choice((3, 7, 20)))
        found, work = [], [KeyRange(prefix)]
        while work:  # a deadline already passed: one request per run, as with a tiny time budget
            work = [KeyRange.from_json(json.loads(json.dumps(r.to_json()))) for r in lister.run(work, found.extend, 0.0)]
        uris = [a.uri for a in found]
        assert sorted(uris) == sorted({f"s3://b/{k}" for k in keys if k.startswith(prefix)}), (seed, prefix)


def test_list_errors_are_named_for_the_state_machine():
    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListObjectsV2")

    assert isinstance(source_error("b", "p/", client_error("NoSuchBucket", 404)), SourceNotFoundError)
    denied = source_error("b", "p/", client_error("AccessDenied", 403))
    assert isinstance(denied, SourceAccessDeniedError) and "s3:ListBucket on arn:aws:s3:::b" in str(denied)


@pytest.mark.parametrize("kind", ["sqlite", "opensearch"])
def test_both_indexes_take_tasks_planned_by_the_scanner(kind, tmp_path, request):
    if kind == "sqlite":
        from spotbot.adapters.sqlite.index import SQLiteTagIndex

        db = SQLiteTagIndex(tmp_path / "index.sqlite3")
    else:
        db = request.getfixturevalue("index")
    assert db.max_shard("j") is None and db.tasks_by_asset("j", ["s3://b/a"]) == {}
    refs = [AssetRef(uri=f"s3://b/{n}", etag="e1", size=1) for n in "abc"]
    def planned(shard: int, ref: AssetRef) -> Task:
        return Task(job_id="j", asset=ref.uri, etag=ref.etag, shard=shard)

    assert db.add_tasks([planned(0, refs[0]), planned(0, refs[1]), planned(3, refs[2])]) == 3
    assert db.max_shard("j") == 3 and db.max_shard("other") is None
    db.record_outcomes([], [TaskOutcome("s3://b/a", TaskStatus.DONE)], "j")
    db.add_tasks([planned(1, refs[1].model_copy(update={"etag": "e2"}))])  # replaces the task, PENDING again
    found = db.tasks_by_asset("j", ["s3://b/a", "s3://b/b", "s3://b/none"])
    assert {uri: (t.shard, t.etag, t.status) for uri, t in found.items()} == {
        "s3://b/a": (0, "e1", TaskStatus.DONE),
        "s3://b/b": (1, "e2", TaskStatus.PENDING),
    }
    assert db.counts("j").total == 3


# the handler against moto and osmem


def test_scan_writes_a_task_per_asset_of_the_bots_file_types(cloud_env, s3, index):
    output, outputs = run_scan("scan-tree")
    assert len(outputs) == 1 and output["done"] and output["continuation"] is None
    assert output["shards"] == math.ceil(len(EXPECTED) / 100)
    tasks = assert_consistent(s3, index, "scan-tree", output)
    assert all(len(assets) == 100 for shard, assets in tasks.items() if shard < output["shards"] - 1)
    for task in index.tasks_in_shard("scan-tree", 0, consistent=True):
        head = s3.head_object(Bucket=SOURCE, Key=task.asset.removeprefix(f"s3://{SOURCE}/"))
        assert task.etag == head["ETag"].strip('"')
    assert index.counts("scan-tree").pending == len(EXPECTED)


def test_a_tiny_time_budget_hands_on_until_the_same_assets_are_found(cloud_env, s3, index):
    cloud_env.setenv("SPOTBOT_SCAN_TIME_BUDGET_SECONDS", "0.000001")
    output, outputs = run_scan("scan-budget")
    assert len(outputs) > 3
    assert [o["assets"] for o in outputs] == sorted(o["assets"] for o in outputs)
    assert [o["shards"] for o in outputs] == sorted(o["shards"] for o in outputs)
    assert all(not o["done"] and o["continuation"] for o in outputs[:-1])
    assert_consistent(s3, index, "scan-budget", output)  # the same assets as one call finds, each once


def test_a_lambda_with_no_time_left_still_makes_progress(cloud_env, s3, index):
    output = handler(event("scan-late"), FakeContext(remaining_ms=1_000))  # less than the safety margin
    assert output["done"] is False and output["continuation"]["work"]
    assert output["continuation"]["next_shard"] == output["shards"]


def test_a_big_work_list_is_kept_in_the_work_bucket(cloud_env, s3, index):
    settings = Settings(scan_time_budget_seconds=0.000001)
    request = parse_event(ScanRequest, event("scan-state"), step="scan", error=ScanRequestError)
    result = scan_assets(request, settings, s3=s3, index=index, inline_work_bytes=0)
    token = result.continuation
    assert "work" not in token and token["work_at"] == f"s3://{WORK}/jobs/scan-state/scan-state/00001.json"
    calls = 1
    while not result.done:
        result = scan_assets(request, settings, s3=s3, index=index, continuation=result.continuation, inline_work_bytes=0)
        calls += 1
    assert calls > 1
    assert_consistent(s3, index, "scan-state", result.as_output())
    assert "Contents" not in s3.list_objects_v2(Bucket=WORK, Prefix="jobs/scan-state/scan-state/")


def test_scanning_a_job_again_adds_only_what_is_new_or_changed(cloud_env, s3, index):
    s3.create_bucket(Bucket="rescan")
    for i in range(30):
        s3.put_object(Bucket="rescan", Key=f"in/{i:02d}.png", Body=f"v1 {i}".encode())
    rescan = {"source": "s3://rescan/in/", "shard_size": 8}
    first, _ = run_scan("rescan", **rescan)
    assert (first["assets"], first["shards"]) == (30, 4)
    before = indexed_tasks(index, "rescan")

    again, _ = run_scan("rescan", **rescan)
    assert (again["assets"], again["shards"]) == (30, 4)
    assert indexed_tasks(index, "rescan") == before
    assert index.counts("rescan").total == 30

    changed = s3.put_object(Bucket="rescan", Key="in/05.png", Body=b"v2")["ETag"].strip('"')
    s3.put_object(Bucket="rescan", Key="in/new.png", Body=b"new")
    third, _ = run_scan("rescan", **rescan)
    assert (third["assets"], third["shards"]) == (31, 5)
    assert index.counts("rescan").total == 31
    (task,) = index.tasks_by_asset("rescan", ["s3://rescan/in/05.png"]).values()
    assert task.etag == changed and task.shard == 0 and task.status == TaskStatus.PENDING
    assert indexed_tasks(index, "rescan")[4] == ["s3://rescan/in/new.png"]


def test_a_missing_bucket_or_a_bad_input_is_a_named_error(cloud_env):
    with pytest.raises(SourceNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        handler(event("scan-missing", source="s3://no-such-bucket/photos/"), FakeContext())
    with pytest.raises(ScanRequestError, match="source"):
        handler(event("scan-bad", source="/local/folder"), FakeContext())
    with pytest.raises(ScanRequestError, match="unknown bot 'nope'"):
        handler(event("scan-bad", bot="nope"), FakeContext())
    with pytest.raises(ScanRequestError, match="belongs to job"):
        handler(event("scan-bad", continuation={"v": 1, "job_id": "another"}), FakeContext())


def test_a_submitted_job_is_running_from_its_first_scan_call(cloud_env, s3, index):
    from spotbot.domain import Job, JobStatus

    index.save_job(Job(job_id="scan-starts", bot="scene-text", source=f"s3://{SOURCE}/photos/", output="s3://out/t", workers=1))
    output, _ = run_scan("scan-starts")
    job = index.get_job("scan-starts")
    assert job.status == JobStatus.RUNNING and job.finished_at is None
    assert output["assets"] > 0


def test_an_inventory_source_is_planned_a_data_file_a_call_into_the_same_tasks(cloud_env, s3, index):
    import gzip
    import hashlib

    from tests.test_inventory import CSV_SCHEMA, csv_file

    rows = [{"bucket": SOURCE, "key": item["Key"], "size": item["Size"], "etag": item["ETag"].strip('"')}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=SOURCE) for item in page.get("Contents", [])]  # fmt: skip
    thirds = [rows[i::3] for i in range(3)]
    entries = []
    for n, part in enumerate(thirds):
        data = csv_file(part)
        assert gzip.decompress(data)  # a real gzip'd CSV, as S3 Inventory writes
        s3.put_object(Bucket=WORK, Key=f"inventory/data/{n}.csv.gz", Body=data)
        entries.append({"key": f"inventory/data/{n}.csv.gz", "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = {"sourceBucket": SOURCE, "destinationBucket": f"arn:aws:s3:::{WORK}", "fileFormat": "CSV",
                "fileSchema": CSV_SCHEMA, "files": entries}  # fmt: skip
    s3.put_object(Bucket=WORK, Key="inventory/manifest.json", Body=json.dumps(manifest).encode())
    cloud_env.setenv("SPOTBOT_SCAN_TIME_BUDGET_SECONDS", "0.000001")  # one data file a call
    output, outputs = run_scan("scan-inventory", source=f"s3://{WORK}/inventory/manifest.json#photos/")
    assert len(outputs) == 3 and [o["done"] for o in outputs] == [False, False, True]
    assert_consistent(s3, index, "scan-inventory", output)  # the tasks a listing of s3://source/photos/ plans
