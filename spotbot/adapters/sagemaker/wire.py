"""The wire format between a bot runtime client (SageMakerRuntime) and the serving process (bots.serve).

One definition for both sides. A request carries a micro-batch of instances; the response holds
one entry per instance, in order.

Requests, by the bot's input kind:

- text bots: ``application/json`` ``{"instances": ["text 1", "text 2", ...]}``
- image bots: ``application/x-spotbot-images``, a length-prefixed binary batch of encoded image
  files (PNG, JPEG, ... as read from disk): a 4-byte big-endian item count, then per item a 4-byte
  big-endian length and that many bytes. Or ``application/json``
  ``{"instances": [{"b64": "<base64 of the file>"}, ...]}`` (a third larger; handy from curl).
- bytes bots: ``application/x-spotbot-bytes`` (the same framing) or the same base64 JSON.

Response (``application/json``), status 200 whenever the request itself was well formed:
``{"predictions": [{"tags": [{"label": ..., "score": ..., ...}]} | {"error": "message"}, ...],
"model_version": "..."}``. A bad instance gets an ``error`` entry; the others are still tagged.
A bad request gets a 4xx with ``{"error": msg, "message": msg, "code": Code}`` (``message`` and
``code`` are the keys botocore reads into a ClientError).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spotbot.domain import Tag

JSON = "application/json"
IMAGE_BATCH = "application/x-spotbot-images"
BYTES_BATCH = "application/x-spotbot-bytes"

_U32 = struct.Struct(">I")
_JSON_OPEN, _JSON_CLOSE = b'{"instances":[', b"]}"
JSON_OVERHEAD = len(_JSON_OPEN) + len(_JSON_CLOSE)  # bytes of a JSON request besides its instances
BINARY_OVERHEAD = _U32.size  # bytes of a binary batch besides its items
BINARY_ITEM_OVERHEAD = _U32.size  # the length prefix of each item


class WireError(ValueError):
    """The request as a whole is malformed (bad JSON, a truncated batch, a count mismatch): HTTP 400."""


@dataclass(frozen=True)
class InstanceError:
    """The endpoint could not tag one instance: what it said about it."""

    message: str


def media_type(content_type: str | None) -> str:
    """'application/json; charset=utf-8' -> 'application/json'."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def request_content_type(input_kind: str) -> str:
    """The content type a client sends for a bot of this input kind."""
    return {"text": JSON, "image": IMAGE_BATCH, "bytes": BYTES_BATCH}[input_kind]


def accepted_content_types(input_kind: str) -> tuple[str, ...]:
    """Every content type the server takes for a bot of this input kind."""
    return {"text": (JSON,), "image": (IMAGE_BATCH, JSON), "bytes": (BYTES_BATCH, JSON)}[input_kind]


# binary batches


def encode_binary_batch(items: Sequence[bytes]) -> bytes:
    parts = [_U32.pack(len(items))]
    for item in items:
        parts.append(_U32.pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def decode_binary_batch(body: bytes) -> list[bytes]:
    if len(body) < _U32.size:
        raise WireError(f"binary batch is {len(body)} bytes: too short to hold its 4-byte item count")
    (count,) = _U32.unpack_from(body, 0)
    items: list[bytes] = []
    offset = _U32.size
    for i in range(count):
        if offset + _U32.size > len(body):
            raise WireError(f"binary batch says {count} items but ends after {i} (no length prefix for item {i})")
        (size,) = _U32.unpack_from(body, offset)
        offset += _U32.size
        if offset + size > len(body):
            raise WireError(
                f"binary batch says {count} items but item {i} is truncated "
                f"({len(body) - offset} of its {size} bytes present)"
            )
        items.append(body[offset : offset + size])
        offset += size
    if offset != len(body):
        raise WireError(f"binary batch says {count} items but {len(body) - offset} bytes follow the last one")
    return items


# JSON requests


def encode_text_instance(text: str) -> bytes:
    """One text as a JSON string, UTF-8 (the client sizes payloads with these)."""
    try:
        return json.dumps(text, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it, the server reports that instance as bad text
        return json.dumps(text).encode("ascii")


def encode_b64_instance(data: bytes) -> bytes:
    return b'{"b64":"' + base64.b64encode(data) + b'"}'


def join_json_instances(encoded: Sequence[bytes]) -> bytes:
    """A JSON request body from instances already encoded with encode_*_instance."""
    return _JSON_OPEN + b",".join(encoded) + _JSON_CLOSE


def json_request_size(encoded_sizes: Sequence[int]) -> int:
    return JSON_OVERHEAD + sum(encoded_sizes) + max(0, len(encoded_sizes) - 1)


def binary_request_size(item_sizes: Sequence[int]) -> int:
    return BINARY_OVERHEAD + sum(BINARY_ITEM_OVERHEAD + n for n in item_sizes)


def decode_json_instances(body: bytes) -> list[Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise WireError(f"body is not valid JSON: {error}") from None
    if not isinstance(document, dict) or "instances" not in document:
        raise WireError('JSON body must be an object with an "instances" list')
    instances = document["instances"]
    if not isinstance(instances, list):
        raise WireError(f'"instances" must be a list, not {type(instances).__name__}')
    return instances


def b64_instance_bytes(instance: Any) -> bytes:
    """The bytes of a {"b64": "..."} instance. Raises ValueError naming what is wrong with it."""
    if not (isinstance(instance, dict) and isinstance(instance.get("b64"), str)):
        raise ValueError('instance must be an object {"b64": "<base64 of the file>"}')
    try:
        return base64.b64decode(instance["b64"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"instance is not valid base64: {error}") from None


# responses


def encode_predictions(entries: Sequence[list[Tag] | InstanceError], model_version: str) -> bytes:
    predictions = [
        {"error": entry.message} if isinstance(entry, InstanceError) else {"tags": [t.model_dump(mode="json") for t in entry]}
        for entry in entries
    ]
    return json.dumps({"predictions": predictions, "model_version": model_version}, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Predictions:
    entries: list[list[Tag] | InstanceError]
    model_version: str | None


def decode_predictions(body: bytes, expected: int) -> Predictions:
    """The response to a request of `expected` instances. Raises WireError if it is not one."""
    try:
        document = json.loads(body)
        raw = document["predictions"]
        if not isinstance(raw, list):
            raise TypeError("predictions is not a list")
        entries: list[list[Tag] | InstanceError] = []
        for entry in raw:
            if "error" in entry:
                entries.append(InstanceError(str(entry["error"])))
            else:
                entries.append([Tag.model_validate(t) for t in entry["tags"]])
    except (ValueError, TypeError, KeyError) as error:  # pydantic's ValidationError is a ValueError
        raise WireError(f"response is not a predictions document: {type(error).__name__}: {error}") from None
    if len(entries) != expected:
        raise WireError(f"response holds {len(entries)} predictions for {expected} instances")
    version = document.get("model_version")
    return Predictions(entries, str(version) if version else None)


def error_body(message: str, code: str) -> bytes:
    return json.dumps({"error": message, "message": message, "code": code}, ensure_ascii=False).encode("utf-8")
