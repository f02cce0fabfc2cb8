"""What a deployment is asked for: the CDK context parameters, with their defaults, in one place.

Values come from `cdk.json`'s "context", `cdk.context.json`, or `-c name=value` on the command line.
The command line gives strings (`-c max_vcpus=64`, `-c spot=false`, `-c instance_types=c6i,m6i` or a
JSON list), cdk.json gives JSON values: both are read here. The README's "Deploy to AWS" section has
the table; keep the two in step.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

from aws_cdk import aws_ec2 as ec2
from constructs import Node

from spotbot.bot import BUILTIN_CATALOGUE
from stacks.constants import (
    BOT_RUNTIMES,
    DEFAULT_ENDPOINT_INSTANCE_TYPE,
    ECS_RESERVED_MEMORY_MIB,
    IN_CONTAINER,
    WORKER_DOCKERFILE,
    WORKER_IMAGE_HAS_GPU_RUNTIME,
)

BUILTIN_BOT_NAMES = tuple(BUILTIN_CATALOGUE)
DEFAULT_BOTS = BUILTIN_BOT_NAMES
# Spread over several families: Spot capacity comes from many pools. x86_64 only: the worker image is.
DEFAULT_INSTANCE_TYPES = ("c6i", "m6i", "c7i", "m7i", "c5", "m5")
OPENSEARCH_INSTANCE_TYPE = re.compile(r"^[a-z0-9]+\.[a-z0-9]+\.search$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ConfigError(ValueError):
    """A context parameter with a value that cannot be deployed; the message names it."""


@dataclass(frozen=True)
class TaggingConfig:
    """Every context parameter the stack reads (name = context key)."""

    stack_name: str = "SpotTaggingBot"
    # network
    vpc_id: str | None = None  # import this VPC instead of creating one (no lookup: name its subnets too)
    vpc_private_subnet_ids: tuple[str, ...] = ()  # with vpc_id: private subnets with a route to a NAT
    vpc_availability_zones: tuple[str, ...] = ()  # with vpc_id: the subnets' zones, in the same order
    nat_gateways: int = 1
    # Spot compute
    max_vcpus: int = 256
    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    spot: bool = True
    on_demand_max_vcpus: int = 32  # the on-demand fallback environment behind the Spot one; 0: none
    gpu_instance_family: str | None = None  # e.g. "g4dn": GPU instances join the Spot environment
    gpu_bots: tuple[str, ...] = ()  # bots whose workers ask for one GPU (needs gpu_instance_family)
    worker_vcpus: int = 2
    worker_memory_mib: int = 3584  # 4096 never fits a 4-GiB host: ECS keeps some (constants.ECS_RESERVED_MEMORY_MIB)
    worker_attempt_timeout_minutes: int = 120
    worker_retry_attempts: int = 3
    runnable_timeout_minutes: int = 60  # a Batch job RUNNABLE this long with no capacity for it is cancelled
    # the whole execution (the Batch steps get an hour less): a 10,000-shard job at the default max_vcpus runs
    # about 80 waves of 128 workers; at minutes per shard that is hours, and 24 leaves room for Spot retries
    job_timeout_hours: int = 24
    bots: tuple[str, ...] = DEFAULT_BOTS  # one Batch job definition each; every other bot uses the "*" one
    source_buckets: tuple[str, ...] = ()  # existing buckets jobs may read assets from (the work bucket always)
    # search
    opensearch_instance_type: str = "t3.medium.search"
    opensearch_instance_count: int = 2
    opensearch_volume_gb: int = 20
    # bot endpoints
    builtin_bot_runtime: str = IN_CONTAINER  # or "sagemaker-endpoint"
    endpoint_instance_type: str = DEFAULT_ENDPOINT_INSTANCE_TYPE
    endpoint_instance_types: tuple[str, ...] = ()  # what endpoint configs may ask for; default: endpoint_instance_type
    endpoint_max_polls: int = 60  # "Check the endpoint" this many times (x 30 s) at most, then the job fails
    bot_image_repositories: tuple[str, ...] = ()  # ECR repositories of your own bots' images
    # API
    cognito_user_pool_arn: str | None = None  # Cognito instead of IAM auth on the API
    admin_principal: str | None = None  # IAM principal ARN that may cancel or change any job or bot
    api_rate_limit: int = 50  # requests per second, steady
    api_burst_limit: int = 100
    api_gateway_account_role: bool = True  # false: the account's API Gateway CloudWatch Logs role is managed elsewhere
    # housekeeping
    work_file_days: int = 14  # shard manifests under jobs/ expire after this
    log_retention_days: int = 30
    bundle_lambdas: bool = True  # false: Lambda assets hold the source only (fast offline synth, tests)

    @classmethod
    def from_context(cls, node: Node) -> TaggingConfig:
        values: dict[str, Any] = {}
        hints = get_type_hints(cls)
        for item in fields(cls):
            raw = node.try_get_context(item.name)
            if raw is None and item.name == "bundle_lambdas":
                raw = os.environ.get("SPOTBOT_BUNDLE_LAMBDAS")
            if raw is None:
                continue
            values[item.name] = _coerce(item.name, raw, hints[item.name])
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", self.stack_name):
            raise ConfigError(f"stack_name {self.stack_name!r}: letters, digits and '-', starting with a letter")
        unknown = sorted(set(self.bots) - set(BUILTIN_BOT_NAMES))
        if unknown:
            raise ConfigError(
                f"bots: {', '.join(unknown)} are not built in ({', '.join(BUILTIN_BOT_NAMES)}); "
                "register your own bots through the API (POST /bots) instead"
            )
        if not self.bots:
            raise ConfigError("bots: name at least one built-in bot")
        if self.gpu_bots and not self.gpu_instance_family:
            raise ConfigError("gpu_bots needs gpu_instance_family (e.g. -c gpu_instance_family=g4dn)")
        if self.gpu_bots and not WORKER_IMAGE_HAS_GPU_RUNTIME:
            raise ConfigError(
                f"gpu_bots: the worker image ({WORKER_DOCKERFILE}) carries onnxruntime for CPU only, so a GPU "
                "would be paid for and never used; leave gpu_bots empty, or build a GPU worker image first"
            )
        if set(self.gpu_bots) - set(self.bots):
            raise ConfigError("gpu_bots: each must also be in bots")
        if self.vpc_id and (not self.vpc_private_subnet_ids or len(self.vpc_private_subnet_ids) != len(self.vpc_availability_zones)):
            raise ConfigError(
                "vpc_id needs vpc_private_subnet_ids and vpc_availability_zones, one zone per subnet "
                "(the stack does no lookups, so synth needs no AWS credentials)"
            )
        if not self.vpc_id and (self.vpc_private_subnet_ids or self.vpc_availability_zones):
            raise ConfigError("vpc_private_subnet_ids and vpc_availability_zones go with vpc_id")
        for name in ("max_vcpus", "worker_vcpus", "worker_memory_mib", "worker_attempt_timeout_minutes",
                     "opensearch_instance_count", "opensearch_volume_gb", "api_rate_limit", "api_burst_limit",
                     "work_file_days", "log_retention_days", "runnable_timeout_minutes", "job_timeout_hours",
                     "endpoint_max_polls"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.on_demand_max_vcpus < 0 or self.nat_gateways < 0:
            raise ConfigError("on_demand_max_vcpus and nat_gateways cannot be negative")
        compute_optimized = any(name.startswith("c") for name in self.instance_types)  # 2 GiB per vCPU
        if compute_optimized and self.worker_memory_mib > self.worker_vcpus * 2048 - ECS_RESERVED_MEMORY_MIB:
            raise ConfigError(
                f"worker_memory_mib={self.worker_memory_mib} does not fit a {self.worker_vcpus}-vCPU host of the "
                f"c* families ({self.worker_vcpus * 2} GiB, of which ECS keeps about {ECS_RESERVED_MEMORY_MIB} MiB): "
                f"ask for at most {self.worker_vcpus * 2048 - ECS_RESERVED_MEMORY_MIB}"
            )
        if (self.job_timeout_hours - 1) * 60 < self.worker_attempt_timeout_minutes:
            raise ConfigError(
                "job_timeout_hours must leave an hour for the scan and finalize beyond one worker attempt "
                "(worker_attempt_timeout_minutes)"
            )
        if not 1 <= self.worker_retry_attempts <= 10:
            raise ConfigError("worker_retry_attempts: Batch allows 1 to 10 attempts")
        if not self.instance_types:
            raise ConfigError("instance_types: name at least one instance family or type")
        for name in (*self.instance_types, *([self.gpu_instance_family] if self.gpu_instance_family else [])):
            if "." not in name and not hasattr(ec2.InstanceClass, name.upper().replace("-", "_")):
                raise ConfigError(f"instance_types: {name!r} is neither an EC2 instance family (c6i) nor a type (c6i.large)")
        if not OPENSEARCH_INSTANCE_TYPE.match(self.opensearch_instance_type):
            raise ConfigError(f"opensearch_instance_type {self.opensearch_instance_type!r}: like t3.medium.search")
        if self.builtin_bot_runtime not in BOT_RUNTIMES:
            raise ConfigError(f"builtin_bot_runtime: one of {', '.join(BOT_RUNTIMES)}")
        if self.endpoint_instance_types and self.endpoint_instance_type not in self.endpoint_instance_types:
            raise ConfigError("endpoint_instance_types must include endpoint_instance_type (the default endpoints use)")
        for bucket in self.source_buckets:
            if not BUCKET_NAME.match(bucket):
                raise ConfigError(f"source_buckets: {bucket!r} is not a bucket name (give names, not s3:// URIs)")

    @property
    def zone_awareness(self) -> bool:
        return self.opensearch_instance_count >= 2

    @property
    def execution_timeout_hours(self) -> int:
        return self.job_timeout_hours

    @property
    def allowed_endpoint_instance_types(self) -> tuple[str, ...]:
        return self.endpoint_instance_types or (self.endpoint_instance_type,)


def _coerce(name: str, raw: Any, hint: Any) -> Any:
    text = str(hint)
    try:
        if "tuple" in text:
            return tuple(str(item) for item in _as_list(raw))
        if hint is bool or text == "bool":
            return _as_bool(raw)
        if hint is int or text == "int":
            return int(raw)
        if raw == "" and "None" in text:
            return None
        return str(raw)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"context {name}={raw!r}: {error}") from None


def _as_list(raw: Any) -> list[Any]:
    if isinstance(raw, (list, tuple)):
        return list(raw)
    text = str(raw).strip()
    if text.startswith("["):
        value = json.loads(text)
        if not isinstance(value, list):
            raise ValueError("expected a JSON list")
        return value
    return [part.strip() for part in text.split(",") if part.strip()]


def _as_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")
