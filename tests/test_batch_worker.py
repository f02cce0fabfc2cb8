"""The Spot worker (`python -m batch_jobs.worker`) as Batch runs it, against moto (S3) and osmem (OpenSearch).

Each worker is a real subprocess with the environment a Batch array child gets; the bot runs in
the container or behind a real `bots.serve` process reached through boto3's sagemaker-runtime
client. S3OutputStore's own behaviour is tested in process against moto.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from spotbot.adapters.local.output import LocalOutputStore
from spotbot.adapters.opensearch.index import OpenSearchTagIndex
from spotbot.adapters.s3.assets import S3AssetStore
from spotbot.adapters.s3.output import S3OutputStore
from spotbot.domain import Job, JobStatus, TaskStatus
from spotbot.services.planning import add_assets
from tests.conftest import CURRENT_SENTIMENT, REPO
from tests.test_serving import start_server, stop_server

LENGTH = "tests.support_bots:LengthBot"
SLOW = "tests.support_bots:SlowLengthBot"  # 20 ms per text in predict
POSITIVE = "这家店的菜很好吃，服务也很周到，下次还来。"
NEGATIVE = "太难吃了，服务态度很差，再也不会来了。"



@pytest.fixture(autouse=True)
def fake_aws(monkeypatch, tmp_path):
    """Dummy credentials for every boto3 client, here and in the workers; no ~/.aws, no real AWS."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@dataclass
class Cloud:
    """One test's bucket and OpenSearch clone, and the worker run against them."""

    s3: Any
    bucket: str
    moto_url: str
    index: OpenSearchTagIndex
    opensearch_url: str
    tmp: Path

    def put_texts(self, prefix: str, texts: dict[str, bytes | str]) -> None:
        for name, body in texts.items():
            self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/{name}", Body=body.encode() if isinstance(body, str) else body)

    def seed(self, job_id: str, prefix: str, shard_size: int) -> int:
        """What the scanner does: a task per asset under the prefix, in shards."""
        assets = list(S3AssetStore(f"s3://{self.bucket}/{prefix}/", client=self.s3).scan((".txt",)))
        return add_assets(self.index, job_id, assets, shard_size)

    def env(self, job_id: str, bot: str, shard: int | None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTBOT_")}
        env.update(
            PYTHONPATH=str(REPO),
            AWS_ENDPOINT_URL=self.moto_url,
            SPOTBOT_HOME=str(self.tmp / "home"),
            SPOTBOT_MODELS=str(self.tmp / "models"),
            SPOTBOT_OPENSEARCH_ENDPOINT=self.opensearch_url,
            SPOTBOT_OPENSEARCH_SIGV4="false",
            SPOTBOT_JOB_ID=job_id,
            SPOTBOT_BOT=bot,
            SPOTBOT_SOURCE=f"s3://{self.bucket}/{job_id}-src/",
            SPOTBOT_OUTPUT=f"s3://{self.bucket}/results",
        )
        if shard is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(shard)
        env.update(extra)
        return env

    def start_worker(self, job_id: str, bot: str, shard: int | None = None, **extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "batch_jobs.worker"], cwd=REPO, env=self.env(job_id, bot, shard, **extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def run_worker(self, job_id: str, bot: str, shard: int | None = None, **extra: str) -> Run:
        process = self.start_worker(job_id, bot, shard, **extra)
        return finish(process)

    def part(self, job_id: str, shard: int) -> list[dict]:
        """The part's lines, each a complete JSON record."""
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=f"results/{job_id}/part-{shard:05d}.jsonl")["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return []
        text = body.decode("utf-8")
        assert text == "" or text.endswith("\n"), "a torn last line"
        return [json.loads(line) for line in text.splitlines()]

    def indexed(self, job_id: str) -> list[dict]:
        return [r.model_dump(mode="json", exclude_none=True) for r in self.index.tag_records(job_id, consistent=True)]

    def assets_with(self, job_id: str, status: TaskStatus, shard: int) -> set[str]:
        return {t.asset for t in self.index.tasks_in_shard(job_id, shard, (status,), consistent=True)}

    def assert_outputs_agree(self, job_id: str, shards: range) -> list[dict]:
        """S3 parts and OpenSearch hold the same records, one per DONE asset, each in its own shard's part."""
        lines = []
        for shard in shards:
            part = self.part(job_id, shard)
            assert {line["asset"] for line in part} == self.assets_with(job_id, TaskStatus.DONE, shard)
            lines.extend(part)
        assert [a for a, n in Counter(line["asset"] for line in lines).items() if n > 1] == [], "an asset written twice"
        assert sorted(lines, key=lambda r: r["asset"]) == self.indexed(job_id)
        return lines


@dataclass
class Run:
    returncode: int
    logs: list[dict]
    stderr: str

    def messages(self) -> list[str]:
        return [line["message"] for line in self.logs]


def finish(process: subprocess.Popen, timeout: float = 60) -> Run:
    stdout, stderr = process.communicate(timeout=timeout)
    logs = []
    for line in stdout.splitlines():
        try:
            logs.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"a log line that is not JSON: {line!r}\nstderr: {stderr}") from None
    return Run(process.returncode, logs, stderr)


@pytest.fixture
def cloud(moto_url, osmem_clone, tmp_path, request):
    s3 = boto3.client("s3", endpoint_url=moto_url)
    bucket = "b-" + request.node.name.replace("_", "-")[:50].lower()
    s3.create_bucket(Bucket=bucket)
    index = OpenSearchTagIndex.connect(osmem_clone.url, sigv4=False, retry_base_s=0.001)
    index.ensure_indices()
    yield Cloud(s3, bucket, moto_url, index, osmem_clone.url, tmp_path)
    index.close()


def predicted(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


# the worker


def test_shards_are_tagged_into_s3_and_opensearch_and_a_rerun_changes_nothing(cloud: Cloud):
    texts: dict[str, bytes | str] = {f"review-{i:02d}.txt": f"review-{i:02d}\n{'很好 ' * i}" for i in range(9)}
    texts["not-utf8.txt"] = bytes(range(0x80, 0x100)) * 3 + b"\xff\xfe\xfd"  # no encoding fits, none is detected
    texts["empty.txt"] = b""
    cloud.put_texts("j1-src", texts)
    assert cloud.seed("j1", "j1-src", shard_size=6) == 11
    log = cloud.tmp / "predicted.log"

    runs = [cloud.start_worker("j1", LENGTH, shard, SPOTBOT_TEST_PREDICT_LOG=str(log)) for shard in (0, 1)]  # two array children at once
    first = [finish(process) for process in runs]
    assert [run.returncode for run in first] == [0, 0], [run.stderr for run in first]

    lines = cloud.assert_outputs_agree("j1", range(2))
    assert len(lines) == 9 and {line["bot"] for line in lines} == {"length"}
    assert {line["model_version"] for line in lines} == {"length-1"}
    assert all(line["tags"][0]["chars"] == len(line["text"]) for line in lines)
    counts = cloud.index.counts("j1")
    assert (counts.done, counts.failed, counts.pending) == (9, 2, 0)
    errors = {t.asset.rsplit("/", 1)[1]: t.error for t in cloud.index.failed_tasks("j1")}
    assert set(errors) == {"not-utf8.txt", "empty.txt"}
    assert "utf-8" in errors["not-utf8.txt"].lower() and "empty" in errors["empty.txt"].lower()
    assert sorted(predicted(log)) == sorted(f"review-{i:02d}" for i in range(9))

    for shard, run in enumerate(first):  # JSON on stdout, job and shard on every line
        assert all(line["job_id"] == "j1" and line["shard"] == shard for line in run.logs)
        assert run.messages()[0] == "tagging shard" and run.messages()[-1] == "shard finished"
    assert sum(run.logs[-1]["done"] for run in first) == 9 and sum(run.logs[-1]["failed"] for run in first) == 2

    objects_before = {o["Key"]: (o["ETag"], o["LastModified"]) for o in cloud.s3.list_objects_v2(Bucket=cloud.bucket, Prefix="results/")["Contents"]}
    again = [cloud.run_worker("j1", LENGTH, shard, SPOTBOT_TEST_PREDICT_LOG=str(log)) for shard in (0, 1)]  # a Batch retry
    assert [run.returncode for run in again] == [0, 0]
    assert sum(run.logs[-1]["done"] for run in again) == 0  # only the FAILED assets were tried again, and failed again
    assert len(predicted(log)) == 9  # nothing predicted twice
    assert cloud.assert_outputs_agree("j1", range(2)) == lines
    objects_after = {o["Key"]: (o["ETag"], o["LastModified"]) for o in cloud.s3.list_objects_v2(Bucket=cloud.bucket, Prefix="results/")["Contents"]}
    assert objects_after == objects_before  # the parts were sound: not even rewritten
    assert {t.attempts for t in cloud.index.failed_tasks("j1")} == {2}


def test_a_later_job_reuses_unchanged_records_unless_it_asked_for_a_full_run(cloud: Cloud):
    cloud.put_texts("j1-src", {f"r{i}.txt": f"r{i}\n{'好' * i}" for i in range(5)})
    source = f"s3://{cloud.bucket}/j1-src/"
    log = cloud.tmp / "predicted.log"
    for job_id in ("j1", "j2", "j3"):
        assert cloud.seed(job_id, "j1-src", shard_size=10) == 5
    cloud.index.save_job(Job(job_id="j3", bot="length", source=source, output="s3://x/out", workers=1, incremental=False))

    assert cloud.run_worker("j1", LENGTH, 0, SPOTBOT_SOURCE=source, SPOTBOT_TEST_PREDICT_LOG=str(log)).returncode == 0
    assert len(predicted(log)) == 5
    second = cloud.run_worker("j2", LENGTH, 0, SPOTBOT_SOURCE=source, SPOTBOT_TEST_PREDICT_LOG=str(log))
    assert second.returncode == 0 and second.logs[-1]["reused"] == 5 and second.logs[-1]["done"] == 0
    assert len(predicted(log)) == 5  # nothing predicted again
    assert {line["reused_from"] for line in cloud.part("j2", 0)} == {"j1"} and len(cloud.part("j2", 0)) == 5
    assert cloud.index.counts("j2").skipped == 5

    full = cloud.run_worker("j3", LENGTH, 0, SPOTBOT_SOURCE=source, SPOTBOT_TEST_PREDICT_LOG=str(log))  # "incremental": false
    assert full.returncode == 0 and full.logs[-1]["reused"] == 0 and full.logs[-1]["done"] == 5
    assert len(predicted(log)) == 10
    assert all("reused_from" not in line for line in cloud.part("j3", 0))


def test_sentiment_in_the_container_and_behind_an_endpoint_tag_alike(cloud: Cloud, tmp_path: Path):
    reviews = {f"good-{i}.txt": POSITIVE * (i + 1) for i in range(3)} | {f"bad-{i}.txt": NEGATIVE * (i + 1) for i in range(3)}
    for job_id in ("in-container", "endpoint"):
        cloud.put_texts(f"{job_id}-src", reviews)
        assert cloud.seed(job_id, f"{job_id}-src", shard_size=100) == 6

    local = cloud.run_worker("in-container", "sentiment")  # no AWS_BATCH_JOB_ARRAY_INDEX: a single job, shard 0
    assert local.returncode == 0, local.stderr
    assert local.logs[0]["shard"] == 0 and local.logs[0]["runtime"] == "in-container"

    served = start_server(tmp_path / "serve.log", "--bot", "sentiment", "--host", "127.0.0.1")
    try:
        remote = cloud.run_worker(
            "endpoint", "sentiment", 0, SPOTBOT_ENDPOINT_NAME="spotbot-sentiment", AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=served.url
        )
    finally:
        stop_server(served)
    assert remote.returncode == 0, remote.stderr
    assert remote.logs[0]["runtime"] == "endpoint spotbot-sentiment"
    invocations = [line for line in served.log_lines() if line.get("path") == "/endpoints/spotbot-sentiment/invocations"]
    assert sum(line["items"] for line in invocations) == 6

    def tags_by_name(job_id: str) -> dict[str, tuple[str, list]]:
        lines = cloud.assert_outputs_agree(job_id, range(1))
        return {line["asset"].rsplit("/", 1)[1]: (line["model_version"], line["tags"]) for line in lines}

    in_container, behind_endpoint = tags_by_name("in-container"), tags_by_name("endpoint")
    assert in_container == behind_endpoint and len(in_container) == 6
    assert {name: tags[0]["label"] for name, (_, tags) in in_container.items()} == {
        name: "positive" if name.startswith("good") else "negative" for name in reviews
    }
    assert {version for version, _ in in_container.values()} == {CURRENT_SENTIMENT}  # the current version, on both sides


def test_sigterm_mid_predict_saves_the_batch_and_a_retry_tags_each_asset_once(cloud: Cloud):
    total = 150
    cloud.put_texts("sig-src", {f"text-{i:03d}.txt": f"text-{i:03d}\nsome words" for i in range(total)})
    cloud.seed("sig", "sig-src", shard_size=total)
    log = cloud.tmp / "predicted.log"
    slow = {"SPOTBOT_TEST_PREDICT_LOG": str(log), "SPOTBOT_BATCH_SIZE": "25", "SPOTBOT_WRITE_BATCH": "25"}  # 0.5 s a batch

    process = cloud.start_worker("sig", SLOW, 0, **slow)
    deadline = time.monotonic() + 60
    done_at_signal: set[str] = set()
    while not done_at_signal and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
        done_at_signal = cloud.assets_with("sig", TaskStatus.DONE, 0)
    assert len(done_at_signal) == 25, "the first batch was never saved"
    # the first batch is saved, so the worker is in the second batch's 0.5 s of predict
    process.send_signal(signal.SIGTERM)
    stopped = finish(process)

    assert stopped.returncode == 143, stopped.stderr
    done = cloud.assets_with("sig", TaskStatus.DONE, 0)
    assert done_at_signal <= done and len(done) < total  # stopped early, losing nothing saved
    assert {line["asset"] for line in cloud.part("sig", 0)} == done
    # whatever was predicted before the exit (the batch in predict when the signal came, on a loaded machine
    # perhaps none) was saved: every prediction is a DONE task with its line
    assert sorted(Path(a).name.removesuffix(".txt") for a in done) == sorted(predicted(log))
    assert "stop requested: writing what is tagged, then exiting" in stopped.messages()
    assert stopped.logs[-1]["signal"] == "SIGTERM" and stopped.logs[-1]["done"] == len(done)

    retry = cloud.run_worker("sig", SLOW, 0, **slow)
    assert retry.returncode == 0, retry.stderr
    assert retry.logs[-1]["done"] == total - len(done)
    assert sorted(predicted(log)) == [f"text-{i:03d}" for i in range(total)]  # each asset predicted exactly once
    assert len(cloud.assert_outputs_agree("sig", range(1))) == total
    assert cloud.index.counts("sig").done == total


def test_exit_codes_for_configuration_and_runtime_errors(cloud: Cloud):
    missing = cloud.run_worker("cfg", LENGTH, 0, SPOTBOT_JOB_ID="", SPOTBOT_SOURCE="/local/folder", SPOTBOT_WRITE_BATCH="0")
    assert missing.returncode == 2
    (line,) = missing.logs
    assert line["level"] == "ERROR" and line["message"].startswith("configuration error:")
    assert {p.split(":")[0] for p in line["problems"]} == {"SPOTBOT_JOB_ID", "SPOTBOT_SOURCE", "SPOTBOT_WRITE_BATCH"}

    unknown = cloud.run_worker("cfg", "no-such-bot", 3)
    assert unknown.returncode == 2 and "unknown bot 'no-such-bot'" in unknown.logs[-1]["message"]
    assert unknown.logs[-1]["job_id"] == "cfg" and unknown.logs[-1]["shard"] == 3

    no_index = cloud.run_worker("cfg", LENGTH, 0, SPOTBOT_OPENSEARCH_ENDPOINT="")
    assert no_index.returncode == 2 and "SPOTBOT_OPENSEARCH_ENDPOINT is not set" in no_index.logs[-1]["message"]

    unreachable = cloud.run_worker("cfg", LENGTH, 0, SPOTBOT_OPENSEARCH_ENDPOINT="http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert unreachable.logs[-1]["message"].startswith("shard failed: ConnectionError") and "exception" in unreachable.logs[-1]


# S3OutputStore


class CountingS3:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.puts: list[str] = []

    def put_object(self, **kwargs: Any) -> Any:
        self.puts.append(kwargs["Key"])
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def record(asset: str, label: str = "x") -> dict:
    return {"job_id": "j", "bot": "b", "asset": asset, "tags": [{"label": label, "score": 0.5}], "text": "中文"}


def test_s3_parts_and_summary(tmp_path: Path):
    with mock_aws():
        raw = boto3.client("s3")
        raw.create_bucket(Bucket="out")
        s3 = CountingS3(raw)

        def body(key: str) -> bytes:
            return raw.get_object(Bucket="out", Key=key)["Body"].read()

        store = S3OutputStore("s3://out/results/", client=s3)
        assert store.location == "s3://out/results"
        part = store.part("job-1", 3)
        key = "results/job-1/part-00003.jsonl"
        assert part.uri == f"s3://out/{key}"
        assert part.read_records() == []
        part.rewrite([])
        assert s3.puts == []  # an absent part already holds nothing
        part.append([record("a"), record("b")])
        part.append([record("c")])
        assert s3.puts == [key, key]  # one PutObject per append: durable when append returns
        local = LocalOutputStore(tmp_path).part("job-1", 3)
        local.append([record("a"), record("b"), record("c")])
        local.close()
        assert body(key) == local.path.read_bytes()  # the same JSON Lines, byte for byte
        part.close()

        raw.put_object(Bucket="out", Key=key, Body=body(key) + b'not json\n[1]\n{"asset": "torn", "tags": [')
        fresh = store.part("job-1", 3)
        assert [r["asset"] for r in fresh.read_records()] == ["a", "b", "c"]  # invalid and torn lines dropped
        unread = store.part("job-1", 3)
        unread.append([record("d")])  # appending without reading first keeps the sound lines
        assert [json.loads(line)["asset"] for line in body(key).decode().splitlines()] == ["a", "b", "c", "d"]

        puts = len(s3.puts)
        again = store.part("job-1", 3)
        again.rewrite(again.read_records())
        assert len(s3.puts) == puts  # unchanged: no upload
        again.rewrite([record("b", label="y")])
        assert [json.loads(line) for line in body(key).decode().splitlines()] == [record("b", label="y")]
        again.append([record("e")])
        assert [json.loads(line)["asset"] for line in body(key).decode().splitlines()] == ["b", "e"]

        job = Job(job_id="job-1", bot="b", source="s3://in/", output=store.location, workers=4, status=JobStatus.PARTIAL)
        assert store.write_summary(job) == "s3://out/results/job-1/_job.json"
        assert Job.model_validate_json(body("results/job-1/_job.json")) == job

        root = S3OutputStore("s3://out", client=s3)
        assert root.location == "s3://out"
        root.part("job-2", 0).append([record("z")])
        assert json.loads(body("job-2/part-00000.jsonl"))["asset"] == "z"
        with pytest.raises(ValueError, match="not an S3 URI"):
            S3OutputStore("/local/out", client=s3)
