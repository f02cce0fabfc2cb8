"""Byte-sized, retried bulk writes to OpenSearch."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError


MiB = 1024 * 1024
DEFAULT_BULK_BYTES = 5 * MiB
MAX_BULK_BYTES = 10 * MiB  # http.max_content_length of the smallest Amazon OpenSearch Service instances
_BULK_FILTER_PATH = "took,errors,items.*._index,items.*._id,items.*.status,items.*.error"


class BulkError(RuntimeError):
    """Some documents of a bulk request were not written; `failures` names each one."""

    def __init__(self, failures: list[dict[str, Any]], note: str = "") -> None:
        self.failures = failures
        shown = "; ".join(
            f"{f['index']}/{f['id']}: {f['status']} {f['type']}: {f['reason']}" for f in failures[:5]
        )
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"bulk write failed for {len(failures)} document(s){note}: {shown}{more}")


class BulkWriter:
    """Collects index actions as NDJSON and sends them in bulk requests of at most max_bytes.

    A request answered 429 is retried whole; items answered 429 are retried alone; both with
    exponential backoff and jitter, up to max_retries times. Any other item error raises BulkError.
    An action larger than max_bytes on its own is sent alone.
    """

    def __init__(
        self,
        client: OpenSearch,
        max_bytes: int = DEFAULT_BULK_BYTES,
        *,
        max_retries: int = 8,
        retry_base_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        check_bulk_bytes(max_bytes)
        self.client = client
        self.max_bytes = max_bytes
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.indices: set[str] = set()  # every index written to
        self._actions: list[bytes] = []
        self._size = 0

    def index(self, index: str, doc_id: str, doc: dict[str, Any]) -> None:
        action = (
            json.dumps({"index": {"_index": index, "_id": doc_id}}, ensure_ascii=False, separators=(",", ":"))
            + "\n"
            + json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
            + "\n"
        ).encode()
        if self._actions and self._size + len(action) > self.max_bytes:
            self.flush()
        self._actions.append(action)
        self._size += len(action)
        self.indices.add(index)

    def flush(self) -> None:
        actions, self._actions, self._size = self._actions, [], 0
        if actions:
            self._send(actions)

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()

    def _send(self, actions: list[bytes]) -> None:
        pending = actions
        attempt = 0
        while True:
            try:
                response = self.client.bulk(body=b"".join(pending), refresh="false", filter_path=_BULK_FILTER_PATH)
            except TransportError as e:
                if e.status_code != 429:
                    raise
                if attempt >= self.max_retries:
                    failures = [
                        {**_target(action), "status": 429, "type": str(e.error), "reason": "the whole request was rejected"}
                        for action in pending
                    ]
                    raise BulkError(failures, note=f" after {attempt} retries") from e
                self._backoff(attempt)
                attempt += 1
                continue
            if not response.get("errors"):
                return
            rejected: list[bytes] = []
            rejected_failures: list[dict[str, Any]] = []
            failures: list[dict[str, Any]] = []
            for action, item in zip(pending, response.get("items", []), strict=True):
                (result,) = item.values()
                status = int(result.get("status", 0))
                if status < 300:
                    continue
                error = result.get("error") or {}
                failure = {
                    "index": result.get("_index"),
                    "id": result.get("_id"),
                    "status": status,
                    "type": error.get("type", "error") if isinstance(error, dict) else "error",
                    "reason": error.get("reason", "") if isinstance(error, dict) else str(error),
                }
                if status == 429:
                    rejected.append(action)
                    rejected_failures.append(failure)
                else:
                    failures.append(failure)
            if failures:
                raise BulkError(failures)
            if not rejected:
                return
            if attempt >= self.max_retries:
                raise BulkError(rejected_failures, note=f" after {attempt} retries")
            self._backoff(attempt)
            attempt += 1
            pending = rejected

    def _backoff(self, attempt: int) -> None:
        delay = min(self.retry_max_s, self.retry_base_s * 2**attempt)
        time.sleep(random.uniform(delay / 2, delay))


def _target(action: bytes) -> dict[str, Any]:
    meta = json.loads(action.split(b"\n", 1)[0])["index"]
    return {"index": meta["_index"], "id": meta["_id"]}


def check_bulk_bytes(max_bytes: int) -> int:
    if not 1 <= max_bytes <= MAX_BULK_BYTES:
        raise ValueError(f"bulk byte budget must be 1 to {MAX_BULK_BYTES} bytes (10 MiB), got {max_bytes}")
    return max_bytes
