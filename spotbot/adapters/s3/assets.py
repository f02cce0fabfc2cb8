"""Assets under an S3 prefix."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from spotbot.domain.limits import AssetError, too_large
from spotbot.adapters.s3.keys import asset_of, is_wanted, wanted_types
from spotbot.domain import AssetRef, NotFoundError, UnavailableError
from spotbot.ports import LocalFile


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"S3 URI {uri!r} names no bucket")
    return bucket, key


def s3_client(
    endpoint_url: str | None = None,
    max_pool_connections: int = 16,
    *,
    connect_timeout: float = 60,
    read_timeout: float = 60,
    max_attempts: int = 8,
) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            max_pool_connections=max_pool_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    )


# Answers that say S3 (or our access to it) is down, not that one object is bad: the job stops, no asset fails
_UNAVAILABLE_CODES = {
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling", "ThrottlingException",
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "TokenRefreshRequired", "500", "502", "503", "504",
}


def s3_unavailable(error: BotoCoreError | ClientError, what: str) -> UnavailableError:
    """The job-level error for an S3 that is down, unreachable or refusing our credentials."""
    if isinstance(error, NoCredentialsError):
        return UnavailableError(f"cannot {what}: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)")
    return UnavailableError(f"cannot {what}: S3 is unavailable ({error}); run the job again when it is back")


def is_unavailable(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in _UNAVAILABLE_CODES or status >= 500


class S3AssetStore:
    def __init__(self, source: str, client: Any | None = None, endpoint_url: str | None = None, **client_options: Any) -> None:
        self.bucket, self.prefix = parse_s3_uri(source)
        self.source = source
        self.client = client or s3_client(endpoint_url, **client_options)

    def scan(self, file_types: tuple[str, ...]) -> Iterator[AssetRef]:
        wanted = wanted_types(file_types)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    if is_wanted(item["Key"], wanted):
                        yield asset_of(self.bucket, item)
        except ClientError as error:
            if is_unavailable(error):
                raise s3_unavailable(error, f"list {self.source}") from None
            code = error.response.get("Error", {}).get("Code", "")
            raise NotFoundError(f"cannot list {self.source}: {code} {error}") from None
        except BotoCoreError as error:
            raise s3_unavailable(error, f"list {self.source}") from None

    def open_file(self, asset: AssetRef, max_bytes: int, spool_dir: Path) -> LocalFile:
        """A temporary copy in spool_dir, streamed 1 MiB at a time (a 2-hour video never sits in memory)."""
        _, key = parse_s3_uri(asset.uri)
        spool_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="spotbot-", suffix=PurePosixPath(key).suffix.lower(), dir=spool_dir)
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as file:
                response = self._get(asset, key, max_bytes, "max_video_bytes")
                try:
                    shutil.copyfileobj(response["Body"], file, 2**20)
                except BotoCoreError as error:  # the connection broke mid-object: S3 is down, not the asset bad
                    raise s3_unavailable(error, f"read {asset.uri}") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return LocalFile(path=path, temporary=True)

    def _get(self, asset: AssetRef, key: str, max_bytes: int, setting: str) -> Any:
        """The object's GetObject response, its body unread; over max_bytes (`setting` names the limit): AssetError."""
        try:
            version_check = {"IfMatch": f'"{asset.etag}"'} if asset.etag not in ("", "*") else {}
            response = self.client.get_object(Bucket=self.bucket, Key=key, **version_check)
        except ClientError as error:
            if is_unavailable(error):
                raise s3_unavailable(error, f"read {asset.uri}") from None
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise AssetError("object changed since the scan (ETag differs); run the job again") from error
            raise AssetError(f"cannot read object: {code or error}") from error
        except BotoCoreError as error:  # no connection, a timeout, no credentials: S3 is down, not the asset bad
            raise s3_unavailable(error, f"read {asset.uri}") from None
        if response["ContentLength"] > max_bytes:
            response["Body"].close()
            raise AssetError(too_large(response["ContentLength"], max_bytes, setting))
        return response

    def read(self, asset: AssetRef, max_bytes: int) -> bytes:
        _, key = parse_s3_uri(asset.uri)
        response = self._get(asset, key, max_bytes, "max_asset_bytes")
        try:
            return response["Body"].read()
        except BotoCoreError as error:  # the connection broke mid-object: S3 is down, not the asset bad
            raise s3_unavailable(error, f"read {asset.uri}") from None
