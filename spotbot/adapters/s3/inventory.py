"""Assets from an S3 Inventory report: a 100 M-key bucket is planned from its inventory, never listed.

The source is the report's `manifest.json` (s3://dest-bucket/.../manifest.json, or a local copy whose
data files sit under the same folder tree), optionally followed by `#key/prefix/` to take only keys
under a prefix. CSV reports (gzip, no header, URL-encoded keys) need nothing more; Parquet reports
need pyarrow (`pip install spot-tagging-bot[inventory]`). Rows that are delete markers or older
versions are left out, so the assets are what a ListObjectsV2 listing of the bucket would give.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from spotbot.domain import AssetRef, BadInputError

MANIFEST_NAME = "manifest.json"


class InventoryError(BadInputError):
    """The inventory manifest or one of its data files cannot be used."""


def is_inventory_source(source: str) -> bool:
    return source.partition("#")[0].endswith(MANIFEST_NAME)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    from spotbot.adapters.s3.assets import parse_s3_uri as parse  # boto3 loads only when S3 is used

    return parse(uri)


def _csv_columns(schema: str) -> list[str]:
    return [name.strip() for name in schema.split(",")]


class InventoryAssetStore:
    from_inventory = True  # the estimate prices S3 Inventory instead of LIST requests
    def __init__(self, source: str, endpoint_url: str | None = None, client: Any | None = None) -> None:
        if not is_inventory_source(source):
            raise InventoryError(f"{source!r} is not an S3 Inventory manifest (expected …/{MANIFEST_NAME}[#prefix])")
        self.source = source
        self.manifest_uri, _, self.prefix = source.partition("#")
        self.endpoint_url = endpoint_url
        self._client = client
        self._readers: dict[str, Any] = {}  # an S3AssetStore per source bucket

    @property
    def client(self) -> Any:
        if self._client is None:
            from spotbot.adapters.s3.assets import s3_client

            self._client = s3_client(self.endpoint_url)
        return self._client

    def _get(self, bucket: str, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:  # noqa: BLE001 - any failure here means the report cannot be read
            raise InventoryError(f"cannot read s3://{bucket}/{key} of inventory {self.manifest_uri}: {error}") from error

    def manifest(self) -> dict[str, Any]:
        try:
            if self.manifest_uri.startswith("s3://"):
                raw = self._get(*parse_s3_uri(self.manifest_uri))
            else:
                raw = Path(self.manifest_uri).expanduser().read_bytes()
            manifest = json.loads(raw)
        except (OSError, ValueError) as error:
            raise InventoryError(f"cannot read inventory manifest {self.manifest_uri}: {error}") from error
        missing = [k for k in ("sourceBucket", "fileFormat", "fileSchema", "files") if k not in manifest]
        if missing:
            raise InventoryError(f"inventory manifest {self.manifest_uri} lacks {', '.join(missing)}")
        if manifest["fileFormat"].upper() not in ("CSV", "PARQUET"):
            raise InventoryError(f"inventory format {manifest['fileFormat']!r} is not supported (CSV or Parquet; not ORC)")
        return manifest

    def _data_file(self, manifest: dict[str, Any], entry: dict[str, Any]) -> bytes:
        key = entry["key"]
        if self.manifest_uri.startswith("s3://"):
            bucket = manifest.get("destinationBucket", "").removeprefix("arn:aws:s3:::") or parse_s3_uri(self.manifest_uri)[0]
            data = self._get(bucket, key)
        else:  # a local copy of the destination bucket: the key is relative to one of the manifest's folders
            folders = Path(self.manifest_uri).expanduser().resolve().parents
            path = next((folder / key for folder in folders if (folder / key).is_file()), None)
            if path is None:
                raise InventoryError(f"inventory data file {key} is not under any folder of {self.manifest_uri}")
            data = path.read_bytes()
        expected = entry.get("MD5checksum")
        if expected and hashlib.md5(data).hexdigest() != expected:  # noqa: S324 - S3's own checksum, not security
            raise InventoryError(f"inventory data file {key} does not match its MD5 checksum in the manifest")
        return data

    def _file_rows(self, manifest: dict[str, Any], entry: dict[str, Any]) -> Iterator[tuple[str, str, str, str, str, str]]:
        """(bucket, key, size, etag, is_latest, is_delete_marker) of each row of one data file, keys decoded."""
        parquet = manifest["fileFormat"].upper() == "PARQUET"
        columns = [] if parquet else [c.lower() for c in _csv_columns(manifest["fileSchema"])]
        for name in ("bucket", "key", "size") if not parquet else ():
            if name not in columns:
                raise InventoryError(f"inventory schema {manifest['fileSchema']!r} has no {name} column")
        at = {name: columns.index(name) if name in columns else None for name in ("bucket", "key", "size", "etag", "islatest", "isdeletemarker")}
        data = self._data_file(manifest, entry)
        if parquet:
            yield from _parquet_rows(data, entry["key"])
            return
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        get = {name: (lambda row, i=i: row[i]) if i is not None else (lambda row, d=default: d)
               for (name, i), default in zip(at.items(), ("", "", "0", "", "true", "false"))}  # fmt: skip
        bucket, key, size, etag, latest, marker = (get[n] for n in at)
        for row in csv.reader(io.StringIO(data.decode("utf-8"))):
            yield bucket(row), unquote_plus(key(row)), size(row), etag(row), latest(row), marker(row)  # CSV keys are URL-encoded

    def scan(self, file_types: tuple[str, ...]) -> Iterator[AssetRef]:
        manifest = self.manifest()
        for entry in manifest["files"]:
            yield from self.scan_file(manifest, entry, file_types)

    def scan_file(self, manifest: dict[str, Any], entry: dict[str, Any], file_types: tuple[str, ...]) -> Iterator[AssetRef]:
        """The assets of one data file of the report: the cloud scanner reads a report a file at a time."""
        wanted = tuple(t.lower() for t in file_types)
        for bucket, key, size, etag, latest, marker in self._file_rows(manifest, entry):
            if not key.startswith(self.prefix) or key.endswith("/") or not key.lower().endswith(wanted):
                continue
            if marker.lower() == "true" or latest.lower() == "false":  # delete markers and older versions: not listed
                continue
            # model_construct: the fields are S3's own, typed here; validating 100 M of them would double the read time
            yield AssetRef.model_construct(uri=f"s3://{bucket or manifest['sourceBucket']}/{key}", etag=etag.strip('"'),
                                           size=int(size or 0))  # fmt: skip

    def _reader(self, asset: AssetRef) -> Any:
        bucket, _ = parse_s3_uri(asset.uri)
        if bucket not in self._readers:
            from spotbot.adapters.s3.assets import S3AssetStore

            self._readers[bucket] = S3AssetStore(f"s3://{bucket}/", client=self.client)
        return self._readers[bucket]

    def read(self, asset: AssetRef, max_bytes: int) -> bytes:
        return self._reader(asset).read(asset, max_bytes)

    def open_file(self, asset: AssetRef, max_bytes: int, spool_dir: Path) -> Any:
        """A video as a temporary file, streamed from its bucket (spotbot.ports.FileAssetStore)."""
        return self._reader(asset).open_file(asset, max_bytes, spool_dir)


def _parquet_rows(data: bytes, key: str) -> Iterator[tuple[str, str, str, str, str, str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise InventoryError(
            f"inventory data file {key} is Parquet: install pyarrow (pip install spot-tagging-bot[inventory]) or use a CSV inventory"
        ) from error
    table = pq.read_table(io.BytesIO(data))
    names = {name.lower(): name for name in table.column_names}
    wanted = [n for n in ("bucket", "key", "size", "e_tag", "etag", "is_latest", "is_delete_marker") if n in names]
    for batch in table.select([names[n] for n in wanted]).to_batches():
        for row in batch.to_pylist():
            row = {k.lower(): v for k, v in row.items()}
            yield (row.get("bucket") or "", row.get("key") or "", str(row.get("size") or 0),
                   row.get("e_tag") or row.get("etag") or "", str(row.get("is_latest", True)).lower(),
                   str(row.get("is_delete_marker", False)).lower())  # fmt: skip
