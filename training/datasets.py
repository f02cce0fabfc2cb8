"""Labelled datasets: folders named by label, or a JSON Lines manifest (the shape Ground Truth writes)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from spotbot.domain import BadInputError, NotFoundError
from spotbot.adapters.s3.assets import parse_s3_uri
from spotbot.settings import Settings
from spotbot.adapters.wiring import open_asset_store

MANIFEST_SUFFIXES = (".jsonl", ".manifest", ".json")


class DatasetError(BadInputError):
    """The dataset cannot be trained on, and why."""


@dataclass(frozen=True)
class Example:
    source: str  # a local path or s3:// URI
    label: str


def load_examples(location: str, file_types: tuple[str, ...], settings: Settings) -> list[Example]:
    """Examples from a folder of label folders, or from a manifest file; checked for training."""
    if location.lower().endswith(MANIFEST_SUFFIXES):
        examples = _from_manifest(location, settings)
    else:
        examples = _from_folders(location, file_types, settings)
    check_examples(examples, location)
    return examples


def check_examples(examples: list[Example], location: str) -> None:
    if not examples:
        raise DatasetError(f"dataset {location} is empty: expected label folders (e.g. {location}/cat/1.jpg) or a manifest")
    counts = Counter(e.label for e in examples)
    if len(counts) < 2:
        raise DatasetError(
            f"dataset {location} has one label only ({next(iter(counts))!r}, {len(examples)} examples): "
            "training needs at least two"
        )
    thin = sorted(label for label, n in counts.items() if n < 2)
    if thin:
        raise DatasetError(
            f"dataset {location}: label(s) {', '.join(map(repr, thin))} have a single example; "
            "each label needs at least two (one to train on, one to test on)"
        )


def _from_folders(location: str, file_types: tuple[str, ...], settings: Settings) -> list[Example]:
    try:
        store = open_asset_store(location, settings)
    except (FileNotFoundError, NotFoundError) as error:
        raise DatasetError(f"dataset {location} does not exist") from error
    if location.startswith("s3://"):
        root = parse_s3_uri(location)[1].rstrip("/")
    else:
        root = store.source
    examples = []
    for asset in store.scan(file_types):
        relative = _relative(asset.uri, root, location.startswith("s3://"))
        if len(relative.parts) < 2:
            continue  # files beside the label folders have no label
        examples.append(Example(source=asset.uri, label=relative.parts[0]))
    return examples


def _relative(uri: str, root: str, is_s3: bool) -> PurePosixPath:
    if is_s3:
        key = parse_s3_uri(uri)[1]
        return PurePosixPath(key[len(root) :].lstrip("/"))
    return PurePosixPath(Path(uri).relative_to(root).as_posix())


def _from_manifest(location: str, settings: Settings) -> list[Example]:
    text = read_bytes(location, settings, max_bytes=256 * 2**20).decode("utf-8-sig")
    base = location.rsplit("/", 1)[0] if "/" in location else "."
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{location} line {number} is not JSON: {error.msg}") from error
        if not isinstance(entry, dict):
            raise DatasetError(f"{location} line {number} is not a JSON object")
        source = entry.get("source") or entry.get("source-ref")
        if not isinstance(source, str) or not source:
            raise DatasetError(f"{location} line {number} has no source (expected \"source\" or \"source-ref\")")
        label = _label_of(entry)
        if label is None:
            raise DatasetError(
                f"{location} line {number} has no label: expected a \"label\" field, or a Ground Truth "
                "\"<name>-metadata\" object with \"class-name\""
            )
        if not source.startswith("s3://") and not Path(source).is_absolute():
            source = f"{base}/{source}" if base.startswith("s3://") else str((Path(base) / source).resolve())
        examples.append(Example(source=source, label=label))
    return examples


def _label_of(entry: dict[str, Any]) -> str | None:
    label = entry.get("label")
    if isinstance(label, (str, int)) and str(label).strip():
        return str(label).strip()
    for key, value in entry.items():
        if key.endswith("-metadata") and isinstance(value, dict) and value.get("class-name"):
            return str(value["class-name"])
    return None


def read_bytes(uri: str, settings: Settings, max_bytes: int) -> bytes:
    """One file's bytes, local or in S3."""
    from spotbot.services.decoding import AssetError
    from spotbot.domain import AssetRef

    if uri.startswith("s3://"):
        from spotbot.adapters.s3.assets import S3AssetStore

        bucket, _ = parse_s3_uri(uri)
        store = S3AssetStore(f"s3://{bucket}/", endpoint_url=settings.s3_endpoint_url)
        try:
            return store.read(AssetRef(uri=uri, etag="*", size=0), max_bytes)
        except AssetError as error:
            raise DatasetError(f"cannot read {uri}: {error}") from error
    try:
        data = Path(uri).read_bytes()
    except OSError as error:
        raise DatasetError(f"cannot read {uri}: {error.strerror or error}") from error
    if len(data) > max_bytes:
        raise DatasetError(f"{uri} is larger than {max_bytes} bytes")
    return data
