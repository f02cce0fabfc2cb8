"""Wiring of the cloud watch adapters, shared by the watch consumer and the API's /watches routes."""

from __future__ import annotations

from collections.abc import Callable

import boto3
from botocore.exceptions import ClientError

from spotbot.adapters.s3.watches import S3WatchRegistry
from spotbot.adapters.sqs.watch_queue import SqsWatchQueue
from spotbot.settings import Settings


def watch_adapters(settings: Settings) -> tuple[S3WatchRegistry, SqsWatchQueue]:
    """The registry and the queue, for the consumer and the API's /watches routes alike."""
    if not (settings.work_bucket and settings.watch_queue_url and settings.watch_dead_letter_queue_url):
        raise ValueError("SPOTBOT_WORK_BUCKET, SPOTBOT_WATCH_QUEUE_URL and SPOTBOT_WATCH_DEAD_LETTER_QUEUE_URL must be set")
    s3 = _s3(settings)
    sqs = boto3.client("sqs", region_name=settings.region)
    cloudwatch = boto3.client("cloudwatch", region_name=settings.region)
    queue = SqsWatchQueue(sqs, cloudwatch, settings.watch_queue_url, settings.watch_dead_letter_queue_url)
    return S3WatchRegistry(s3, settings.work_bucket), queue


def object_exists(settings: Settings) -> Callable[[str], bool]:
    """A HEAD of an s3:// URI: True when the object is there (a 403 or an outage is not 'absent': True)."""
    s3 = _s3(settings)

    def exists(uri: str) -> bool:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            return error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound")
        return True

    return exists


def _s3(settings: Settings):  # the one S3 client shape of the watch adapters
    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.region)
