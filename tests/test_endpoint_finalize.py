"""The bot endpoint steps (lambdas/endpoint) and the Finalize step (lambdas/finalize): the real handlers,
called with the state machine's dict events, against a moto server (SageMaker, S3) and osmem.

One moto server for the module, reset before each test; every test gets an empty osmem clone.
"""

from __future__ import annotations

import io
import os
import json
import re
import tarfile
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from lambdas.endpoint.handler import handler as endpoint_handler
from lambdas.finalize.handler import handler as finalize_handler
from spotbot.adapters.opensearch.index import OpenSearchTagIndex
from spotbot.bot import UnknownBotError
from spotbot.domain import AssetRef, Job, JobStatus, TaskStatus
from spotbot.services.endpoints import EndpointBusyError, EndpointRequestError, EndpointSpec, name_stem
from spotbot.services.finalize import JobNotFoundError
from spotbot.services.models import ModelError
from spotbot.ports import TaskOutcome
from spotbot.services.planning import add_assets
from tests.moto_bridges import FakeContext

ROLE = "arn:aws:iam::123456789012:role/spotbot-endpoints"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-detector:1.0"
MODEL_DATA = "s3://my-models/my-detector/model.tar.gz"
SERVING_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/spotbot-serve:latest"
OUTPUT = "s3://results/tags"
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")



@pytest.fixture(autouse=True)
def cloud_env(monkeypatch, tmp_path, moto_url, osmem_clone):
    """Dummy credentials, boto3 pointed at moto (reset), the index at an osmem clone; no real AWS."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    for name in [n for n in os.environ if n.startswith(("AWS_", "SPOTBOT_"))]:
        monkeypatch.delenv(name)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_ENDPOINT_URL": moto_url,
        "SPOTBOT_HOME": str(tmp_path / "home"),
        "SPOTBOT_MODELS": str(tmp_path / "models"),
        "SPOTBOT_OPENSEARCH_ENDPOINT": osmem_clone.url,
        "SPOTBOT_OPENSEARCH_SIGV4": "false",
        "SPOTBOT_SAGEMAKER_ROLE_ARN": ROLE,
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def index(opensearch_index):
    return opensearch_index


@pytest.fixture
def sagemaker(cloud_env):
    return boto3.client("sagemaker")


@pytest.fixture
def s3(cloud_env):
    client = boto3.client("s3")
    client.create_bucket(Bucket="results")
    return client


def register(index: OpenSearchTagIndex, name: str = "my-detector", **doc: Any) -> None:
    index.save_bot(
        {
            "name": name,
            "file_types": [".jpg"],
            "runtime": "sagemaker-endpoint",
            "image_uri": IMAGE,
            "model_data": MODEL_DATA,
            "instance_type": "ml.g4dn.xlarge",
            **doc,
        }
    )


def job(job_id: str, bot: str = "my-detector", status: JobStatus = JobStatus.RUNNING, **more: Any) -> Job:
    """A job record; an unfinished one has a RUNNING execution (what makes a job live), unless one is given."""
    if status in (JobStatus.SUBMITTED, JobStatus.RUNNING) and "execution_arn" not in more:
        more["execution_arn"] = start_execution(job_id)
    return Job(job_id=job_id, bot=bot, source="s3://assets/photos/", output=OUTPUT, workers=2, status=status, **more)


def start_execution(name: str) -> str:
    """A RUNNING execution on moto's Step Functions (it runs nothing: a Pass state that moto never ends)."""
    sfn = boto3.client("stepfunctions")
    machines = sfn.list_state_machines()["stateMachines"]
    if machines:
        machine = machines[0]["stateMachineArn"]
    else:
        definition = {"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}
        machine = sfn.create_state_machine(
            name="tag-assets", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name=name)["executionArn"]
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    return arn


def endpoint_of_a_live_job(index: OpenSearchTagIndex, job_id: str = "job-1") -> str:
    """The registered bot's endpoint, ensured for a running job: its name."""
    register(index)
    index.save_job(job(job_id))
    return ensure(job_id)["endpoint_name"]


def ensure(job_id: str, bot: str = "my-detector", model_version: str | None = None) -> dict[str, Any]:
    return call(endpoint_handler, {"action": "ensure", "job_id": job_id, "bot": bot, "model_version": model_version})


def describe(endpoint_name: str | None) -> dict[str, Any]:
    return call(endpoint_handler, {"action": "describe", "endpoint_name": endpoint_name})


def release(job_id: str, endpoint_name: str | None) -> dict[str, Any]:
    return call(endpoint_handler, {"action": "release", "job_id": job_id, "endpoint_name": endpoint_name})


def call(handler, event: dict[str, Any]) -> dict[str, Any]:
    output = handler(json.loads(json.dumps(event)), FakeContext("spotbot-step"))
    assert json.loads(json.dumps(output)) == output  # Step Functions state is JSON
    return output


def endpoints(sagemaker) -> list[str]:
    return [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]


def assert_gone(sagemaker, name: str) -> None:
    """No endpoint is left, and `name`'s endpoint, config and model are deleted."""
    assert endpoints(sagemaker) == []
    for call_, key in (
        (sagemaker.describe_endpoint, "EndpointName"),
        (sagemaker.describe_endpoint_config, "EndpointConfigName"),
        (sagemaker.describe_model, "ModelName"),
    ):
        with pytest.raises(ClientError) as raised:
            call_(**{key: name})
        assert raised.value.response["Error"]["Code"] == "ValidationException"


# ensure


def test_a_builtin_bot_runs_in_the_container(index, sagemaker):
    # "" rather than null: the state machine passes it into the Batch environment, whose values are strings
    assert ensure("job-1", "scene-text") == {"runtime": "in-container", "endpoint_name": "", "status": "NotNeeded"}
    assert endpoints(sagemaker) == []
    assert describe("") == {"endpoint_name": None, "status": "NotNeeded"}


def test_a_registered_in_container_bot_needs_no_endpoint(index, sagemaker):
    register(index, "my-tagger", runtime="in-container", model_data=None, instance_type=None)
    assert ensure("job-1", "my-tagger")["runtime"] == "in-container"
    assert endpoints(sagemaker) == []


def test_a_registered_endpoint_bot_gets_its_model_config_and_endpoint(index, sagemaker):
    register(index)
    out = ensure("job-1")
    name = out["endpoint_name"]
    assert out == {"runtime": "sagemaker-endpoint", "endpoint_name": name, "status": "Creating"}
    assert SAGEMAKER_NAME.match(name) and name.startswith("spotbot-my-detector-")
    assert name == EndpointSpec("my-detector", IMAGE, MODEL_DATA, "ml.g4dn.xlarge").name  # deterministic

    model = sagemaker.describe_model(ModelName=name)
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    assert model["PrimaryContainer"]["Environment"] == {"SPOTBOT_BOT": "my-detector"}
    assert model["ExecutionRoleArn"] == ROLE
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (name, "ml.g4dn.xlarge", 1)
    assert sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"] == name


def test_ensure_twice_makes_one_endpoint_and_a_new_model_a_new_one(index, sagemaker):
    register(index, instance_type=None)
    first = ensure("job-1")
    second = ensure("job-2")
    assert second["endpoint_name"] == first["endpoint_name"]
    assert second["status"] == "InService"  # moto's endpoints are in service at once
    assert endpoints(sagemaker) == [first["endpoint_name"]]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=first["endpoint_name"])
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"  # the default

    register(index, model_data="s3://my-models/my-detector/v2/model.tar.gz")
    third = ensure("job-3")
    assert third["endpoint_name"] != first["endpoint_name"]
    assert sorted(endpoints(sagemaker)) == sorted([first["endpoint_name"], third["endpoint_name"]])


def test_long_bot_names_make_valid_sagemaker_names():
    name = EndpointSpec("a" * 63, IMAGE, MODEL_DATA, "ml.m5.large").name
    assert len(name) <= 63 and SAGEMAKER_NAME.match(name)
    assert name.startswith(name_stem("a" * 63) + "-")


def test_unknown_bots_and_unservable_versions_raise_named_errors(index, sagemaker):
    with pytest.raises(UnknownBotError, match="no-such-bot"):
        ensure("job-1", "no-such-bot")
    register(index, model_version="v3")
    with pytest.raises(ModelError, match="v3"):
        ensure("job-1", model_version="v4")
    assert ensure("job-1", model_version="v3")["runtime"] == "sagemaker-endpoint"
    with pytest.raises(EndpointRequestError, match="action"):
        call(endpoint_handler, {"action": "start", "job_id": "job-1"})


def test_builtin_bots_on_endpoints_when_settings_say_so(index, sagemaker, cloud_env):
    """The serving image, with the pinned version's archive from the S3 model store as model data."""
    cloud_env.setenv("SPOTBOT_BUILTIN_BOT_RUNTIME", "sagemaker-endpoint")
    cloud_env.setenv("SPOTBOT_SERVING_IMAGE_URI", SERVING_IMAGE)
    cloud_env.setenv("SPOTBOT_MODELS", "s3://models/store")
    boto3.client("s3").create_bucket(Bucket="models")
    boto3.client("s3").put_object(
        Bucket="models", Key="store/sentiment/v99/model.tar.gz", Body=archive({"bot": "sentiment", "format": "test"})
    )
    out = ensure("job-1", "sentiment", model_version="v99")
    assert out["runtime"] == "sagemaker-endpoint"
    model = sagemaker.describe_model(ModelName=out["endpoint_name"])["PrimaryContainer"]
    assert model["Image"] == SERVING_IMAGE
    assert model["ModelDataUrl"] == "s3://models/store/sentiment/v99/model.tar.gz"
    assert model["Environment"] == {"SPOTBOT_BOT": "sentiment"}

    # a running job of the same bot and version is found as a user of the endpoint
    index.save_job(job("job-2", bot="sentiment", model_version="v99"))
    index.save_job(job("job-3", bot="scene-text"))
    assert release("job-1", out["endpoint_name"]) == {"released": False, "in_use_by": ["job-2"]}


def archive(manifest: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# describe


def test_describe_reports_the_endpoint_status(index, sagemaker):
    register(index)
    name = ensure("job-1")["endpoint_name"]
    assert describe(name) == {"endpoint_name": name, "status": "InService"}
    assert describe(None) == {"endpoint_name": None, "status": "NotNeeded"}
    assert describe("spotbot-gone-0123456789") == {"endpoint_name": "spotbot-gone-0123456789", "status": "NotFound"}


# release


def test_release_keeps_an_endpoint_another_running_job_uses(index, sagemaker):
    name = endpoint_of_a_live_job(index)
    index.save_job(job("job-2"))  # the same bot: the same endpoint
    index.save_job(job("job-3", status=JobStatus.SUBMITTED))
    index.save_job(job("job-4", status=JobStatus.COMPLETED))  # finished: not a user
    index.save_job(job("job-5", bot="scene-text"))  # in the container: not a user
    assert ensure("job-2")["endpoint_name"] == name

    assert release("job-1", name) == {"released": False, "in_use_by": ["job-2", "job-3"]}
    assert endpoints(sagemaker) == [name]

    index.save_job(job("job-2", status=JobStatus.COMPLETED))
    index.save_job(job("job-3", status=JobStatus.CANCELLED))
    assert release("job-1", name) == {"released": True, "in_use_by": []}
    assert_gone(sagemaker, name)


def test_release_alone_deletes_and_twice_is_harmless(index, sagemaker):
    name = endpoint_of_a_live_job(index)
    assert release("job-1", name) == {"released": True, "in_use_by": []}
    assert_gone(sagemaker, name)
    assert release("job-1", name) == {"released": False, "in_use_by": []}  # the failure path may release twice
    assert release("job-1", None) == {"released": False, "in_use_by": []}  # an in-container bot
    with pytest.raises(ValueError, match="spotbot"):
        release("job-1", "someone-elses-endpoint")


def test_a_running_job_whose_bot_is_gone_keeps_that_bots_endpoints(index, sagemaker):
    register(index)
    name = ensure("job-1")["endpoint_name"]
    index.save_job(job("job-2"))
    index.delete_bot("my-detector")
    assert release("job-1", name) == {"released": False, "in_use_by": ["job-2"]}


def test_release_waits_for_an_endpoint_still_settling(index, sagemaker, monkeypatch):
    register(index)
    name = ensure("job-1")["endpoint_name"]
    from lambdas.endpoint import handler as module

    endpoints_ = module._connect()
    sagemaker_client = endpoints_.host.client
    real = sagemaker_client.describe_endpoint
    monkeypatch.setattr(sagemaker_client, "describe_endpoint", lambda **kw: real(**kw) | {"EndpointStatus": "Creating"})
    with pytest.raises(EndpointBusyError, match="Creating"):
        release("job-1", name)
    monkeypatch.setattr(sagemaker_client, "describe_endpoint", lambda **kw: real(**kw) | {"EndpointStatus": "Deleting"})
    with pytest.raises(EndpointBusyError, match="Deleting"):
        ensure("job-2")


# finalize


def seed(index: OpenSearchTagIndex, job_id: str, done: int, failed: int = 0, status: JobStatus = JobStatus.RUNNING) -> None:
    index.save_job(job(job_id, bot="sentiment", status=status))
    assets = [AssetRef(uri=f"s3://assets/{job_id}/{i}.txt", etag=f"e{i}", size=10) for i in range(done + failed + 1)]
    add_assets(index, job_id, assets, shard_size=2)
    outcomes = [TaskOutcome(a.uri, TaskStatus.DONE) for a in assets[:done]]
    outcomes += [TaskOutcome(a.uri, TaskStatus.FAILED, "not UTF-8") for a in assets[done : done + failed]]
    outcomes.append(TaskOutcome(assets[-1].uri, TaskStatus.SKIPPED))
    index.record_outcomes([], outcomes, job_id)


def finalize(job_id: str, error: dict[str, str] | None = None) -> dict[str, Any]:
    return call(finalize_handler, {"job_id": job_id, "output": OUTPUT, "error": error})


def summary(s3, job_id: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket="results", Key=f"tags/{job_id}/_job.json")["Body"].read())


def test_finalize_completes_a_job_with_its_counts_and_summary(index, s3):
    seed(index, "job-ok", done=3)
    out = finalize("job-ok")
    counts = {"total": 4, "pending": 0, "done": 3, "failed": 0, "skipped": 1}
    assert out == {
        "job_id": "job-ok",
        "status": "COMPLETED",
        "counts": counts,
        "summary": "s3://results/tags/job-ok/_job.json",
        "error": None,
    }
    written = summary(s3, "job-ok")
    assert (written["status"], written["counts"]) == ("COMPLETED", counts)
    assert written["finished_at"]
    saved = index.get_job("job-ok")
    assert (saved.status, saved.counts.model_dump(), saved.finished_at is not None) == (JobStatus.COMPLETED, counts, True)


def test_finalize_a_job_with_failed_assets_is_partial(index, s3):
    seed(index, "job-some", done=2, failed=1)
    out = finalize("job-some")
    assert (out["status"], out["counts"]["failed"], out["counts"]["done"]) == ("PARTIAL", 1, 2)
    assert summary(s3, "job-some")["status"] == "PARTIAL"
    assert index.get_job("job-some").status == JobStatus.PARTIAL


def test_finalize_with_a_caught_error_fails_the_job_and_keeps_the_error(index, s3):
    seed(index, "job-err", done=3)
    cause = json.dumps({"errorMessage": "source bucket assets does not exist", "errorType": "SourceNotFoundError"})
    out = finalize("job-err", {"Error": "SourceNotFoundError", "Cause": cause})
    assert out["status"] == "FAILED"
    assert out["error"] == "SourceNotFoundError: source bucket assets does not exist"
    assert summary(s3, "job-err")["error"] == out["error"]
    raw = index.client.get(index=index.jobs_index, id="job-err")["_source"]
    assert (raw["status"], raw["error"]) == ("FAILED", out["error"])

    batch = {"Error": "States.TaskFailed", "Cause": '{"Status": "FAILED", "StatusReason": "Host EC2 terminated"}'}
    assert finalize("job-err", batch)["error"] == f"States.TaskFailed: {batch['Cause']}"


def test_a_cancelled_job_stays_cancelled(index, s3):
    seed(index, "job-off", done=1, status=JobStatus.CANCELLED)
    out = finalize("job-off", {"Error": "States.Runtime", "Cause": "execution stopped"})
    assert out["status"] == "CANCELLED"
    assert index.get_job("job-off").status == JobStatus.CANCELLED
    assert summary(s3, "job-off")["counts"]["done"] == 1


def test_finalize_an_unknown_job_raises(index, s3):
    with pytest.raises(JobNotFoundError):
        finalize("job-nobody")


# the leak paths, through the handler: release by job id, dead executions, zero assets


def test_the_failure_path_releases_by_job_id_alone(index, sagemaker):
    name = endpoint_of_a_live_job(index)
    assert index.get_job("job-1").endpoint_name == name  # recorded at ensure time
    assert call(endpoint_handler, {"action": "release", "job_id": "job-1"}) == {"released": True, "in_use_by": []}
    assert_gone(sagemaker, name)


def test_an_execution_stopped_in_the_console_pins_no_endpoint(index, sagemaker):
    name = endpoint_of_a_live_job(index)
    dead = job("job-dead")
    index.save_job(dead)
    assert ensure("job-dead")["endpoint_name"] == name
    assert release("job-1", name) == {"released": False, "in_use_by": ["job-dead"]}
    boto3.client("stepfunctions").stop_execution(executionArn=dead.execution_arn)  # no Catch runs, nothing finalizes
    assert index.get_job("job-dead").status == JobStatus.RUNNING
    assert release("job-1", name) == {"released": True, "in_use_by": []}
    assert endpoints(sagemaker) == []


def test_a_job_with_no_assets_starts_no_endpoint(index, sagemaker):
    register(index)
    index.save_job(job("job-empty"))
    event = {"action": "ensure", "job_id": "job-empty", "bot": "my-detector", "model_version": "", "tasks": 0}
    assert call(endpoint_handler, event) == {"runtime": "sagemaker-endpoint", "endpoint_name": "", "status": "NotNeeded"}
    assert endpoints(sagemaker) == [] and index.get_job("job-empty").endpoint_name is None
    with pytest.raises(EndpointRequestError, match="tasks"):
        call(endpoint_handler, event | {"tasks": -1})


def test_finalize_after_a_batch_failure_with_work_done_is_partial(index, s3):
    seed(index, "job-half", done=2)
    add_assets(index, "job-half", [AssetRef(uri="s3://assets/job-half/late.txt", etag="e", size=1)], shard_size=2)
    batch = {"Error": "States.TaskFailed", "Cause": json.dumps({"JobId": "b-1", "Status": "FAILED", "StatusReason": "Array Child Job failed"})}
    out = finalize("job-half", batch)
    assert (out["status"], out["counts"]["done"], out["counts"]["pending"]) == ("PARTIAL", 2, 1)
    assert "Array Child Job failed" in out["error"]
    assert summary(s3, "job-half")["status"] == "PARTIAL"
