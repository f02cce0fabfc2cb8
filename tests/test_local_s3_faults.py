"""S3 that goes down mid-run, never answers, or holds the output: job-level conditions, never an asset's fault."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import boto3

from spotbot.adapters.local.runner import STOP_GRACE_SECONDS
from tests.conftest import MOTO_CREDENTIALS as CREDENTIALS, run_spotbot, start_moto_server, wait_for_done
from tests.test_local_faults import job_json, start_spotbot
from tests.test_s3_source import aws_credentials  # noqa: F401 - a fixture

FAST = {"SPOTBOT_S3_CONNECT_TIMEOUT_SECONDS": "1", "SPOTBOT_S3_READ_TIMEOUT_SECONDS": "1", "SPOTBOT_S3_MAX_ATTEMPTS": "2"}


def test_an_s3_outage_mid_run_stops_the_job_and_a_resume_tags_each_asset_once(tmp_path: Path, aws_credentials):
    server, endpoint = start_moto_server()
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="assets")
    s3.create_bucket(Bucket="out")
    for i in range(150):
        s3.put_object(Bucket="assets", Key=f"r/{i:04d}.txt", Body=f"review {i:04d} fine".encode())
    home = tmp_path / "home"
    env = {"SPOTBOT_S3_ENDPOINT_URL": endpoint, **CREDENTIALS, **FAST, "SPOTBOT_WRITE_BATCH": "4"}
    args = ["tag", "s3://assets/r/", "--bot", "tests.support_bots:SlowLengthBot", "--out", "s3://out/tags",
            "--job-id", "outage", "--workers", "2", "--shard-size", "15"]
    process = start_spotbot(home, *args, **env)
    try:
        wait_for_done(home, 10)
        server.stop()
        stopped = time.monotonic()
        _, stderr = process.communicate(timeout=90)
        # the grace is for workers saving their batch; shards still queued have none, and are not waited for
        assert time.monotonic() - stopped < STOP_GRACE_SECONDS, "the job sat out the stop grace after its workers had ended"
    finally:
        process.kill()
    assert process.returncode == 1 and "Traceback" not in stderr
    assert "S3 is unavailable" in stderr and "--job-id outage to resume" in stderr
    status = job_json(home, "outage")
    assert status["status"] == "FAILED" and "S3 is unavailable" in status["error"]
    assert status["counts"]["failed"] == 0, "an outage was blamed on the assets"

    server, _ = start_moto_server(int(endpoint.rsplit(":", 1)[1]))  # moto keeps its buckets in this process
    try:
        resumed = json.loads(run_spotbot(home, *args, "--json", **env).stdout)
        assert resumed["job"]["status"] == "COMPLETED" and resumed["job"]["counts"]["done"] == 150
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="out", Prefix="tags/outage/")["Contents"]]
        lines = [json.loads(line) for key in keys if key.endswith(".jsonl")
                 for line in s3.get_object(Bucket="out", Key=key)["Body"].read().decode().splitlines()]
        assert sorted(line["asset"] for line in lines) == sorted(f"s3://assets/r/{i:04d}.txt" for i in range(150))
    finally:
        server.stop()


def test_an_endpoint_that_never_answers_stops_the_scan_in_bounded_time(tmp_path: Path, aws_credentials):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections and never answers
    stop = threading.Event()
    try:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        run = run_spotbot(tmp_path / "home", "tag", "s3://assets/r/", "--bot", "tests.support_bots:LengthBot",
                          "--out", str(tmp_path / "o"), "--job-id", "silent", check=False,
                          SPOTBOT_S3_ENDPOINT_URL=endpoint, **CREDENTIALS, **FAST)
        assert run.returncode == 1 and "Traceback" not in run.stderr and "S3 is unavailable" in run.stderr
        assert job_json(tmp_path / "home", "silent")["status"] == "FAILED"
        refused = run_spotbot(tmp_path / "home", "tag", "s3://assets/r/", "--bot", "tests.support_bots:LengthBot",
                              "--out", str(tmp_path / "o"), check=False,
                              SPOTBOT_S3_ENDPOINT_URL="http://127.0.0.1:9", **CREDENTIALS, **FAST)
        assert refused.returncode == 1 and "S3 is unavailable" in refused.stderr
    finally:
        stop.set()
        silent.close()
