"""S3 Inventory as a source: a manifest made here (CSV, and Parquet with pyarrow) gives the tasks a listing gives."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from pathlib import Path
from urllib.parse import quote_plus

import boto3
import pytest
from moto import mock_aws

from spotbot.adapters.s3.assets import S3AssetStore
from spotbot.adapters.s3.inventory import InventoryAssetStore, InventoryError, is_inventory_source
from spotbot.adapters.wiring import open_asset_store
from spotbot.domain import plan_tasks
from spotbot.settings import Settings

# more than one shard of 100; paging a listing past 1,000 keys is tests/test_s3_source.py's
KEYS = [f"photos/{i:04d}.jpg" for i in range(1, 301)] + ["photos/with space+plus.JPG", "photos/中文.png",
        "photos/notes.txt", "photos/folder/", "other/0001.jpg"]  # fmt: skip
CSV_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
IMAGES = (".jpg", ".jpeg", ".png")
IMAGE_KEYS = sum(1 for key in KEYS if key.lower().endswith(IMAGES))  # photos/notes.txt and the folder are not


@pytest.fixture
def s3(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="assets")
        client.create_bucket(Bucket="inventory")
        for key in KEYS:
            client.put_object(Bucket="assets", Key=key, Body=key.encode())
        yield client


def inventory_rows(client) -> list[dict]:
    rows = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="assets"):
        for item in page["Contents"]:
            rows.append({"bucket": "assets", "key": item["Key"], "size": item["Size"], "etag": item["ETag"].strip('"')})
    # what an inventory of a versioned bucket also holds: an old version and a delete marker
    rows.append({"bucket": "assets", "key": "photos/0001.jpg", "size": 5, "etag": "old", "latest": "false"})
    rows.append({"bucket": "assets", "key": "photos/deleted.jpg", "size": 0, "etag": "", "marker": "true"})
    return rows


def csv_file(rows: list[dict]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL)
    for r in rows:
        writer.writerow([r["bucket"], quote_plus(r["key"], safe="/"), "v1", r.get("latest", "true"), r.get("marker", "false"),
                         r["size"], "2026-11-01T00:00:00.000Z", r["etag"]])
    return gzip.compress(text.getvalue().encode())


def put_manifest(client, files: list[bytes], file_format: str, schema: str, suffix: str) -> str:
    base = "assets/config/2026-11-30T00-00Z"
    entries = []
    for n, data in enumerate(files):
        key = f"assets/config/data/part-{n}.{suffix}"
        client.put_object(Bucket="inventory", Key=key, Body=data)
        entries.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = {"sourceBucket": "assets", "destinationBucket": "arn:aws:s3:::inventory", "version": "2016-11-30",
                "fileFormat": file_format, "fileSchema": schema, "files": entries}
    client.put_object(Bucket="inventory", Key=f"{base}/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://inventory/{base}/manifest.json"


def test_a_csv_inventory_plans_the_same_tasks_as_a_listing(s3):
    rows = inventory_rows(s3)
    manifest = put_manifest(s3, [csv_file(rows[:200]), csv_file(rows[200:])], "CSV", CSV_SCHEMA, "csv.gz")
    listed = sorted(S3AssetStore("s3://assets/", client=s3).scan(IMAGES), key=lambda a: a.uri)
    store = InventoryAssetStore(manifest, client=s3)
    from_inventory = sorted(store.scan(IMAGES), key=lambda a: a.uri)
    assert from_inventory == listed  # keys decoded, old versions and delete markers left out
    assert len(listed) == IMAGE_KEYS
    by_listing = plan_tasks("j", listed, {}, next_shard=0, shard_size=100)
    by_inventory = plan_tasks("j", from_inventory, {}, next_shard=0, shard_size=100)
    assert [(t.asset, t.etag, t.shard) for t in by_inventory.tasks] == [(t.asset, t.etag, t.shard) for t in by_listing.tasks]
    asset = next(a for a in from_inventory if a.uri.endswith("with space+plus.JPG"))
    assert store.read(asset, 1000) == b"photos/with space+plus.JPG"  # reads come from the source bucket


def test_a_prefix_after_the_manifest_filters_keys(s3):
    manifest = put_manifest(s3, [csv_file(inventory_rows(s3))], "CSV", CSV_SCHEMA, "csv.gz")
    assert is_inventory_source(f"{manifest}#other/")
    store = open_asset_store(f"{manifest}#other/", Settings())
    store._client = s3
    assert [a.uri for a in store.scan(IMAGES)] == ["s3://assets/other/0001.jpg"]


def test_a_parquet_inventory_plans_the_same_tasks(s3):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = inventory_rows(s3)
    table = pa.table({
        "bucket": [r["bucket"] for r in rows], "key": [r["key"] for r in rows], "size": [r["size"] for r in rows],
        "is_latest": [r.get("latest", "true") == "true" for r in rows],
        "is_delete_marker": [r.get("marker", "false") == "true" for r in rows], "e_tag": [r["etag"] for r in rows],
    })  # fmt: skip
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    manifest = put_manifest(s3, [buffer.getvalue()], "Parquet", "message s3.inventory { required binary bucket (STRING); }", "parquet")
    listed = sorted(S3AssetStore("s3://assets/", client=s3).scan(IMAGES), key=lambda a: a.uri)
    assert sorted(InventoryAssetStore(manifest, client=s3).scan(IMAGES), key=lambda a: a.uri) == listed


def test_a_local_copy_of_an_inventory_is_read_from_its_folder_tree(s3, tmp_path: Path):
    rows = inventory_rows(s3)
    data = csv_file(rows)
    (tmp_path / "assets/config/data").mkdir(parents=True)
    (tmp_path / "assets/config/data/part-0.csv.gz").write_bytes(data)
    manifest_dir = tmp_path / "assets/config/2026-11-30T00-00Z"
    manifest_dir.mkdir()
    manifest = {"sourceBucket": "assets", "fileFormat": "CSV", "fileSchema": CSV_SCHEMA,
                "files": [{"key": "assets/config/data/part-0.csv.gz", "MD5checksum": hashlib.md5(data).hexdigest()}]}
    (manifest_dir / "manifest.json").write_text(json.dumps(manifest))
    assert len(list(InventoryAssetStore(str(manifest_dir / "manifest.json")).scan(IMAGES))) == IMAGE_KEYS


def test_bad_inventories_get_clear_errors(s3):
    good = csv_file(inventory_rows(s3))
    manifest = put_manifest(s3, [good], "CSV", CSV_SCHEMA, "csv.gz")
    s3.put_object(Bucket="inventory", Key="assets/config/data/part-0.csv.gz", Body=good[:-10])  # torn data file
    with pytest.raises(InventoryError, match="does not match its MD5 checksum"):
        list(InventoryAssetStore(manifest, client=s3).scan(IMAGES))
    no_key = put_manifest(s3, [good], "CSV", "Bucket, Size", "csv.gz")
    with pytest.raises(InventoryError, match="has no key column"):
        list(InventoryAssetStore(no_key, client=s3).scan(IMAGES))
    orc = put_manifest(s3, [good], "ORC", CSV_SCHEMA, "orc")
    with pytest.raises(InventoryError, match="'ORC' is not supported"):
        list(InventoryAssetStore(orc, client=s3).scan(IMAGES))
    with pytest.raises(InventoryError, match="cannot read"):
        list(InventoryAssetStore("s3://inventory/missing/manifest.json", client=s3).scan(IMAGES))
    with pytest.raises(InventoryError, match="not an S3 Inventory manifest"):
        InventoryAssetStore("s3://inventory/a.csv")
