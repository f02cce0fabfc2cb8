"""Watch registrations as small JSON objects in the work bucket: `watches/<watch_id>.json`."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from spotbot.domain.watches import Watch

PREFIX = "watches/"


class S3WatchRegistry:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def save_watch(self, watch: Watch) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=f"{PREFIX}{watch.watch_id}.json", Body=watch.model_dump_json().encode(),
            ContentType="application/json",
        )  # fmt: skip

    def get_watch(self, watch_id: str) -> Watch | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=f"{PREFIX}{watch_id}.json")["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        return Watch.model_validate_json(body)

    def list_watches(self) -> list[Watch]:
        watches = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=PREFIX):
            for item in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                watches.append(Watch.model_validate_json(body))
        return watches

    def delete_watch(self, watch_id: str) -> bool:
        if self.get_watch(watch_id) is None:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=f"{PREFIX}{watch_id}.json")
        return True
