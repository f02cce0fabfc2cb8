"""Model stores and the registry: which version is current, and what happens to bad archives."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from spotbot.adapters.model_stores import LocalModelStore, PackagedModelStore, S3ModelStore
from spotbot.services.models import ModelError, ModelRegistry, pack_model_dir, version_key


def archive_of(tmp: Path, files: dict[str, object]) -> Path:
    folder = tmp / "pack"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for name, content in files.items():
        (folder / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return pack_model_dir(folder, tmp / "model.tar.gz")


def publish(store, tmp: Path, bot: str, version: str, accuracy: float | None = None, minimum: float = 0.7) -> None:
    manifest = {"bot": bot, "format": "snownlp"}
    files: dict[str, object] = {"model.json": manifest}
    if accuracy is not None:
        manifest["approval"] = {"metric": "accuracy", "min": minimum}
        files["metrics.json"] = {"accuracy": accuracy}
    store.publish(bot, version, archive_of(tmp, files))


def test_versions_sort_naturally():
    names = ["v10", "v2", "v1", "v20261121-101010", "v0-imagenet", "snownlp-0.12.3"]
    assert sorted(names, key=version_key) == ["snownlp-0.12.3", "v0-imagenet", "v1", "v2", "v10", "v20261121-101010"]


def test_newest_approved_version_is_current(tmp_path):
    store = LocalModelStore(tmp_path / "models")
    registry = ModelRegistry([store], tmp_path / "cache")
    assert registry.current("sentiment") is None
    publish(store, tmp_path, "sentiment", "v1", accuracy=0.80)
    publish(store, tmp_path, "sentiment", "v2", accuracy=0.85)
    current = registry.current("sentiment")
    assert current.version == "v2" and current.path and (current.path / "model.json").exists()
    assert json.loads((current.path / "model.json").read_text())["bot"] == "sentiment"

    publish(store, tmp_path, "sentiment", "v3", accuracy=0.60)  # below its threshold
    assert registry.current("sentiment").version == "v2"
    (v3,) = [v for v in registry.list("sentiment") if v.version == "v3"]
    assert not v3.approved and v3.reason == "accuracy 0.600 is below its threshold 0.700"
    assert registry.resolve("sentiment", "v1").version == "v1"  # a pinned version need not be current
    with pytest.raises(ModelError, match=r"no sentiment model version 'v9' \(versions: v3, v2, v1\)"):
        registry.resolve("sentiment", "v9")


def test_corrupt_archives_are_rejected_and_the_previous_version_stays(tmp_path):
    store = LocalModelStore(tmp_path / "models")
    registry = ModelRegistry([store], tmp_path / "cache")
    publish(store, tmp_path, "sentiment", "v1", accuracy=0.9)
    (tmp_path / "models/sentiment/v2").mkdir(parents=True)
    (tmp_path / "models/sentiment/v2/model.tar.gz").write_bytes(b"\x1f\x8b this is not gzip")
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    (tmp_path / "models/sentiment/v3").mkdir()
    (tmp_path / "models/sentiment/v3/model.tar.gz").write_bytes(evil.read_bytes())
    publish(store, tmp_path, "sentiment", "v4", accuracy=None)
    (tmp_path / "models/sentiment/v4/model.tar.gz").write_bytes(archive_of(tmp_path, {"metrics.json": {}}).read_bytes())
    publish(store, tmp_path, "sentiment", "v5")
    (tmp_path / "models/sentiment/v5/model.tar.gz").write_bytes(archive_of(tmp_path, {"model.json": {"bot": "car-model"}}).read_bytes())

    assert registry.current("sentiment").version == "v1"
    reasons = {v.version: v.reason for v in registry.list("sentiment")}
    assert "not a readable gzip tar archive" in reasons["v2"]
    assert "unsafe path: ../../escape.txt" in reasons["v3"]
    assert "has no model.json" in reasons["v4"]
    assert "model.json is for bot 'car-model', not 'sentiment'" in reasons["v5"]
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "cache" / "escape.txt").exists()
    with pytest.raises(ModelError, match="v2 cannot be used: .*not a readable gzip tar archive"):
        registry.resolve("sentiment", "v2")


def test_a_store_shadows_the_packaged_versions(tmp_path):
    packaged = PackagedModelStore()
    assert "snownlp-0.12.3" in packaged.versions("sentiment")
    store = LocalModelStore(tmp_path / "models")
    registry = ModelRegistry([store, packaged], tmp_path / "cache")
    packaged_current = registry.current("sentiment").version
    publish(store, tmp_path, "sentiment", "v99", accuracy=0.9)
    assert registry.current("sentiment").version == "v99"
    assert {v.store for v in registry.list("sentiment")} == {store.location, "packaged"}
    assert packaged_current in {v.version for v in registry.list("sentiment")}
    with pytest.raises(PermissionError):
        packaged.publish("sentiment", "x", tmp_path / "model.tar.gz")


def test_s3_model_store_drop_in(tmp_path, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="work")
        store = S3ModelStore("s3://work/models", client=s3)
        registry = ModelRegistry([store], tmp_path / "cache")
        publish(store, tmp_path, "sentiment", "v1", accuracy=0.8)
        assert store.versions("sentiment") == ["v1"] and registry.current("sentiment").version == "v1"
        # a user drops a newer archive straight into the prefix: the next lookup uses it
        archive = archive_of(tmp_path, {"model.json": {"bot": "sentiment", "format": "snownlp"}})
        s3.upload_file(str(archive), "work", "models/sentiment/v2/model.tar.gz")
        s3.put_object(Bucket="work", Key="models/sentiment/v3/notes.txt", Body=b"not a model")
        assert registry.current("sentiment").version == "v2"
        # replacing an archive in place is noticed (its ETag changes)
        s3.put_object(Bucket="work", Key="models/sentiment/v2/model.tar.gz", Body=b"broken")
        assert registry.current("sentiment").version == "v1"


def test_archives_extract_on_a_python_without_tar_filters(tmp_path, monkeypatch):
    """Debian 12's Python 3.11.2 has no tarfile filters: extraction must not depend on them, and stays safe."""
    from spotbot.services.models import extract_archive

    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"bot": "sentiment", "format": "snownlp"}))
    archive = pack_model_dir(folder, tmp_path / "model.tar.gz")
    monkeypatch.delattr(tarfile, "data_filter", raising=False)  # absent already on such a Python
    monkeypatch.setattr(tarfile.TarFile, "extractall", _extractall_without_filter(tarfile.TarFile.extractall))
    extract_archive(archive, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "model.json").read_text())["format"] == "snownlp"
    unsafe = tmp_path / "unsafe.tar.gz"
    with tarfile.open(unsafe, "w:gz") as tar:
        data = b"{}"
        info = tarfile.TarInfo("../escape.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ModelError, match="unsafe path"):
        extract_archive(unsafe, tmp_path / "out2")


def _extractall_without_filter(original):
    def extractall(self, path=".", members=None, *, numeric_owner=False, **kwargs):
        if kwargs:
            raise TypeError(f"TarFile.extractall() got an unexpected keyword argument {next(iter(kwargs))!r}")
        return original(self, path, members, numeric_owner=numeric_owner)

    return extractall
