"""The one home of configuration: read from SPOTBOT_* environment variables, then passed in."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPOTBOT_", frozen=True)

    home: Path = Field(default=Path("~/.spotbot"), description="Local state: the SQLite index and job locks")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description="Worker processes")
    max_shard_size: int = Field(default=1000, ge=1, description="Largest shard when the shard size is automatic")
    max_asset_bytes: int = Field(default=64 * 2**20, ge=1, description="Larger assets fail without being read")
    max_image_pixels: int = Field(default=50_000_000, ge=1, description="Larger images fail without being decoded")
    max_text_bytes: int = Field(default=2**20, ge=1, description="Larger text assets fail")
    text_encodings: list[str] = Field(
        default=["utf-8"], description="Encodings tried in order for text assets, e.g. utf-8,gb18030"
    )
    read_concurrency: int = Field(default=8, ge=1, description="Assets read and decoded ahead, per worker")
    write_batch: int = Field(default=256, ge=1, description="Tag records per index transaction")
    write_interval_seconds: float = Field(default=1.0, gt=0, description="Longest wait before buffered tags are written")
    s3_endpoint_url: str | None = Field(default=None, description="Custom S3 endpoint (MinIO, moto)")
    models: str = Field(default="~/.spotbot/models", description="Model store: a folder or s3://bucket/prefix")

    # The cloud path: set by the stack on every Lambda and Batch job (AWS_ENDPOINT_URL points boto3 at moto in tests)
    region: str | None = Field(default=None, description="AWS region; default: boto3's")
    opensearch_endpoint: str | None = Field(default=None, description="OpenSearch domain endpoint (https://...)")
    opensearch_prefix: str = Field(default="spotbot", description="Prefix of the OpenSearch index names")
    opensearch_sigv4: bool = Field(default=True, description="Sign OpenSearch requests with SigV4 (off for local tests)")
    work_bucket: str | None = Field(default=None, description="Bucket for shard manifests and job state")
    state_machine_arn: str | None = Field(default=None, description="The tag-assets state machine")
    batch_job_queue: str | None = Field(default=None, description="AWS Batch job queue of the Spot workers")
    job_definitions: dict[str, str] = Field(
        default_factory=dict,
        description='Batch job definition per bot, JSON: {"car-model": "arn:...", "*": "arn:..."} ("*": every other bot)',
    )
    default_output: str | None = Field(
        default=None, description="Output prefix of cloud jobs that name none; default s3://<work bucket>/output"
    )
    watch_queue_url: str | None = Field(default=None, description="SQS queue of S3 ObjectCreated events for watches")
    watch_dead_letter_queue_url: str | None = Field(
        default=None, description="SQS queue where watch events that failed their retries go, with the error"
    )
    default_workers: int = Field(default=16, ge=1, le=1000, description="Concurrent Spot workers of cloud jobs that name none")
    sagemaker_role_arn: str | None = Field(
        default=None, description="IAM role SageMaker endpoints run as (pulls the image, reads the model data)"
    )
    builtin_bot_runtime: Literal["in-container", "sagemaker-endpoint"] = Field(
        default="in-container", description="Where built-in bots run: in the Spot worker, or behind a SageMaker endpoint"
    )
    serving_image_uri: str | None = Field(default=None, description="ECR image of bots/Dockerfile, for endpoint-served bots")
    endpoint_instance_type: str = Field(default="ml.m5.large", description="Endpoint instance type of bots that name none")
    scan_time_budget_seconds: float = Field(default=600.0, gt=0, description="Scanner stops and hands on a token after this")
    scan_parallelism: int = Field(default=16, ge=1, description="Concurrent ListObjectsV2 calls in the scanner")

    @property
    def index_path(self) -> Path:
        return self.home.expanduser() / "index.sqlite3"

    @property
    def model_cache_dir(self) -> Path:
        return self.home.expanduser() / "model-cache"

    @property
    def locks_dir(self) -> Path:
        return self.home.expanduser() / "locks"


def environment_for(**values: object) -> dict[str, str]:
    """SPOTBOT_* variables that set these Settings fields (the deployed Lambdas' and Batch jobs' environment).

    Names are Settings field names; an unknown one is refused. Dicts and lists are JSON (how
    pydantic-settings reads complex fields), booleans `true`/`false`, None leaves the field out.
    """
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ValueError(f"not Settings fields: {', '.join(unknown)} (spotbot.settings.Settings names them)")
    prefix = Settings.model_config["env_prefix"]
    environment: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, (dict, list, tuple)):
            text = json.dumps(value if not isinstance(value, tuple) else list(value), separators=(",", ":"))
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        environment[f"{prefix}{name.upper()}"] = text
    return environment
