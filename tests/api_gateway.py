"""API Gateway in a test: the stack's AWS side in moto, the index on osmem, and REST proxy events for the handler.

Shared by tests/test_api*.py: the `aws`, `settings` and `cloud` fixtures (the handler's dependency,
built as the Lambda builds it), `proxy_event` (an API Gateway REST v1 proxy event), `call` (one request
through the handler), and `wsgi_app` (the handler behind WSGI, so a WSGI client such as schemathesis
can drive it the way API Gateway would).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from moto import mock_aws

from lambdas.api.handler import app, cloud_jobs, handler
from spotbot.adapters.aws.batch import BatchQueue
from spotbot.adapters.aws.stepfunctions import StepFunctionsEngine
from lambdas.api.reviews import review_service
from lambdas.api.settings import api_settings
from lambdas.api.watches import watch_services
from spotbot.adapters.s3.watches import S3WatchRegistry
from spotbot.adapters.sqs.watch_queue import SqsWatchQueue
from spotbot.adapters.opensearch.index import OpenSearchTagIndex
from spotbot.adapters.opensearch.reviews import OpenSearchReviewStore
from spotbot.services.reviews import ReviewService
from spotbot.services.cloud_jobs import CloudJobs
from spotbot.settings import Settings

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
QUEUE = "spot-workers"
CALLER = f"arn:aws:iam::{ACCOUNT}:user/tester"  # who signs requests unless a test says otherwise
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/spotbot-admin"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/my-detector:1.0"


@dataclass
class Stack:
    """What the stack deploys beside the API, in moto: a role, the Batch queue of the Spot workers, clients."""

    role_arn: str
    stepfunctions: Any
    batch: Any


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """moto for the whole module (boto3 clients are slow to make; each test gets its own state machine)."""
    no_files = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as env:
        unset = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "SPOTBOT_DEFAULT_OUTPUT", "SPOTBOT_DEFAULT_WORKERS", "SPOTBOT_API_URL")
        for name in unset:
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_CONFIG_FILE", str(no_files))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_files))
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        with mock_aws(config={"batch": {"use_docker": False}}):
            assume = {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
            trust = json.dumps({"Version": "2012-10-17", "Statement": [assume]})
            role_arn = boto3.client("iam").create_role(RoleName="tag-assets", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            batch = boto3.client("batch")
            environment = batch.create_compute_environment(
                computeEnvironmentName="spot", type="UNMANAGED", state="ENABLED", serviceRole=role_arn
            )["computeEnvironmentArn"]
            batch.create_job_queue(
                jobQueueName=QUEUE,
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
            )
            batch.register_job_definition(
                jobDefinitionName="worker", type="container", containerProperties={"image": "worker", "vcpus": 1, "memory": 512}
            )
            yield Stack(role_arn=role_arn, stepfunctions=boto3.client("stepfunctions"), batch=batch)


@pytest.fixture
def settings(aws, osmem_clone, tmp_path) -> Settings:
    """The stack's settings, as the Lambda gets them, with a new state machine (a Pass state) of its own."""
    definition = {"StartAt": "Scan assets", "States": {"Scan assets": {"Type": "Pass", "End": True}}}
    state_machine_arn = aws.stepfunctions.create_state_machine(
        name=f"tag-assets-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=aws.role_arn
    )["stateMachineArn"]
    return Settings(
        home=tmp_path / "home",
        region=REGION,
        opensearch_endpoint=osmem_clone.url,
        opensearch_sigv4=False,
        state_machine_arn=state_machine_arn,
        batch_job_queue=QUEUE,
        work_bucket="work-bucket",
        source_buckets=["assets"],
        bot_image_repositories=[IMAGE.split(":")[0]],
        models="s3://work-bucket/models",
        admin_principal=ADMIN,
    )


@pytest.fixture
def cloud(aws, settings):
    """The handler's dependency: a real OpenSearchTagIndex on osmem and boto3 clients on moto."""
    index = OpenSearchTagIndex.connect(settings.opensearch_endpoint, sigv4=False)
    index.ensure_indices()
    jobs = CloudJobs(
        index=index,
        workflow=StepFunctionsEngine(aws.stepfunctions, settings.state_machine_arn),
        compute=BatchQueue(aws.batch, settings.batch_job_queue),
        settings=settings,
    )
    app.dependency_overrides[cloud_jobs] = lambda: jobs
    reviews = OpenSearchReviewStore(index)  # the review routes' dependency, on the same index
    reviews.ensure_index()
    app.dependency_overrides[review_service] = lambda: ReviewService(reviews)
    s3, sqs = boto3.client("s3", region_name=REGION), boto3.client("sqs", region_name=REGION)
    s3.create_bucket(Bucket=settings.work_bucket)  # us-east-1: no location constraint
    queues = [sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("watch-events", "watch-dead-letters")]
    watch_queue = SqsWatchQueue(sqs, boto3.client("cloudwatch", region_name=REGION), *queues)
    registry = S3WatchRegistry(s3, settings.work_bucket)  # the /watches routes' dependency, on moto
    app.dependency_overrides[watch_services] = lambda: (registry, watch_queue, index)
    app.dependency_overrides[api_settings] = lambda: settings  # every router's settings
    yield jobs
    app.dependency_overrides.clear()
    index.close()


class LambdaContextStub:
    function_name = "spotbot-api"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:spotbot-api"
    memory_limit_in_mb = 256
    log_group_name = "/aws/lambda/spotbot-api"
    log_stream_name = "2024/01/01/[$LATEST]0"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def proxy_event(
    method: str,
    path: str,
    *,
    resource: str,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    caller: str = CALLER,
) -> dict[str, Any]:
    """An API Gateway REST API (v1) Lambda proxy integration event, signed (IAM auth) by `caller`."""
    headers = dict(headers or {})
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {name: [value] for name, value in headers.items()} or None,
        "queryStringParameters": {name: values[-1] for name, values in (query or {}).items()} or None,
        "multiValueQueryStringParameters": dict(query or {}) or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": "127.0.0.1", "userArn": caller, "caller": caller.rsplit("/", 1)[-1], "userAgent": "pytest"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def call(
    method: str,
    resource: str,
    *,
    body: Any = None,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    caller: str = CALLER,
    **path_parameters: str,
) -> tuple[int, Any]:
    """Sends one request through the handler; (status, JSON body). resource is a template: /jobs/{job_id}."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    all_headers = {"Content-Type": "application/json"} if raw is not None else {}
    all_headers.update(headers or {})
    event = proxy_event(
        method,
        resource.format(**path_parameters),
        resource=resource,
        path_parameters=path_parameters,
        query={name: [str(value)] for name, value in (query or {}).items() if value is not None},
        headers=all_headers,
        body=raw,
        caller=caller,
    )
    response = handler(event, LambdaContextStub())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def executions(jobs: CloudJobs) -> list[dict[str, Any]]:
    return jobs.workflow.client.list_executions(stateMachineArn=jobs.settings.state_machine_arn)["executions"]


def fields(answer: dict[str, Any]) -> list[str]:
    return [problem["field"] for problem in answer["fields"]]


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The handler as a WSGI app: each request becomes a REST proxy event (stage /prod stripped), as API Gateway sends."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    path = environ.get("PATH_INFO") or "/"
    try:
        body, is_base64 = (raw.decode("utf-8"), False) if raw else (None, False)
    except UnicodeDecodeError:
        body, is_base64 = base64.b64encode(raw).decode(), True  # a binary body arrives base64-encoded
    event = proxy_event(
        environ["REQUEST_METHOD"],
        path,
        resource="/{proxy+}",
        path_parameters={"proxy": path.lstrip("/")},
        query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
        headers=headers,
        body=body,
    )
    event["isBase64Encoded"] = is_base64
    response = handler(event, LambdaContextStub())
    payload = response.get("body") or ""
    data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
    out_headers = [(name, value) for name, values in (response.get("multiValueHeaders") or {}).items() for value in values]
    out_headers += [(name, value) for name, value in (response.get("headers") or {}).items()]
    start_response(f"{response['statusCode']} {_REASONS.get(response['statusCode'], 'Status')}", out_headers)
    return [data]


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 415: "Unsupported Media Type",
            500: "Internal Server Error"}
