"""The REST API (lambdas/api) driven with API Gateway REST proxy events, against moto and osmem.

Step Functions, IAM and Batch are moto in process (`mock_aws`, Batch without Docker); the tag index
is a real OpenSearchTagIndex on an osmem clone. The handler gets them through its own dependency
(`app.dependency_overrides[cloud_jobs]`), built by the same `open_cloud_jobs` the Lambda uses.
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
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from moto.batch.models import batch_backends
from typer.testing import CliRunner

from lambdas.api.handler import handler
from lambdas.api.handler import logger as api_logger
from spotbot.adapters.api_client import ApiClient, ApiError
from spotbot.domain import AssetRef, Job, JobStatus, Tag, TaskStatus
from spotbot.adapters.wiring import open_cloud_jobs
from spotbot.entrypoints.cli.cloud import app as cloud_app
from spotbot.ports import TaskOutcome
from spotbot.services.cloud_jobs import CloudJobs
from spotbot.services.grants import default_output
from spotbot.services.pages import decode_cursor, encode_cursor
from spotbot.services.planning import add_assets
from tests.api_gateway import (  # noqa: F401 -- aws, settings and cloud are fixtures
    ACCOUNT,
    CALLER,
    IMAGE,
    QUEUE,
    REGION,
    LambdaContextStub,
    aws,
    call,
    cloud,
    executions,
    fields,
    proxy_event,
    settings,
)
from tests.conftest import table_columns
from tests.index_contract import T0, record

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

def test_connect_builds_what_the_lambda_needs(settings):
    jobs = open_cloud_jobs(settings)
    try:
        assert jobs.index.client.indices.exists(index="spotbot-jobs,spotbot-tags,spotbot-tasks,spotbot-bots")
        assert jobs.workflow.client.meta.region_name == jobs.compute.client.meta.region_name == REGION
        assert default_output(settings) == "s3://work-bucket/output"
        assert default_output(settings.model_copy(update={"default_output": "s3://results/x"})) == "s3://results/x"
    finally:
        jobs.index.close()


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
    assert any(line["message"] == "job submitted" and line["name"] == "spotbot.services.submission" for line in lines)
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
    described = cloud.workflow.client.describe_execution(executionArn=job.execution_arn)
    assert described["status"] == "RUNNING" and described["name"] == job_id
    execution_input = json.loads(described["input"])
    assert {k: execution_input[k] for k in ("job_id", "bot", "source", "output", "workers")} == {
        "job_id": job_id, "bot": "scene-text", "source": "s3://assets/photos/", "output": "s3://work-bucket/output", "workers": 4,
    }
    assert ".jpg" in execution_input["bot_config"]["file_types"]
    assert job.incremental and execution_input["request"]["incremental"] is True  # the default: reuse unchanged records

    status, full = call("POST", "/jobs", body={"source": "s3://assets/photos/", "bot": "scene-text", "incremental": False})
    assert status == 202 and cloud.index.get_job(full["job_id"]).incremental is False  # the workers read it there


def test_the_same_idempotency_key_starts_one_job(cloud):
    body = {"source": "s3://assets/reviews", "bot": "sentiment", "output": "s3://work-bucket/output/team-a/"}
    first_status, first = call("POST", "/jobs", body=body, headers={"Idempotency-Key": "order-42"})
    again_status, again = call("POST", "/jobs", body=body, headers={"idempotency-key": "order-42"})
    in_body_status, in_body = call("POST", "/jobs", body={**body, "idempotency_key": "order-42"})
    assert (first_status, again_status, in_body_status) == (202, 200, 200)
    assert first == again == in_body
    assert first["job_id"] == "job-" + hashlib.sha256(f"{CALLER}\norder-42".encode()).hexdigest()[:20]
    assert len(executions(cloud)) == 1
    assert cloud.index.get_job(first["job_id"]).output == "s3://work-bucket/output/team-a"

    # a request that raced the first: the execution started, its record not yet written
    cloud.index.client.delete(index=cloud.index.jobs_index, id=first["job_id"], refresh="true")
    status, raced = call("POST", "/jobs", body=body, headers={"Idempotency-Key": "order-42"})
    assert status == 200 and raced["execution_arn"] == first["execution_arn"]  # ExecutionAlreadyExists, same request
    assert len(executions(cloud)) == 1

    status, conflict = call("POST", "/jobs", body={**body, "source": "s3://assets/other"}, headers={"Idempotency-Key": "order-42"})
    assert status == 409 and "source" in conflict["error"]
    status, conflict = call("POST", "/jobs", body={**body, "incremental": False}, headers={"Idempotency-Key": "order-42"})
    assert status == 409 and "incremental" in conflict["error"]
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
        ({"source": "s3://assets/a", "bot": "scene-text", "incremental": "sometimes"}, "body.incremental"),
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

    status, page = call("GET", "/jobs")
    listed = page["items"]
    assert status == 200 and [job["job_id"] for job in listed] == [second, first] and page["next"] is None
    assert listed[0]["counts"] == {"total": 3, "pending": 1, "done": 1, "failed": 1, "skipped": 0}
    one = call("GET", "/jobs", query={"limit": 1})[1]
    assert [job["job_id"] for job in one["items"]] == [second] and one["next"]
    rest = call("GET", "/jobs", query={"limit": 1, "after": one["next"]})[1]
    assert [job["job_id"] for job in rest["items"]] == [first] and rest["next"] is None

    status, detail = call("GET", "/jobs/{job_id}", job_id=second)
    assert status == 200
    assert detail["status"] == "SUBMITTED" and detail["bot"] == "sentiment"
    assert detail["counts"] == {"total": 3, "pending": 1, "done": 1, "failed": 1, "skipped": 0}
    assert detail["labels"] == {"positive": 1}
    assert detail["execution"]["status"] == "RUNNING" and detail["execution"]["started_at"]
    assert detail["console_url"].endswith(detail["execution_arn"])

    status, answer = call("GET", "/jobs/{job_id}", job_id="no-such-job")
    assert status == 404 and "no job" in answer["error"]
    status, answer = call("GET", "/jobs/{job_id}", job_id="not a job id")
    assert status == 400 and fields(answer) == ["path.job_id"]


# DELETE /jobs/{job_id}


def test_cancel_stops_the_execution_and_the_batch_jobs(cloud):
    job_id = call("POST", "/jobs", body={"source": "s3://assets/a", "bot": "scene-text", "job_id": "job-1"})[1]["job_id"]
    running = _batch_job(cloud, job_id, "RUNNING")  # the state machine names a job's Batch jobs after it
    other = _batch_job(cloud, "job-10", "RUNNING")  # another job whose name starts with job-1
    dashed = _batch_job(cloud, f"{job_id}-2", "RUNNING")  # and one whose name is job-1 and more
    _batch_job(cloud, job_id, "SUCCEEDED")

    status, answer = call("DELETE", "/jobs/{job_id}", job_id=job_id)
    assert status == 200, answer
    assert answer["status"] == "CANCELLED" and answer["finished_at"]
    assert answer["terminated_batch_jobs"] == [running]
    assert answer["execution"]["status"] == "ABORTED"
    execution = cloud.workflow.client.describe_execution(executionArn=answer["execution_arn"])
    assert execution["status"] == "ABORTED"
    jobs = batch_backends[ACCOUNT][REGION]._jobs
    assert jobs[running].stop and "cancelled" in jobs[running].job_stopped_reason
    assert not jobs[other].stop and not jobs[dashed].stop
    assert cloud.index.get_job(job_id).status == JobStatus.CANCELLED

    status, again = call("DELETE", "/jobs/{job_id}", job_id=job_id)
    assert status == 200 and again["status"] == "CANCELLED"
    cloud.index.save_job(Job(job_id="done-1", bot="sentiment", source="s3://a/b", output="s3://c/d", workers=1,
                             status=JobStatus.COMPLETED, created_by=CALLER))
    status, answer = call("DELETE", "/jobs/{job_id}", job_id="done-1")
    assert status == 409 and "COMPLETED" in answer["error"]
    assert call("DELETE", "/jobs/{job_id}", job_id="no-such-job")[0] == 404


def _batch_job(cloud: CloudJobs, name: str, status: str) -> str:
    """A Batch job as the state machine submits it: named after the spotbot job, which is in its environment."""
    batch_job_id = cloud.compute.client.submit_job(
        jobName=name,
        jobQueue=QUEUE,
        jobDefinition="worker",
        containerOverrides={"environment": [{"name": "SPOTBOT_JOB_ID", "value": name}]},
    )["jobId"]
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
        "model_data": "s3://work-bucket/models/my-detector/1/model.tar.gz",
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
    status, refused = call("PUT", "/bots/{name}", name="word-count", body=in_container)
    assert status == 400 and fields(refused) == ["body.runtime"] and "sagemaker-endpoint" in refused["fields"][0]["message"]
    digest_bot = {**detector, "name": "word-count", "image_uri": by_digest}
    assert call("PUT", "/bots/{name}", name="word-count", body=digest_bot)[0] == 201
    assert call("PUT", "/bots/{name}", name="other-name", body=digest_bot)[1]["fields"][0]["field"] == "body.name"

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
    execution = cloud.workflow.client.describe_execution(executionArn=answer["execution_arn"])
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
        "/jobs/{job_id}/resume": {"post"},
        "/tags": {"get"},
        "/bots": {"get", "post"},
        "/bots/{name}": {"get", "put", "delete"},
        "/reviews": {"get"}, "/reviews/export": {"get"}, "/reviews/{record_id}": {"get", "post"},  # lambdas/api/reviews.py
        "/watches": {"post"},  # lambdas/api/watches.py (issue 12)
        "/estimates": {"post"},  # lambdas/api/estimates.py (issue 13)
        "/watches/{watch_id}": {"get", "delete"},
    }
    assert {"JobSubmission", "BotRegistration", "ErrorAnswer"} <= set(document["components"]["schemas"])
    assert document["paths"]["/jobs"]["post"]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorAnswer"
    }
    assert all("422" not in op["responses"] for path in document["paths"].values() for op in path.values())
    assert "idempotency-key" in {p["name"].lower() for p in document["paths"]["/jobs"]["post"]["parameters"]}


def test_a_failure_is_a_json_500_and_leaves_no_job_submitted(cloud):
    state_machine_arn = cloud.workflow.state_machine_arn
    cloud.workflow.state_machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:gone"
    body = {"source": "s3://assets/a", "bot": "sentiment", "job_id": "doomed"}
    status, answer = call("POST", "/jobs", body=body)
    assert status == 500 and answer["error"].startswith("internal error (request ")
    failed = cloud.index.get_job("doomed")
    assert failed.status == JobStatus.FAILED and "did not start" in failed.error
    cloud.workflow.state_machine_arn = state_machine_arn
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
    assert job_id == "job-" + hashlib.sha256(f"{CALLER}\ncli-1".encode()).hexdigest()[:20]  # the caller's own key

    env = {"SPOTBOT_API_URL": api_url, "COLUMNS": "200"}
    result = runner.invoke(cloud_app, ["status", job_id], env=env)
    assert result.exit_code == 0, result.output
    assert "SUBMITTED" in result.stdout and "RUNNING" in result.stdout and "s3://assets/photos/" in result.stdout
    result = runner.invoke(cloud_app, ["jobs", "--json"], env=env)
    assert [job["job_id"] for job in json.loads(result.stdout)] == [job_id]
    tagged = record("s3://assets/photos/a.jpg", [Tag(label="text", score=0.9, text="欢迎光临")], job=job_id)
    cloud.index.record_outcomes([tagged], [], job_id)
    result = runner.invoke(cloud_app, ["search", "欢迎", "--job", job_id], env=env)
    columns = table_columns(result.stdout)
    assert result.exit_code == 0 and "s3://assets/photos/a.jpg" in columns[0] and "text0.90" in "".join(columns), result.stdout
    result = runner.invoke(cloud_app, ["bots"], env=env)
    assert result.exit_code == 0 and "scene-text" in result.stdout and "in-container" in result.stdout
    result = runner.invoke(cloud_app, ["cancel", job_id], env=env)
    assert result.exit_code == 0 and "CANCELLED" in result.stdout and "ABORTED" in result.stdout

    result = runner.invoke(cloud_app, ["submit", "photos/", "--bot", "scene-text"], env=env)
    assert result.exit_code == 2 and "body.source" in result.stderr
    result = runner.invoke(cloud_app, ["status", "no-such-job"], env=env)
    assert result.exit_code == 2 and "no job" in result.stderr
    result = runner.invoke(cloud_app, ["jobs", "--api", "http://127.0.0.1:9/prod", "--region", REGION])
    assert result.exit_code == 1 and "cannot reach" in result.stderr


def test_an_estimate_lists_the_granted_source_and_prices_the_job(cloud, monkeypatch):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="assets")
    for i in range(5):
        s3.put_object(Bucket="assets", Key=f"reviews/{i}.txt", Body="很好".encode() * 100)
    s3.put_object(Bucket="assets", Key="reviews/photo.jpg", Body=b"not for sentiment")
    status, estimate = call("POST", "/estimates", body={"source": "s3://assets/reviews/", "bot": "sentiment", "max_cost": 1})
    assert status == 200, estimate
    assert (estimate["assets"], estimate["bytes"]) == (5, 5 * 600) and estimate["within_budget"] is True
    assert 0 < estimate["total"]["spot"] < estimate["total"]["on_demand"]
    assert estimate["prices"]["date"] and "recorded" in estimate["seconds_from"]
    assert executions(cloud) == []  # nothing ran

    over = call("POST", "/estimates", body={"source": "s3://assets/reviews/", "bot": "sentiment", "max_cost": 0})
    assert over[0] == 200 and over[1]["within_budget"] is False
    for body, field in (({"source": "s3://other/x/", "bot": "sentiment"}, "body.source"),
                        ({"source": "s3://assets/reviews/", "bot": "sentiment", "instance_type": "x9.huge"}, "body.instance_type"),
                        ({"source": "s3://assets/reviews/", "bot": "sentiment", "spot_discount": 2}, "body.spot_discount")):  # fmt: skip
        status, answer = call("POST", "/estimates", body=body)
        assert status == 400 and fields(answer) == [field], answer
    from lambdas.api.settings import api_settings
    from lambdas.api.handler import app

    app.dependency_overrides[api_settings] = lambda: cloud.settings.model_copy(update={"estimate_max_keys": 3})
    status, answer = call("POST", "/estimates", body={"source": "s3://assets/reviews/", "bot": "sentiment"})
    assert status == 400 and fields(answer) == ["body.source"] and "Inventory manifest" in answer["fields"][0]["message"]


def test_an_estimate_of_a_large_inventory_reads_a_share_of_it_and_extrapolates(cloud):
    from lambdas.api.handler import app
    from lambdas.api.settings import api_settings
    from tests.test_inventory import CSV_SCHEMA, csv_file

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="assets")
    entries = []
    for n in range(4):  # four data files of three reviews of 600 bytes each
        data = csv_file([{"bucket": "assets", "key": f"reviews/{n}-{i}.txt", "size": 600, "etag": f"e{n}{i}"} for i in range(3)])
        s3.put_object(Bucket="assets", Key=f"inventory/data/{n}.csv.gz", Body=data)
        entries.append({"key": f"inventory/data/{n}.csv.gz", "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = {"sourceBucket": "assets", "destinationBucket": "arn:aws:s3:::assets", "fileFormat": "CSV",
                "fileSchema": CSV_SCHEMA, "files": entries}  # fmt: skip
    s3.put_object(Bucket="assets", Key="inventory/manifest.json", Body=json.dumps(manifest).encode())
    body = {"source": "s3://assets/inventory/manifest.json", "bot": "sentiment"}
    status, whole = call("POST", "/estimates", body=body)
    assert status == 200 and (whole["assets"], whole["bytes"]) == (12, 12 * 600), whole
    assert not any("extrapolated" in note for note in whole["notes"])

    before = app.dependency_overrides.get(api_settings)
    app.dependency_overrides[api_settings] = lambda: cloud.settings.model_copy(update={"estimate_max_keys": 3})
    try:
        status, part = call("POST", "/estimates", body=body)
    finally:
        app.dependency_overrides[api_settings] = before
    assert status == 200, part
    assert part["assets"] == pytest.approx(12, abs=1) and part["bytes"] == pytest.approx(12 * 600, rel=0.1)
    assert any("extrapolated" in note and "1 of the report's 4 data files" in note for note in part["notes"]), part["notes"]
    assert part["total"]["spot"] == pytest.approx(whole["total"]["spot"], rel=0.1)
