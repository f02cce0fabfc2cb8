"""An S3 source: real boto3 calls against moto, in process and as a server the workers reach."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from spotbot.adapters.s3.assets import S3AssetStore, parse_s3_uri
from spotbot.services.decoding import AssetError
from spotbot.domain import NotFoundError
from tests.conftest import MOTO_CREDENTIALS, read_parts, run_spotbot, start_moto_server

ODD_KEYS = ["reviews/with space.txt", "reviews/中文 评论.txt", "reviews/a+b=c.txt", "reviews/deep/er/x%20y.TXT"]


@pytest.fixture
def aws_credentials(monkeypatch):
    for name, value in MOTO_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def test_parse_s3_uri():
    assert parse_s3_uri("s3://bucket/a/b c+d") == ("bucket", "a/b c+d")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="names no bucket"):
        parse_s3_uri("s3:///key")


def test_scan_pages_filters_and_reads(aws_credentials):
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="assets")
        for i in range(1_005):
            s3.put_object(Bucket="assets", Key=f"reviews/{i:05d}.txt", Body=f"评论 {i}".encode())
        for key in ODD_KEYS:
            s3.put_object(Bucket="assets", Key=key, Body=key.encode())
        s3.put_object(Bucket="assets", Key="reviews/photo.jpg", Body=b"not text")
        s3.put_object(Bucket="assets", Key="elsewhere/0.txt", Body=b"outside the prefix")

        store = S3AssetStore("s3://assets/reviews/", client=s3)
        assets = list(store.scan((".txt",)))
        assert len(assets) == 1_005 + len(ODD_KEYS)  # more than one ListObjectsV2 page
        by_uri = {a.uri: a for a in assets}
        for key in ODD_KEYS:
            assert store.read(by_uri[f"s3://assets/{key}"], 1000) == key.encode()
        changed = by_uri["s3://assets/reviews/00001.txt"]
        s3.put_object(Bucket="assets", Key="reviews/00001.txt", Body=b"new content")
        with pytest.raises(AssetError, match="changed since the scan"):
            store.read(changed, 1000)
        with pytest.raises(AssetError, match="above max_asset_bytes"):
            store.read(by_uri["s3://assets/reviews/00002.txt"], 4)
        with pytest.raises(AssetError, match="cannot read object"):
            store.read(changed.model_copy(update={"uri": "s3://assets/reviews/gone.txt"}), 1000)
        with pytest.raises(NotFoundError, match="cannot list s3://missing-bucket/"):
            list(S3AssetStore("s3://missing-bucket/", client=s3).scan((".txt",)))


def test_tag_an_s3_prefix_end_to_end(tmp_path: Path, aws_credentials):
    server, endpoint = start_moto_server()
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="assets")
        # several shards in several folders (paging past 1,000 keys is test_scan_pages_filters_and_reads')
        keys = [f"reviews/{i // 50}/{i:05d}.txt" for i in range(240)] + ODD_KEYS
        for key in keys:
            s3.put_object(Bucket="assets", Key=key, Body=f"{key}\n很好".encode())

        home, out = tmp_path / "home", tmp_path / "out"
        env = {"SPOTBOT_S3_ENDPOINT_URL": endpoint, **MOTO_CREDENTIALS}
        args = ["tag", "s3://assets/reviews/", "--bot", "tests.support_bots:LengthBot", "--out", str(out), "--json"]
        result = json.loads(run_spotbot(home, *args, "--job-id", "s3job", **env).stdout)
        assert result["job"]["status"] == "COMPLETED"
        assert result["job"]["counts"]["done"] == len(keys)
        lines = read_parts(out / "s3job")
        assert sorted(line["asset"] for line in lines) == sorted(f"s3://assets/{k}" for k in keys)
        assert all(line["text"].startswith(line["asset"].removeprefix("s3://assets/")) for line in lines)
    finally:
        server.stop()
