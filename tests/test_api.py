"""The REST API (lambdas/api) driven with API Gateway REST proxy events, against moto and osmem.

Step Functions, IAM and Batch are moto in process (`mock_aws`, Batch without Docker); the tag index
is a real OpenSearchTagIndex on an osmem clone. The handler gets them through its own dependency
(`app.dependency_overrides[cloud_jobs]`), built by the same `CloudJobs.connect` the Lambda uses.
The client and the `spotbot cloud` commands talk HTTP to a small server on 127.0.0.1 that turns
each request into a proxy event for the handler, as API Gateway would.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws
from moto.batch.models import batch_backends
from typer.testing import CliRunner

from lambdas.api.handler import app, cloud_jobs, handler
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from lambdas.api.handler import logger as api_logger
from spotbot.adapters.api_client import ApiClient, ApiError
from spotbot.entrypoints.cli.cloud import app as cloud_app
from spotbot.domain import AssetRef, Job, JobStatus, Tag, TaskStatus
from spotbot.adapters.opensearch.index import OpenSearchTagIndex
from spotbot.services.cloud_jobs import CloudJobs, decode_cursor, default_output, encode_cursor
from spotbot.ports import TaskOutcome
from spotbot.settings import Settings
from spotbot.services.planning import add_assets
from tests.index_contract import T0, record

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
QUEUE = "spot-workers"
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
    )


@pytest.fixture
def cloud(aws, settings):
    """The handler's dependency: a real OpenSearchTagIndex on osmem and boto3 clients on moto."""
    index = OpenSearchTagIndex.connect(settings.opensearch_endpoint, sigv4=False)
    index.ensure_indices()
    jobs = CloudJobs(index=index, stepfunctions=aws.stepfunctions, batch=aws.batch, settings=settings)
    app.dependency_overrides[cloud_jobs] = lambda: jobs
    yield jobs
    app.dependency_overrides.clear()
    index.close()


def test_connect_builds_what_the_lambda_needs(settings):
    jobs = CloudJobs.connect(settings)
    try:
        assert jobs.index.client.indices.exists(index="spotbot-jobs,spotbot-tags,spotbot-tasks,spotbot-bots")
        assert jobs.stepfunctions.meta.region_name == jobs.batch.meta.region_name == REGION
        assert default_output(settings) == "s3://work-bucket/output"
        assert default_output(settings.model_copy(update={"default_output": "s3://results/x"})) == "s3://results/x"
    finally:
        jobs.index.close()


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
) -> dict[str, Any]:
    """An API Gateway REST API (v1) Lambda proxy integration event."""
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
            "identity": {"sourceIp": "127.0.0.1", "userArn": f"arn:aws:iam::{ACCOUNT}:user/tester", "userAgent": "pytest"},
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
    )
    response = handler(event, LambdaContextStub())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def executions(jobs: CloudJobs) -> list[dict[str, Any]]:
    return jobs.stepfunctions.list_executions(stateMachineArn=jobs.settings.state_machine_arn)["executions"]


def fields(answer: dict[str, Any]) -> list[str]:
    return [problem["field"] for problem in answer["fields"]]


# POST /jobs


def test_a_job_is_recorded_and_started_as_one_execution(cloud, capsys, monkeypatch):
    # one Lambda loads one handler; in this test process others may have taken over spotbot's loggers
    copy_config_to_registered_loggers(source_logger=api_logger, include={"spotbot"})
    logs = io.StringIO()
    monkeypatch.setattr(api_logger.registered_handler, "stream", logs)
    status, answer = call("POST", "/jobs", body={"source": "s3://assets/photos/", "bot": "scene-text", "workers": 4})
    assert status == 202, answer
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert lines and all(line["job_id"] == answer["job_id"] for line in lines)
    assert any(line["message"] == "job submitted" and line["name"] == "spotbot.services.cloud_jobs" for line in lines)
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SpotTaggingBot" and emf["JobsSubmitted"] == [1.0]
    job_id = answer["job_id"]
    assert answer["status_url"] == f"/jobs/{job_id}"
    state_machine = cloud.settings.state_machine_arn.rsplit(":", 1)[1]
    assert answer["execution_arn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{state_machine}:{job_id}"
    assert answer["console_url"] == (
        f"https://{REGION}.console.aws.amazon.com/states/home?region={REGION}#/v2/executions/details/{answer['execution_arn']}"
    )
    job = cloud.index.get_job(job_id)
    assert job.status == JobStatus.SUBMITTED
    assert (job.bot, job.source, job.output, job.workers) == ("scene-text", "s3://assets/photos/", "s3://work-bucket/output", 4)
    assert job.execution_arn == answer["execution_arn"]
    described = cloud.stepfunctions.describe_execution(executionArn=job.execution_arn)
    assert described["status"] == "RUNNING" and described["name"] == job_id
    execution_input = json.loads(described["input"])
    assert {k: execution_input[k] for k in ("job_id", "bot", "source", "output", "workers")} == {
        "job_id": job_id, "bot": "scene-text", "source": "s3://assets/photos/", "output": "s3://work-bucket/output", "workers": 4,
    }
    assert ".jpg" in execution_input["bot_config"]["file_types"]


def test_the_same_idempotency_key_starts_one_job(cloud):
    body = {"source": "s3://assets/reviews", "bot": "sentiment", "output": "s3://results/tags/"}
    first_status, first = call("POST", "/jobs", body=body, headers={"Idempotency-Key": "order-42"})
    again_status, again = call("POST", "/jobs", body=body, headers={"idempotency-key": "order-42"})
    in_body_status, in_body = call("POST", "/jobs", body={**body, "idempotency_key": "order-42"})
    assert (first_status, again_status, in_body_status) == (202, 200, 200)
    assert first == again == in_body
    assert first["job_id"] == "job-" + hashlib.sha256(b"order-42").hexdigest()[:20]
    assert len(executions(cloud)) == 1
    assert cloud.index.get_job(first["job_id"]).output == "s3://results/tags"

    # a request that raced the first: the job recorded, the execution started, its ARN not yet saved
    job = cloud.index.get_job(first["job_id"])
    cloud.index.save_job(job.model_copy(update={"execution_arn": None}))
    status, raced = call("POST", "/jobs", body={**body, "shard_size": 5}, headers={"Idempotency-Key": "order-42"})
    assert status == 200 and raced["execution_arn"] == first["execution_arn"]  # ExecutionAlreadyExists, read as started
    assert len(executions(cloud)) == 1

    status, conflict = call("POST", "/jobs", body={**body, "source": "s3://assets/other"}, headers={"Idempotency-Key": "order-42"})
    assert status == 409 and "source" in conflict["error"]
    status, mismatch = call("POST", "/jobs", body={**body, "idempotency_key": "other"}, headers={"Idempotency-Key": "order-42"})
    assert status == 400 and fields(mismatch) == ["body.idempotency_key"]

    status, named = call("POST", "/jobs", body={**body, "job_id": "nightly-2024-06-01"})
    status_again, named_again = call("POST", "/jobs", body={**body, "job_id": "nightly-2024-06-01"})
    assert (status, status_again) == (202, 200) and named == named_again and named["job_id"] == "nightly-2024-06-01"
    assert len(executions(cloud)) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bot": "scene-text"}, "body.source"),
        ({"source": "/home/me/photos", "bot": "scene-text"}, "body.source"),
        ({"source": "s3://", "bot": "scene-text"}, "body.source"),
        ({"source": "s3://assets/a", "bot": "scene-text", "output": "results/"}, "body.output"),
        ({"source": "s3://assets/a", "bot": "scene-text", "workers": 0}, "body.workers"),
        ({"source": "s3://assets/a", "bot": "scene-text", "workers": 1001}, "body.workers"),
        ({"source": "s3://assets/a", "bot": "scene-text", "workers": "many"}, "body.workers"),
        ({"source": "s3://assets/a", "bot": "no-such-bot"}, "body.bot"),
        ({"source": "s3://assets/a", "bot": "scene-text", "job_id": "bad id!"}, "body.job_id"),
        ({"source": "s3://assets/a", "bot": "scene-text", "surprise": 1}, "body.surprise"),
    ],
)
def test_a_bad_body_is_400_naming_the_field(cloud, body, field):
    status, answer = call("POST", "/jobs", body=body)
    assert status == 400, answer
    assert answer["error"] == "validation failed"
    assert fields(answer) == [field]
    assert all(problem["message"] for problem in answer["fields"])
    assert executions(cloud) == []


def test_bad_json_and_a_missing_body_are_400(cloud):
    status, answer = call("POST", "/jobs", body='{"source": "s3://assets/a", "bot": ')
    assert status == 400 and answer["error"] == "the body is not valid JSON" and fields(answer) == ["body"]
    assert answer["fields"][0]["message"] == "Expecting value at character 35"
    status, answer = call("POST", "/jobs")
    assert status == 400 and fields(answer) == ["body"]
    status, answer = call("GET", "/jobs", query={"limit": 0})
    assert status == 400 and fields(answer) == ["query.limit"]


# GET /jobs, GET /jobs/{job_id}


def test_jobs_are_listed_newest_first_and_shown_with_counts_and_execution(cloud):
    first = call("POST", "/jobs", body={"source": "s3://assets/a", "bot": "scene-text"})[1]["job_id"]
    time.sleep(0.01)
    second = call("POST", "/jobs", body={"source": "s3://assets/b", "bot": "sentiment", "job_id": "reviews-1"})[1]["job_id"]
    assets = [AssetRef(uri=f"s3://assets/b/{n}.txt", etag=n, size=1) for n in "xyz"]
    add_assets(cloud.index, second, assets, shard_size=2)
    cloud.index.record_outcomes(
        [record("s3://assets/b/x.txt", [Tag(label="positive", score=0.9)], job=second)],
        [TaskOutcome("s3://assets/b/x.txt", TaskStatus.DONE), TaskOutcome("s3://assets/b/y.txt", TaskStatus.FAILED, "not UTF-8")],
        second,
    )

    status, listed = call("GET", "/jobs")
    assert status == 200 and [job["job_id"] for job in listed] == [second, first]
    assert listed[0]["counts"] == {"total": 3, "pending": 1, "done": 1, "failed": 1, "skipped": 0}
    assert [job["job_id"] for job in call("GET", "/jobs", query={"limit": 1})[1]] == [second]

    status, detail = call("GET", "/jobs/{job_id}", job_id=second)
    assert status == 200
    assert detail["status"] == "SUBMITTED" and detail["bot"] == "sentiment"
    assert detail["counts"] == {"total": 3, "pending": 1, "done": 1, "failed": 1, "skipped": 0}
    assert detail["labels"] == {"positive": 1}
    assert detail["execution"]["status"] == "RUNNING" and detail["execution"]["started_at"]
    assert detail["console_url"].endswith(detail["execution_arn"])

    for unknown in ("no-such-job", "not a job id"):
        status, answer = call("GET", "/jobs/{job_id}", job_id=unknown)
        assert status == 404 and "no job" in answer["error"]


# DELETE /jobs/{job_id}


def test_cancel_stops_the_execution_and_the_batch_jobs(cloud):
    job_id = call("POST", "/jobs", body={"source": "s3://assets/a", "bot": "scene-text", "job_id": "job-1"})[1]["job_id"]
    running = _batch_job(cloud, f"{job_id}-tag-assets", "RUNNING")
    other = _batch_job(cloud, "job-10-tag-assets", "RUNNING")  # another job whose name starts with job-1
    _batch_job(cloud, f"{job_id}-earlier", "SUCCEEDED")

    status, answer = call("DELETE", "/jobs/{job_id}", job_id=job_id)
    assert status == 200, answer
    assert answer["status"] == "CANCELLED" and answer["finished_at"]
    assert answer["terminated_batch_jobs"] == [running]
    assert answer["execution"]["status"] == "ABORTED"
    execution = cloud.stepfunctions.describe_execution(executionArn=answer["execution_arn"])
    assert execution["status"] == "ABORTED"
    jobs = batch_backends[ACCOUNT][REGION]._jobs
    assert jobs[running].stop and "cancelled" in jobs[running].job_stopped_reason
    assert not jobs[other].stop
    assert cloud.index.get_job(job_id).status == JobStatus.CANCELLED

    status, again = call("DELETE", "/jobs/{job_id}", job_id=job_id)
    assert status == 200 and again["status"] == "CANCELLED"
    cloud.index.save_job(Job(job_id="done-1", bot="sentiment", source="s3://a/b", output="s3://c/d", workers=1, status=JobStatus.COMPLETED))
    status, answer = call("DELETE", "/jobs/{job_id}", job_id="done-1")
    assert status == 409 and "COMPLETED" in answer["error"]
    assert call("DELETE", "/jobs/{job_id}", job_id="no-such-job")[0] == 404


def _batch_job(cloud: CloudJobs, name: str, status: str) -> str:
    batch_job_id = cloud.batch.submit_job(jobName=name, jobQueue=QUEUE, jobDefinition="worker")["jobId"]
    job = batch_backends[ACCOUNT][REGION]._jobs[batch_job_id]
    job.status = status  # moto without Docker finishes jobs at once; this one is still at work
    job.stop = False
    return batch_job_id


# GET /tags


def test_tags_are_searched_and_paged_with_an_opaque_cursor(cloud):
    records = [
        record(f"s3://assets/r/{i:02}.txt", [Tag(label="positive" if i % 2 else "negative", score=0.8)], text="欢迎光临", job="j1",
               created_at=T0 + timedelta(minutes=i))
        for i in range(25)
    ]
    cloud.index.record_outcomes(records, [], "j1")
    cloud.index.record_outcomes([record("s3://assets/r/other.txt", [Tag(label="positive", score=1)], text="别的", job="j2")], [], "j2")

    pages, after = [], None
    while True:
        status, page = call("GET", "/tags", query={"q": "光临", "limit": 10, "after": after})
        assert status == 200
        pages.append([item["asset"] for item in page["items"]])
        after = page["next"]
        if after is None:
            break
        assert re.fullmatch(r"[A-Za-z0-9_-]+", after)
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [asset for p in pages for asset in p] == [r.asset for r in reversed(records)]  # newest first
    first = call("GET", "/tags", query={"q": "光临", "limit": 1})[1]["items"][0]
    assert first["tags"] == [{"label": "negative", "score": 0.8}] and "光临" in first["snippet"] and first["job_id"] == "j1"

    assert len(call("GET", "/tags", query={"label": "negative", "limit": 100})[1]["items"]) == 13
    assert [i["asset"] for i in call("GET", "/tags", query={"job": "j2"})[1]["items"]] == ["s3://assets/r/other.txt"]
    assert call("GET", "/tags", query={"bot": "nobody"})[1] == {"items": [], "next": None}
    status, answer = call("GET", "/tags", query={"after": "not-a-cursor!"})
    assert status == 400 and fields(answer) == ["query.after"]
    assert decode_cursor(encode_cursor([1718000000000, "s3://a/é", "j"])) == [1718000000000, "s3://a/é", "j"]


# /bots


def test_the_bot_registry(cloud):
    status, bots = call("GET", "/bots")
    assert status == 200 and [(b["name"], b["builtin"]) for b in bots] == [
        ("scene-text", True), ("sentiment", True), ("car-model", True)
    ]
    detector = {
        "name": "my-detector",
        "file_types": [".JPG", ".png"],
        "runtime": "sagemaker-endpoint",
        "image_uri": IMAGE,
        "model_data": "s3://models/my-detector/1/model.tar.gz",
        "content_type": "image/jpeg",
    }
    status, created = call("POST", "/bots", body=detector)
    assert status == 201, created
    assert created["file_types"] == [".jpg", ".png"] and created["instance_type"] == "ml.m5.large" and not created["builtin"]
    assert call("GET", "/bots/{name}", name="my-detector")[1]["image_uri"] == IMAGE
    assert call("POST", "/bots", body=detector)[0] == 409
    assert [b["name"] for b in call("GET", "/bots")[1]][3:] == ["my-detector"]

    status, replaced = call("PUT", "/bots/{name}", name="my-detector", body={**detector, "instance_type": "ml.g5.xlarge"})
    assert status == 200 and replaced["instance_type"] == "ml.g5.xlarge"
    by_digest = f"{IMAGE.split(':')[0]}@sha256:{'a' * 64}"
    in_container = {"name": "word-count", "file_types": [".txt"], "runtime": "in-container", "image_uri": by_digest}
    assert call("PUT", "/bots/{name}", name="word-count", body=in_container)[0] == 201
    assert call("PUT", "/bots/{name}", name="other-name", body=in_container)[1]["fields"][0]["field"] == "body.name"

    status, answer = call("POST", "/bots", body={**detector, "name": "sentiment"})
    assert status == 409 and "built-in" in answer["error"]
    for change, field in (
        ({"image_uri": "docker.io/library/python:3.12"}, "body.image_uri"),
        ({"image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/my-detector"}, "body.image_uri"),
        ({"model_data": None}, "body.model_data"),
        ({"file_types": ["jpg"]}, "body.file_types"),
        ({"name": "My Detector"}, "body.name"),
        ({"runtime": "lambda"}, "body.runtime"),
    ):
        status, answer = call("POST", "/bots", body={**detector, "name": "new-bot", **change})
        assert status == 400 and fields(answer) == [field], (change, answer)

    status, answer = call("POST", "/jobs", body={"source": "s3://assets/photos", "bot": "my-detector"})
    assert status == 202
    execution = cloud.stepfunctions.describe_execution(executionArn=answer["execution_arn"])
    assert json.loads(execution["input"])["bot_config"]["image_uri"] == IMAGE

    assert call("DELETE", "/bots/{name}", name="my-detector") == (204, None)
    assert call("GET", "/bots/{name}", name="my-detector")[0] == 404
    assert call("DELETE", "/bots/{name}", name="my-detector")[0] == 404
    assert call("DELETE", "/bots/{name}", name="car-model")[0] == 409
    assert call("GET", "/bots/{name}", name="car-model")[1]["builtin"] is True


# the OpenAPI document and unknown routes


def test_the_openapi_document_lists_the_routes(cloud):
    status, document = call("GET", "/openapi.json")
    assert status == 200
    assert document["info"]["title"] == "Spot Tagging Bot API"
    paths = {path: set(methods) for path, methods in document["paths"].items()}
    assert paths == {
        "/jobs": {"get", "post"},
        "/jobs/{job_id}": {"get", "delete"},
        "/tags": {"get"},
        "/bots": {"get", "post"},
        "/bots/{name}": {"get", "put", "delete"},
        "/watches": {"post"},  # lambdas/api/watches.py (issue 12)
        "/watches/{watch_id}": {"get", "delete"},
    }
    assert {"JobSubmission", "BotRegistration", "ErrorAnswer"} <= set(document["components"]["schemas"])
    assert document["paths"]["/jobs"]["post"]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorAnswer"
    }
    assert all("422" not in op["responses"] for path in document["paths"].values() for op in path.values())
    assert "idempotency-key" in {p["name"].lower() for p in document["paths"]["/jobs"]["post"]["parameters"]}


def test_a_failure_is_a_json_500_and_leaves_no_job_submitted(cloud):
    settings = cloud.settings
    cloud.settings = settings.model_copy(update={"state_machine_arn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:gone"})
    body = {"source": "s3://assets/a", "bot": "sentiment", "job_id": "doomed"}
    status, answer = call("POST", "/jobs", body=body)
    assert status == 500 and answer["error"].startswith("internal error (request ")
    assert cloud.index.get_job("doomed").status == JobStatus.FAILED
    cloud.settings = settings
    status, answer = call("POST", "/jobs", body=body)  # a retry with the same id starts it
    assert status == 202 and answer["status"] == "SUBMITTED" and answer["execution_arn"]


def test_an_unknown_route_is_a_json_404(cloud):
    status, answer = call("GET", "/nowhere")
    assert status == 404 and answer == {"error": "no route GET /nowhere"}


# the client and `spotbot cloud`, over HTTP


class _ApiGateway(BaseHTTPRequestHandler):
    """Turns each request into a REST proxy event for the handler, as API Gateway does (stage /prod)."""

    seen: list[dict[str, Any]] = []
    lambda_output: list[str] = []

    def _forward(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.removeprefix("/prod")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else None
        headers = dict(self.headers.items())
        self.seen.append({"method": self.command, "path": self.path, "headers": headers})
        event = proxy_event(
            self.command,
            path,
            resource="/{proxy+}",
            path_parameters={"proxy": path.lstrip("/")},
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
        )
        with contextlib.redirect_stdout(io.StringIO()) as lambda_stdout:  # the Lambda's stdout is CloudWatch's, not ours
            response = handler(event, LambdaContextStub())
        self.lambda_output.append(lambda_stdout.getvalue())
        payload = (response.get("body") or "").encode()
        self.send_response(response["statusCode"])
        for name, values in (response.get("multiValueHeaders") or {}).items():
            for value in values:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api_url(cloud):
    _ApiGateway.seen, _ApiGateway.lambda_output = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiGateway)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prod"
    server.shutdown()
    server.server_close()


SIGNATURE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=[A-Z0-9]+/\d{8}/us-east-1/execute-api/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*x-amz-date[a-z0-9;-]*, Signature=[0-9a-f]{64}$"
)


def test_the_client_signs_every_request_with_sigv4(cloud, api_url):
    client = ApiClient(api_url, region=REGION)
    accepted = client.submit("s3://assets/reviews/", "sentiment", workers=2, idempotency_key="k-1")
    assert accepted["status"] == "SUBMITTED" and accepted["execution_arn"]
    assert client.submit("s3://assets/reviews/", "sentiment", workers=2, idempotency_key="k-1") == accepted
    assert len(executions(cloud)) == 1
    job_id = accepted["job_id"]
    tagged = record("s3://assets/reviews/1.txt", [Tag(label="positive", score=1)], text="好吃 很好", job=job_id)
    cloud.index.record_outcomes([tagged], [], job_id)

    assert client.status(job_id)["execution"]["status"] == "RUNNING"
    assert [job["job_id"] for job in client.jobs()] == [job_id]
    assert [item["asset"] for item in client.search("好吃", label="positive")["items"]] == ["s3://assets/reviews/1.txt"]
    assert [b["name"] for b in client.bots()][:3] == ["scene-text", "sentiment", "car-model"]
    assert client.cancel(job_id)["status"] == "CANCELLED"

    with pytest.raises(ApiError) as refused:
        client.submit("/local/folder", "sentiment", workers=0)
    assert refused.value.status == 400 and [f["field"] for f in refused.value.fields] == ["body.source", "body.workers"]
    with pytest.raises(ApiError) as missing:
        client.status("no-such-job")
    assert missing.value.status == 404 and "no job" in missing.value.message

    assert len(_ApiGateway.seen) == 9
    for request in _ApiGateway.seen:
        headers = {name.lower(): value for name, value in request["headers"].items()}
        assert SIGNATURE.match(headers["authorization"]), headers["authorization"]
        assert re.fullmatch(r"\d{8}T\d{6}Z", headers["x-amz-date"])
    (search,) = [request["path"] for request in _ApiGateway.seen if request["path"].startswith("/prod/tags?")]
    assert "q=%E5%A5%BD%E5%90%83" in search  # the query, signed as sent


def test_the_client_reports_what_it_cannot_do(aws):
    with pytest.raises(ApiError, match="cannot reach the API") as unreachable:
        ApiClient("http://127.0.0.1:9/prod", region=REGION, timeout=2).jobs()
    assert unreachable.value.status == 0
    assert ApiClient("https://a1b2c3.execute-api.eu-west-2.amazonaws.com/prod").region == "eu-west-2"
    with pytest.raises(ValueError, match="http"):
        ApiClient("ftp://example.com")


def test_spotbot_cloud_commands_end_to_end(cloud, api_url):
    runner = CliRunner()
    result = runner.invoke(
        cloud_app, ["submit", "s3://assets/photos/", "--bot", "scene-text", "--idempotency-key", "cli-1", "--api", api_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    job_id = json.loads(result.stdout)["job_id"]
    assert job_id == "job-" + hashlib.sha256(b"cli-1").hexdigest()[:20]

    env = {"SPOTBOT_API_URL": api_url, "COLUMNS": "200"}
    result = runner.invoke(cloud_app, ["status", job_id], env=env)
    assert result.exit_code == 0, result.output
    assert "SUBMITTED" in result.stdout and "RUNNING" in result.stdout and "s3://assets/photos/" in result.stdout
    result = runner.invoke(cloud_app, ["jobs", "--json"], env=env)
    assert [job["job_id"] for job in json.loads(result.stdout)] == [job_id]
    tagged = record("s3://assets/photos/a.jpg", [Tag(label="text", score=0.9, text="欢迎光临")], job=job_id)
    cloud.index.record_outcomes([tagged], [], job_id)
    result = runner.invoke(cloud_app, ["search", "欢迎", "--job", job_id], env=env)
    assert result.exit_code == 0 and "s3://assets/photos/a.jpg" in result.stdout and "text 0.90" in result.stdout
    result = runner.invoke(cloud_app, ["bots"], env=env)
    assert result.exit_code == 0 and "scene-text" in result.stdout and "in-container" in result.stdout
    result = runner.invoke(cloud_app, ["cancel", job_id], env=env)
    assert result.exit_code == 0 and "CANCELLED" in result.stdout and "ABORTED" in result.stdout

    result = runner.invoke(cloud_app, ["submit", "photos/", "--bot", "scene-text"], env=env)
    assert result.exit_code == 2 and "body.source" in result.stderr
    result = runner.invoke(cloud_app, ["status", "no-such-job"], env=env)
    assert result.exit_code == 2 and "no job" in result.stderr
    result = runner.invoke(cloud_app, ["jobs", "--api", "http://127.0.0.1:9/prod", "--region", REGION])
    assert result.exit_code == 4 and "cannot reach" in result.stderr
