"""Names and defaults the constructs share, in one place: runtimes, prefixes, sizes, limits.

What another layer owns is imported from it, not repeated here: the bot catalogue
(spotbot.bot.BUILTIN_CATALOGUE), the settings names (spotbot.settings), the API routes
(lambdas/api/handler.py's OpenAPI document), an image's build context (its Dockerfile).
"""

from __future__ import annotations

from typing import get_args

from aws_cdk import aws_lambda as lambda_

from spotbot.services.cloud_jobs import DEFAULT_JOB_DEFINITION as CLOUD_DEFAULT_JOB_DEFINITION
from spotbot.services.endpoints import NAME_PREFIX
from spotbot.settings import Settings

# bot runtimes and endpoint defaults: the Settings fields the endpoint Lambda reads them into
BOT_RUNTIMES: tuple[str, ...] = get_args(Settings.model_fields["builtin_bot_runtime"].annotation)
IN_CONTAINER: str = Settings.model_fields["builtin_bot_runtime"].default
DEFAULT_ENDPOINT_INSTANCE_TYPE: str = Settings.model_fields["endpoint_instance_type"].default

# Lambda
LAMBDA_PYTHON = "3.12"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_12
LAMBDA_HOME = "/tmp/spotbot"  # SPOTBOT_HOME: the model cache; /tmp is a Lambda's only writable place
METRICS_NAMESPACE = "SpotTaggingBot"
API_INTEGRATION_SECONDS = 29  # API Gateway's integration limit
SCAN_STEP_MINUTES = 15  # Lambda's limit; the scanner hands on a token after SCAN_TIME_BUDGET_SECONDS
SCAN_TIME_BUDGET_SECONDS = 600  # well inside SCAN_STEP_MINUTES: the listing hands on a token

# S3 layout
JOBS_PREFIX = "jobs/"  # scan state: jobs/<id>/scan-state/ (spotbot.adapters.s3.scan: scan state)
MODELS_PREFIX = "models/"  # the model store: models/<bot>/<version>/model.tar.gz (spotbot.services.models)
OUTPUT_PREFIX = "tags"  # default output of cloud jobs: s3://<output bucket>/tags/<job_id>/

# SageMaker
ENDPOINT_NAME_PREFIX = NAME_PREFIX  # every model, config and endpoint the endpoint service makes

# Batch
DEFAULT_JOB_DEFINITION = CLOUD_DEFAULT_JOB_DEFINITION  # the job definition of bots without their own
WORKER_DOCKERFILE = "batch_jobs/Dockerfile"
SERVING_DOCKERFILE = "bots/Dockerfile"
# The ECS agent keeps some of an instance's memory: a 2-vCPU/4-GiB host (c*.large) offers about 3.7 GiB to tasks
ECS_RESERVED_MEMORY_MIB = 512
# What the worker image carries: onnxruntime (CPU) from pyproject.toml; GPU jobs would get a GPU and not use it
WORKER_IMAGE_HAS_GPU_RUNTIME = False
SPOT_STOP_TIMEOUT_SECONDS = 110  # SIGTERM to SIGKILL: one micro-batch, inside Spot's two-minute notice

# job tag Step Functions puts on each Batch job, so a cancel may terminate this stack's jobs only
JOB_TAG = "spotbot:stack"
