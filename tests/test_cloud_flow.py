"""The whole cloud path on one machine.

An API Gateway event for POST /jobs goes to the API handler, which starts the real state machine
definition in moto's Step Functions interpreter. Its Lambda steps run our real handlers and its
Batch steps run the real Spot worker (tests/moto_bridges.py), against a moto server for S3,
Batch, SageMaker and Step Functions and an osmem server for OpenSearch. Then GET /jobs/{id} and
GET /tags read the result, as a user would.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from osmem_server import OsmemServer

from spotbot.workflow import state_names, tag_assets_definition
from tests import moto_bridges
from tests.conftest import SAMPLES

REGION = "us-east-1"
ACCOUNT = "123456789012"
FUNCTIONS = {
    "spotbot-scanner": "lambdas.scanner.handler.handler",
    "spotbot-endpoint": "lambdas.endpoint.handler.handler",
    "spotbot-finalize": "lambdas.finalize.handler.handler",
}


class Cloud:
    """The deployed system, as the stack would make it, on moto and osmem."""

    def __init__(self, endpoint: str, search: str) -> None:
        self.endpoint, self.search = endpoint, search
        self.session = boto3.Session(region_name=REGION)
        self.s3 = self.session.client("s3", endpoint_url=endpoint)
        self.sfn = self.session.client("stepfunctions", endpoint_url=endpoint)
        self.batch = self.session.client("batch", endpoint_url=endpoint)
        self.invocations: list[dict[str, Any]] = []
        self.batch_runs: list[dict[str, Any]] = []
        self.settings_env = {
            "SPOTBOT_OPENSEARCH_ENDPOINT": search,
            "SPOTBOT_OPENSEARCH_SIGV4": "false",
            "SPOTBOT_WORK_BUCKET": "spotbot-work",
            "SPOTBOT_REGION": REGION,
            # what jobs may read and bots may run (spotbot.services.grants)
            "SPOTBOT_SOURCE_BUCKETS": '["assets", "no-such-bucket"]',
            "SPOTBOT_BOT_IMAGE_REPOSITORIES": f'["{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/my-classifier"]',
        }

    def deploy(self, poll_seconds: int = 1) -> None:
        for bucket in ("spotbot-work", "spotbot-output", "assets"):
            self.s3.create_bucket(Bucket=bucket)
        iam = self.session.client("iam", endpoint_url=self.endpoint)
        role = iam.create_role(RoleName="spotbot", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = self.session.client("lambda", endpoint_url=self.endpoint)
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "# the bridge runs the repo's own handler module\n")
        arns = {}
        for name, handler in FUNCTIONS.items():
            arns[name] = lam.create_function(
                FunctionName=name, Runtime="python3.11", Role=role, Handler=handler, Code={"ZipFile": code.getvalue()},
                Environment={"Variables": self.settings_env}, Timeout=900,
            )["FunctionArn"]
        compute = self.batch.create_compute_environment(computeEnvironmentName="spot", type="UNMANAGED", state="ENABLED",
                                                        serviceRole=role)["computeEnvironmentArn"]
        queue = self.batch.create_job_queue(jobQueueName="spotbot", state="ENABLED", priority=1,
                                            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute}])["jobQueueArn"]
        definition = self.batch.register_job_definition(
            jobDefinitionName="spotbot-worker", type="container",
            containerProperties={
                "image": "spotbot-worker:latest", "vcpus": 2, "memory": 4096,
                "environment": [{"name": k, "value": v} for k, v in self.settings_env.items()],
            },
            retryStrategy={"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"},
                                                             {"onReason": "*", "action": "EXIT"}]},
        )["jobDefinitionArn"]
        self.definition = tag_assets_definition(
            scanner=arns["spotbot-scanner"], endpoint=arns["spotbot-endpoint"], finalize=arns["spotbot-finalize"],
            job_queue=queue, endpoint_poll_seconds=poll_seconds,
        )
        self.job_definitions = json.dumps({"*": definition})
        self.state_machine = self.sfn.create_state_machine(
            name="tag-assets", definition=json.dumps(self.definition), roleArn=role)["stateMachineArn"]

    def api_env(self) -> dict[str, str]:
        return {**self.settings_env, "SPOTBOT_STATE_MACHINE_ARN": self.state_machine, "SPOTBOT_BATCH_JOB_QUEUE": "spotbot",
                "SPOTBOT_DEFAULT_OUTPUT": "s3://spotbot-output/tags", "SPOTBOT_JOB_DEFINITIONS": self.job_definitions, "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_NAMESPACE": "SpotTaggingBot"}

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket="assets", Key=key, Body=body)

    def wait(self, execution_arn: str, timeout_s: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.3)
        raise AssertionError(f"execution still running after {timeout_s} s; steps: {self.invocations[-3:]}")


def api_event(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> dict[str, Any]:
    parts = path.strip("/").split("/")
    resource, params = "/" + parts[0], None
    if len(parts) > 1:
        resource, params = f"/{parts[0]}/{{{'job_id' if parts[0] == 'jobs' else 'name'}}}", {
            "job_id" if parts[0] == "jobs" else "name": parts[1]}
    return {
        "httpMethod": method, "path": path, "resource": resource, "pathParameters": params,
        "queryStringParameters": query, "headers": {"content-type": "application/json"},
        "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
        "requestContext": {"requestId": "req-1", "stage": "prod", "httpMethod": method, "resourcePath": resource},
    }


class LambdaContext:
    function_name = "spotbot-api"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:spotbot-api"
    aws_request_id = "req-1"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    saved = dict(os.environ)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    search = OsmemServer.start(japanese=False)
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint, "MOTO_PORT": str(port),
    })
    requests.post(f"{endpoint}/moto-api/config", json={
        "batch": {"use_docker": False}, "lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True},
    }, timeout=10).raise_for_status()
    deployed = Cloud(endpoint, search.url)
    worker_env = deployed.worker_env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_DEFAULT_REGION": REGION, "SPOTBOT_HOME": str(tmp_path_factory.mktemp("worker-home"))}
    undo = moto_bridges.install(worker_env, deployed.invocations, deployed.batch_runs)
    try:
        deployed.deploy()
        os.environ.update(deployed.api_env())
        yield deployed
    finally:
        moto_bridges.uninstall(undo)
        requests.post(f"{endpoint}/moto-api/config", json={  # moto's config is process-wide: put the defaults back
            "batch": {"use_docker": True}, "lambda": {"use_docker": True}, "stepfunctions": {"execute_state_machine": False},
        }, timeout=10)
        server.stop()
        search.close()
        os.environ.clear()
        os.environ.update(saved)


def new_api_container() -> None:
    """As a fresh Lambda container would: the API reads its settings and builds its clients again."""
    from lambdas.api import handler as api_handler
    from lambdas.api.settings import api_settings

    api_settings.cache_clear()
    api_handler.cloud_jobs.cache_clear()


@pytest.fixture(scope="module")
def api(cloud):
    from lambdas.api import handler as api_handler

    new_api_container()  # this module's stack, whatever an earlier module's container read

    def call(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> tuple[int, Any]:
        answer = api_handler.handler(api_event(method, path, body, query), LambdaContext())
        return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None

    return call


def test_every_task_state_is_caught_and_routed_through_release(cloud):
    states = {}

    def collect(definition):
        for name, state in definition["States"].items():
            states[name] = state
            for branch in state.get("Branches", []):
                collect(branch)

    collect(cloud.definition)
    assert set(state_names(cloud.definition)) == set(states)
    top = cloud.definition["States"]
    for name, state in top.items():
        if state["Type"] in ("Task", "Parallel") and not name.startswith(("Release", "Record")):
            assert [c["Next"] for c in state["Catch"]] == ["Release the bot endpoint after a failure"], name
    assert top["Release the bot endpoint after a failure"]["Next"] == "Record the failure"
    assert top["Tag assets on Spot"]["Resource"] == "arn:aws:states:::batch:submitJob.sync"


def test_a_job_runs_from_the_api_through_step_functions_batch_and_opensearch(cloud, api, expected):
    reviews = sorted((SAMPLES / "reviews").glob("*.txt"))
    for path in reviews:
        cloud.put(f"reviews/{path.name}", path.read_bytes())
    cloud.put("reviews/deep/空 白 +1.txt", "这个酒店的服务非常好，房间干净。".encode())
    cloud.put("reviews/empty.txt", b"")
    cloud.put("reviews/photo.jpg", b"not a text asset: filtered out by the bot's file types")

    status, submitted = api("POST", "/jobs", {"source": "s3://assets/reviews/", "bot": "sentiment", "shard_size": 5,
                                              "job_id": "reviews-1"})
    assert status == 202, submitted
    execution = cloud.wait(submitted["execution_arn"])
    assert execution["status"] == "SUCCEEDED", (execution, cloud.invocations[-2:], cloud.batch_runs[-2:])

    status, job = api("GET", "/jobs/reviews-1")
    assert status == 200
    assert job["status"] == "PARTIAL" and job["counts"] == {"total": 18, "pending": 0, "done": 17, "failed": 1, "skipped": 0}
    assert job["execution"]["status"] == "SUCCEEDED"
    assert {run["index"] for run in cloud.batch_runs} == {0, 1, 2, 3}  # 18 assets in shards of 5: an array of 4
    assert all(run["returncode"] == 0 for run in cloud.batch_runs), cloud.batch_runs
    assert all(run["env"]["SPOTBOT_ENDPOINT_NAME"] == "" for run in cloud.batch_runs)  # built in: in the container

    status, found = api("GET", "/tags", query={"job": "reviews-1", "label": "negative", "limit": "50"})
    negatives = {item["asset"].rsplit("/", 1)[1] for item in found["items"]}
    assert negatives == {Path(p).name for p, label in expected["sentiment"].items() if label == "negative"}
    status, found = api("GET", "/tags", query={"q": "酒店的服务"})
    assert [item["asset"] for item in found["items"]] == ["s3://assets/reviews/deep/空 白 +1.txt"]

    summary = json.loads(cloud.s3.get_object(Bucket="spotbot-output", Key="tags/reviews-1/_job.json")["Body"].read())
    assert summary["status"] == "PARTIAL" and summary["counts"]["done"] == 17
    parts = [o["Key"] for o in cloud.s3.list_objects_v2(Bucket="spotbot-output", Prefix="tags/reviews-1/part-")["Contents"]]
    lines = [json.loads(line) for key in parts
             for line in cloud.s3.get_object(Bucket="spotbot-output", Key=key)["Body"].read().decode().splitlines()]
    assert len(lines) == 17 and len({line["asset"] for line in lines}) == 17
    steps = [i["function"] for i in cloud.invocations if i["event"].get("job_id") == "reviews-1"]
    assert steps[0] in ("spotbot-scanner", "spotbot-endpoint") and steps[-2:] == ["spotbot-finalize", "spotbot-endpoint"]


def test_a_failing_worker_fails_the_job_and_still_releases(cloud, api):
    cloud.put("broken/a.txt", "很好".encode())
    cloud.put("broken/b.txt", "很差".encode())
    before = len(cloud.invocations)
    cloud.worker_env["SPOTBOT_READ_CONCURRENCY"] = "0"  # a worker misconfigured: it exits 2 before tagging
    try:
        status, submitted = api("POST", "/jobs", {"source": "s3://assets/broken/", "bot": "sentiment", "job_id": "broken-1"})
        assert status == 202
        execution = cloud.wait(submitted["execution_arn"])
    finally:
        del cloud.worker_env["SPOTBOT_READ_CONCURRENCY"]
    assert execution["status"] == "FAILED"
    assert cloud.batch_runs[-1]["returncode"] == 2
    steps = [(i["function"], i["event"].get("action")) for i in cloud.invocations[before:]]
    assert steps[-2:] == [("spotbot-endpoint", "release"), ("spotbot-finalize", None)]  # released, then recorded
    status, job = api("GET", "/jobs/broken-1")
    assert job["status"] == "FAILED" and "States.TaskFailed" in job["error"]
    assert job["counts"]["pending"] == 2


def test_bad_requests_get_a_400_naming_the_field(api):
    status, answer = api("POST", "/jobs", {"source": "/local/folder", "bot": "sentiment"})
    assert status == 400 and answer["fields"][0]["field"] == "body.source"
    status, answer = api("POST", "/jobs", {"source": "s3://assets/x/", "bot": "sentiment", "workers": 0})
    assert status == 400 and answer["fields"][0]["field"] == "body.workers"


def test_delete_stops_the_execution(cloud, api):
    cloud.put("slow/a.txt", "很好".encode())
    # a definition that waits, so the execution is still running when it is cancelled
    waiting = cloud.sfn.create_state_machine(
        name="waits", roleArn=cloud.sfn.describe_state_machine(stateMachineArn=cloud.state_machine)["roleArn"],
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 60, "End": True}}}),
    )["stateMachineArn"]

    os.environ["SPOTBOT_STATE_MACHINE_ARN"] = waiting
    try:
        new_api_container()  # the handler keeps its settings and clients per container: start a fresh one
        status, submitted = api("POST", "/jobs", {"source": "s3://assets/slow/", "bot": "sentiment", "job_id": "slow-1"})
        assert status == 202, submitted
        status, cancelled = api("DELETE", "/jobs/slow-1")
        assert status == 200 and cancelled["status"] == "CANCELLED"
        assert cloud.sfn.describe_execution(executionArn=submitted["execution_arn"])["status"] == "ABORTED"
    finally:
        os.environ["SPOTBOT_STATE_MACHINE_ARN"] = cloud.state_machine
        new_api_container()


def test_a_failed_job_leaves_no_endpoint_running(cloud, api):
    """A bring-your-own bot behind a SageMaker endpoint: the worker fails, the endpoint still goes."""
    sagemaker = cloud.session.client("sagemaker", endpoint_url=cloud.endpoint)
    for name in FUNCTIONS:  # the endpoint Lambda needs SageMaker's execution role
        cloud.session.client("lambda", endpoint_url=cloud.endpoint).update_function_configuration(
            FunctionName=name,
            Environment={"Variables": {**cloud.settings_env,
                                       "SPOTBOT_SAGEMAKER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/spotbot"}},
        )
    status, bot = api("POST", "/bots", {
        "name": "my-classifier", "file_types": [".txt"], "runtime": "sagemaker-endpoint",
        "image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/my-classifier:1",
        "model_data": "s3://spotbot-work/models/my-classifier/v1/model.tar.gz",
    })
    assert status == 201, bot
    cloud.put("byob/a.txt", "很好".encode())
    cloud.worker_env["SPOTBOT_READ_CONCURRENCY"] = "0"
    try:
        status, submitted = api("POST", "/jobs", {"source": "s3://assets/byob/", "bot": "my-classifier", "job_id": "byob-1"})
        assert status == 202, submitted
        execution = cloud.wait(submitted["execution_arn"])
    finally:
        del cloud.worker_env["SPOTBOT_READ_CONCURRENCY"]
    assert execution["status"] == "FAILED"
    created = [i for i in cloud.invocations if i["event"].get("job_id") == "byob-1" and i["event"].get("action") == "ensure"]
    assert created[0]["result"]["runtime"] == "sagemaker-endpoint" and created[0]["result"]["endpoint_name"]
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert cloud.batch_runs[-1]["env"]["SPOTBOT_ENDPOINT_NAME"] == created[0]["result"]["endpoint_name"]
    assert cloud.batch_runs[-1]["returncode"] == 2


def test_a_scan_that_fails_beside_a_started_endpoint_leaves_no_endpoint(cloud, api):
    """The Parallel fails (no source bucket) after its endpoint branch started the endpoint: the failure
    path has no branch output to read, so release finds the endpoint on the job record."""
    sagemaker = cloud.session.client("sagemaker", endpoint_url=cloud.endpoint)
    assert api("GET", "/bots/my-classifier")[0] == 200  # registered by the test before
    status, submitted = api("POST", "/jobs", {"source": "s3://no-such-bucket/x/", "bot": "my-classifier", "job_id": "nosrc-1"})
    assert status == 202, submitted
    execution = cloud.wait(submitted["execution_arn"])
    assert execution["status"] == "FAILED"
    steps = [(i["function"], i["event"].get("action")) for i in cloud.invocations if i["event"].get("job_id") == "nosrc-1"]
    assert ("spotbot-endpoint", "release") in steps
    assert steps.count(("spotbot-scanner", None)) == 1  # a missing bucket is not retried
    status, job = api("GET", "/jobs/nosrc-1")
    assert job["status"] == "FAILED" and "SourceNotFoundError" in job["error"]
    ensured = [i for i in cloud.invocations if i["event"].get("job_id") == "nosrc-1" and i["event"].get("action") == "ensure"]
    if ensured and ensured[0].get("result"):  # the branch got as far as starting it
        assert job["endpoint_name"] == ensured[0]["result"]["endpoint_name"]
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_cancel_releases_the_endpoint_a_stopped_execution_cannot(cloud, api):
    from lambdas.endpoint.handler import handler as endpoint_handler

    sagemaker = cloud.session.client("sagemaker", endpoint_url=cloud.endpoint)
    waiting = cloud.sfn.create_state_machine(
        name="waits-long", roleArn=cloud.sfn.describe_state_machine(stateMachineArn=cloud.state_machine)["roleArn"],
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 120, "End": True}}}),
    )["stateMachineArn"]
    os.environ["SPOTBOT_STATE_MACHINE_ARN"] = waiting
    os.environ["SPOTBOT_SAGEMAKER_ROLE_ARN"] = f"arn:aws:iam::{ACCOUNT}:role/spotbot"
    try:
        new_api_container()
        status, submitted = api("POST", "/jobs", {"source": "s3://assets/byob/", "bot": "my-classifier", "job_id": "held-1"})
        assert status == 202, submitted
        ensured = endpoint_handler({"action": "ensure", "job_id": "held-1", "bot": "my-classifier"}, moto_bridges.FakeContext("e"))
        assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == [ensured["endpoint_name"]]
        status, cancelled = api("DELETE", "/jobs/held-1")
        assert status == 200 and cancelled["status"] == "CANCELLED" and cancelled["endpoint_released"] is True
        assert sagemaker.list_endpoints()["Endpoints"] == []
    finally:
        os.environ["SPOTBOT_STATE_MACHINE_ARN"] = cloud.state_machine
        os.environ.pop("SPOTBOT_SAGEMAKER_ROLE_ARN", None)
        new_api_container()


def test_resume_finishes_a_failed_job_tagging_only_what_is_missing(cloud, api):
    """broken-1 failed with both assets pending (its worker was misconfigured); a resume runs a new execution."""
    from lambdas.api import handler as api_handler
    from spotbot.services.cloud_jobs import resume_job

    before = len(cloud.batch_runs)
    resumed = resume_job(api_handler.cloud_jobs(), "broken-1")
    assert resumed.status.value == "RUNNING" and resumed.execution_arn.endswith(":broken-1-r1")
    execution = cloud.wait(resumed.execution_arn)
    assert execution["status"] == "SUCCEEDED", (execution, cloud.invocations[-2:], cloud.batch_runs[-2:])
    status, job = api("GET", "/jobs/broken-1")
    assert job["status"] == "COMPLETED" and job["counts"]["done"] == 2 and job["counts"]["pending"] == 0
    assert job["execution_arn"] == resumed.execution_arn and job["error"] is None
    assert all(run["returncode"] == 0 for run in cloud.batch_runs[before:])


def test_a_job_with_no_assets_never_starts_an_endpoint(cloud, api):
    before = len(cloud.invocations)
    cloud.put("nothing-here/photo.jpg", b"filtered out: sentiment reads .txt")
    status, submitted = api("POST", "/jobs", {"source": "s3://assets/nothing-here/", "bot": "sentiment", "job_id": "empty-1"})
    assert status == 202, submitted
    execution = cloud.wait(submitted["execution_arn"])
    assert execution["status"] == "SUCCEEDED", (execution, cloud.invocations[before:])
    steps = [(i["function"], i["event"].get("action")) for i in cloud.invocations[before:] if i["event"].get("job_id") == "empty-1"]
    assert ("spotbot-endpoint", "ensure") not in steps
    assert steps[0] == ("spotbot-scanner", None) and ("spotbot-finalize", None) in steps
    status, job = api("GET", "/jobs/empty-1")
    assert job["counts"]["total"] == 0


def test_a_job_estimated_over_its_budget_fails_before_any_worker_starts(cloud, api):
    for i in range(3):
        cloud.put(f"budget/{i}.txt", "很好".encode())
    before, batch_runs = len(cloud.invocations), len(cloud.batch_runs)
    body = {"source": "s3://assets/budget/", "bot": "sentiment", "job_id": "budget-1", "max_cost": 0}
    status, submitted = api("POST", "/jobs", body)
    assert status == 202, submitted
    execution = cloud.wait(submitted["execution_arn"])
    assert execution["status"] == "FAILED"
    assert len(cloud.batch_runs) == batch_runs  # no worker ran
    steps = [(i["function"], i["event"].get("action")) for i in cloud.invocations[before:]]
    assert steps[-2:] == [("spotbot-endpoint", "release"), ("spotbot-finalize", None)]
    assert steps.count(("spotbot-scanner", None)) == 1  # one page, and a job over its budget is not scanned again
    status, job = api("GET", "/jobs/budget-1")
    assert job["status"] == "FAILED" and "BudgetExceededError" in job["error"] and "over its budget of $0" in job["error"]
    assert job["counts"]["pending"] == 3 and job["max_cost"] == 0

    status, resumed = api("POST", "/jobs/budget-1/resume", query={"max_cost": "100"})  # resumable, with a larger budget
    assert status == 202, resumed
    assert cloud.wait(resumed["execution_arn"])["status"] == "SUCCEEDED"
    status, job = api("GET", "/jobs/budget-1")
    assert job["status"] == "COMPLETED" and job["max_cost"] == 100 and job["counts"]["done"] == 3

    status, answer = api("POST", "/jobs", {**body, "job_id": "budget-2", "max_cost": -1})
    assert status == 400 and answer["fields"][0]["field"] == "body.max_cost"
