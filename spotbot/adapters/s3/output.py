"""JSON Lines output under an S3 prefix: <prefix>/<job_id>/part-<shard>.jsonl and <prefix>/<job_id>/_job.json.

The same layout and line format as LocalOutputStore. An S3 object cannot be appended to, so a part
keeps the shard's lines in memory and every `append` uploads the whole part again with one
PutObject. That keeps the worker's crash-safety contract as it is: `append` returns only once the
lines are durable in S3, before the index marks their tasks DONE (spotbot/services/shard.py).

Cost, bounded by the shard: a part holds at most one line per asset of its shard, and the worker
appends once per flush (every write_batch records or write_interval_seconds), so a shard of N
records flushed k times costs k + 1 PutObjects (the +1: the rewrite when the shard starts, skipped
when the part is already as it should be) and at most k * N lines uploaded. E.g. 1,000 records of
~300 bytes flushed every second for 100 s: 101 PUTs, under 30 MB sent. Buffering appends across
flushes would save PUTs but break the contract (the index would say DONE for lines not in S3);
a multipart upload cannot be read until completed, so it does not help either.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from spotbot.adapters.local.output import encode_line  # one line format for both stores
from spotbot.adapters.s3.assets import parse_s3_uri, s3_client, s3_unavailable
from spotbot.domain import Job

JSON_LINES = "application/x-ndjson; charset=utf-8"


class S3PartFile:
    """One shard's part object. Holds its complete lines in memory between calls."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self._lines: list[str] | None = None  # what the object holds, as far as this instance knows

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def read_records(self) -> list[dict[str, Any]]:
        """The complete records in the object; a torn or invalid line is dropped."""
        records = []
        lines = self._download()
        self._lines = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
                self._lines.append(line)
        return records

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        lines = [encode_line(record) for record in records]
        if lines == self._lines:
            return  # already what the object holds (a resume whose part needs no repair): no PUT
        self._upload(lines)

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self._lines is None:
            self.read_records()
        self._upload([*(self._lines or []), *(encode_line(record) for record in records)])

    def close(self) -> None:
        self._lines = None  # every append is already in S3; only the memory goes

    def _download(self) -> list[str]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return []
            raise s3_unavailable(error, f"read {self.uri}") from None
        except BotoCoreError as error:
            raise s3_unavailable(error, f"read {self.uri}") from None
        text = body.decode("utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # torn: that asset is not DONE, so it is tagged again
        return lines

    def _upload(self, lines: list[str]) -> None:
        body = "".join(lines).encode("utf-8")
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body, ContentType=JSON_LINES)
        except (BotoCoreError, ClientError) as error:  # the sink is down: the shard stops, its tasks stay PENDING
            raise s3_unavailable(error, f"write {self.uri}") from None
        self._lines = lines


class S3OutputStore:
    def __init__(self, location: str, client: Any | None = None, endpoint_url: str | None = None, **client_options: Any) -> None:
        self.bucket, prefix = parse_s3_uri(location)
        self.prefix = prefix.strip("/")
        self.location = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.client = client or s3_client(endpoint_url, **client_options)

    def job_key(self, job_id: str, name: str) -> str:
        return f"{self.prefix}/{job_id}/{name}" if self.prefix else f"{job_id}/{name}"

    def part(self, job_id: str, shard: int) -> S3PartFile:
        return S3PartFile(self.client, self.bucket, self.job_key(job_id, f"part-{shard:05d}.jsonl"))

    def write_summary(self, job: Job) -> str:
        key = self.job_key(job.job_id, "_job.json")
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=job.model_dump_json(indent=2).encode("utf-8"), ContentType="application/json"
            )
        except (BotoCoreError, ClientError) as error:
            raise s3_unavailable(error, f"write s3://{self.bucket}/{key}") from None
        return f"s3://{self.bucket}/{key}"
