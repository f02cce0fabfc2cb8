"""Videos are decoded from a file, never read into memory whole (issue 14): from a local folder in
place, from S3 through a temporary copy that is deleted once its frames are read."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from spotbot.adapters.local.assets import LocalAssetStore
from spotbot.adapters.local.in_process import InProcessRuntime
from spotbot.adapters.local.output import LocalOutputStore
from spotbot.adapters.s3.assets import S3AssetStore
from spotbot.adapters.sqlite.index import SQLiteTagIndex
from spotbot.domain import TaskStatus
from spotbot.ports import ShardWork
from spotbot.services.planning import add_assets
from spotbot.services.shard import tag_shard
from spotbot.settings import Settings
from tests.conftest import MOTO_CREDENTIALS
from tests.media_files import SLIDES

FRAMES = "tests.support_bots:FrameBot"
EXPECTED = json.loads((SLIDES.parents[1] / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def s3(monkeypatch, tmp_path):
    for name, value in {**MOTO_CREDENTIALS, "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="videos")
        yield client


def run_shard(store, tmp_path: Path, **settings: object) -> tuple[SQLiteTagIndex, dict[str, str | None]]:
    index = SQLiteTagIndex(tmp_path / "index.sqlite3")
    add_assets(index, "j", list(store.scan((".mp4",))), shard_size=100)
    work = ShardWork(job_id="j", shard=0, bot=FRAMES, source=store.source, output=str(tmp_path / "out"))
    tag_shard(work, index=index, store=store, output=LocalOutputStore(tmp_path / "out"),
              runtime=InProcessRuntime.load(FRAMES), settings=Settings(home=tmp_path / "home", **settings))  # fmt: skip
    tasks = index.tasks_in_shard("j", 0)
    return index, {Path(t.asset).name: (t.error if t.status is TaskStatus.FAILED else None) for t in tasks}


def test_a_video_from_s3_larger_than_max_asset_bytes_is_tagged_from_a_deleted_copy(s3, tmp_path: Path):
    s3.put_object(Bucket="videos", Key="in/slides.mp4", Body=SLIDES.read_bytes())
    s3.put_object(Bucket="videos", Key="in/not-a-video.mp4", Body=b"\xff\xd8\xff\xe0 a JPEG named .mp4")
    spool = tmp_path / "spool"
    index, outcome = run_shard(S3AssetStore("s3://videos/in/", client=s3), tmp_path,
                               max_asset_bytes=1024, spool_dir=spool)  # fmt: skip -- far smaller than the video
    assert outcome["slides.mp4"] is None and "not a video" in outcome["not-a-video.mp4"]
    (record,) = index.tag_records("j")
    times = [tag.model_extra["t"] for tag in record.tags]
    assert len(times) == len(EXPECTED["video"]["videos/slides.mp4"]) and times == sorted(times)
    assert list(spool.iterdir()) == []  # each copy went once its frames were read, the failed one too


def test_a_video_over_max_video_bytes_fails_naming_that_setting(s3, tmp_path: Path):
    s3.put_object(Bucket="videos", Key="in/slides.mp4", Body=SLIDES.read_bytes())
    _, outcome = run_shard(S3AssetStore("s3://videos/in/", client=s3), tmp_path, max_video_bytes=1000, spool_dir=tmp_path / "s")
    assert "above max_video_bytes" in outcome["slides.mp4"] and "SPOTBOT_MAX_VIDEO_BYTES" in outcome["slides.mp4"]
    assert list((tmp_path / "s").iterdir()) == []


def test_a_local_video_is_decoded_in_place(tmp_path: Path, monkeypatch):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "slides.mp4").write_bytes(SLIDES.read_bytes())
    store = LocalAssetStore(folder)
    monkeypatch.setattr(store, "read", lambda *a: pytest.fail("a video was read into memory"))
    index, outcome = run_shard(store, tmp_path, max_asset_bytes=1024)
    assert outcome == {"slides.mp4": None} and len(list(index.tag_records("j"))) == 1
