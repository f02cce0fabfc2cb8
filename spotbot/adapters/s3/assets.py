"""Assets under an S3 prefix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from spotbot.services.decoding import AssetError, too_large
from spotbot.adapters.s3.keys import asset_of, is_wanted, wanted_types
from spotbot.domain import AssetRef


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"S3 URI {uri!r} names no bucket")
    return bucket, key


def s3_client(endpoint_url: str | None = None, max_pool_connections: int = 16) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(retries={"mode": "adaptive", "max_attempts": 8}, max_pool_connections=max_pool_connections),
    )


class S3AssetStore:
    def __init__(self, source: str, client: Any | None = None, endpoint_url: str | None = None) -> None:
        self.bucket, self.prefix = parse_s3_uri(source)
        self.source = source
        self.client = client or s3_client(endpoint_url)

    def scan(self, file_types: tuple[str, ...]) -> Iterator[AssetRef]:
        wanted = wanted_types(file_types)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    if is_wanted(item["Key"], wanted):
                        yield asset_of(self.bucket, item)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise FileNotFoundError(f"cannot list {self.source}: {code} {error}") from error

    def read(self, asset: AssetRef, max_bytes: int) -> bytes:
        _, key = parse_s3_uri(asset.uri)
        try:
            version_check = {"IfMatch": f'"{asset.etag}"'} if asset.etag not in ("", "*") else {}
            response = self.client.get_object(Bucket=self.bucket, Key=key, **version_check)
            if response["ContentLength"] > max_bytes:
                response["Body"].close()
                raise AssetError(too_large(response["ContentLength"], max_bytes))
            return response["Body"].read()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise AssetError("object changed since the scan (ETag differs); run the job again") from error
            raise AssetError(f"cannot read object: {code or error}") from error
        except BotoCoreError as error:
            raise AssetError(f"cannot read object: {error}") from error
