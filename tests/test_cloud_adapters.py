"""The boto3 adapters of the control planes (spotbot.adapters.aws) against moto, in process."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from moto.batch.models import batch_backends

from spotbot.adapters.aws.batch import BatchQueue
from spotbot.adapters.aws.sagemaker import SageMakerEndpoints
from spotbot.adapters.aws.stepfunctions import StepFunctionsEngine
from spotbot.domain import UnavailableError
from spotbot.ports.control_planes import EndpointDefinition

REGION = "us-east-1"
ACCOUNT = "123456789012"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-detector:1.0"


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield


@pytest.fixture
def engine(aws) -> StepFunctionsEngine:
    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(
        name="tag-assets", definition=json.dumps(definition), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
    )["stateMachineArn"]
    return StepFunctionsEngine(sfn, arn)


def test_an_execution_is_started_once_per_name_and_can_be_stopped(engine):
    arn, created = engine.start("job-1", {"job_id": "job-1", "shard_size": 7})
    assert created and arn == engine.execution_arn("job-1")
    assert engine.start("job-1", {"job_id": "job-1", "shard_size": 7})[0] == arn  # Step Functions: the same one
    assert engine.start("job-1", {"job_id": "job-1", "other": True}) == (arn, False)  # ExecutionAlreadyExists
    described = engine.describe(arn)
    assert described.is_running and described.input == {"job_id": "job-1", "shard_size": 7} and described.started_at
    assert engine.stop(arn, error="spotbot.Cancelled", cause="test")
    assert engine.describe(arn).status == "ABORTED" and not engine.is_running(arn)
    assert not engine.stop(arn, error="spotbot.Cancelled", cause="again")  # not running: nothing to stop
    assert engine.describe(engine.execution_arn("never")) is None and not engine.is_running(engine.execution_arn("never"))


def test_an_engine_without_a_state_machine_describes_but_cannot_start(engine):
    arn, _ = engine.start("job-1", {})
    describing = StepFunctionsEngine(engine.client, None)  # the endpoint Lambda's: it knows executions by ARN
    assert describing.is_running(arn)
    with pytest.raises(UnavailableError, match="SPOTBOT_STATE_MACHINE_ARN"):
        describing.start("job-2", {})


@pytest.fixture
def queue(aws) -> BatchQueue:
    batch = boto3.client("batch")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = boto3.client("iam").create_role(RoleName="batch", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    environment = batch.create_compute_environment(
        computeEnvironmentName="spot", type="UNMANAGED", state="ENABLED", serviceRole=role
    )["computeEnvironmentArn"]
    batch.create_job_queue(
        jobQueueName="workers", state="ENABLED", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}]
    )
    batch.register_job_definition(
        jobDefinitionName="worker", type="container", containerProperties={"image": "worker", "vcpus": 1, "memory": 512}
    )
    return BatchQueue(batch, "workers")


def _submit(queue: BatchQueue, name: str, spotbot_job: str | None, status: str = "RUNNING") -> str:
    overrides = {"environment": [{"name": "SPOTBOT_JOB_ID", "value": spotbot_job}]} if spotbot_job else {}
    job_id = queue.client.submit_job(jobName=name, jobQueue="workers", jobDefinition="worker", containerOverrides=overrides)["jobId"]
    job = batch_backends[ACCOUNT][REGION]._jobs[job_id]
    job.status, job.stop = status, False  # moto without Docker ends jobs at once; these are at work
    return job_id


def test_the_jobs_of_a_job_are_exactly_its_own(queue):
    mine = _submit(queue, "nightly", "nightly")
    finished = _submit(queue, "nightly", "nightly", status="SUCCEEDED")
    _submit(queue, "nightly-2", "nightly-2")  # a name that starts with "nightly"
    _submit(queue, "nightly", None)  # named like it, but not submitted for a spotbot job
    found = {job.job_id: job for job in queue.jobs_of("nightly")}
    assert set(found) == {mine, finished}
    assert not found[mine].is_finished and found[finished].is_finished
    queue.terminate(mine, "spotbot job nightly cancelled")
    assert batch_backends[ACCOUNT][REGION]._jobs[mine].stop
    assert BatchQueue(queue.client, None).jobs_of("nightly") == []  # no queue configured: no workers


def test_an_endpoint_is_created_once_described_and_deleted_with_its_config_and_model(aws):
    host = SageMakerEndpoints(boto3.client("sagemaker"))
    definition = EndpointDefinition(
        name="spotbot-my-detector-0123456789", image_uri=IMAGE, model_data="s3://m/model.tar.gz",
        instance_type="ml.m5.large", environment={"SPOTBOT_BOT": "my-detector"}, tags={"spotbot:bot": "my-detector"},
    )  # fmt: skip
    assert host.describe(definition.name) is None
    host.create(definition, f"arn:aws:iam::{ACCOUNT}:role/endpoints")
    host.create(definition, f"arn:aws:iam::{ACCOUNT}:role/endpoints")  # a racing creator: fine
    assert host.describe(definition.name)["status"] == "InService"
    model = host.client.describe_model(ModelName=definition.name)["PrimaryContainer"]
    assert (model["Image"], model["ModelDataUrl"], model["Environment"]) == (IMAGE, "s3://m/model.tar.gz", {"SPOTBOT_BOT": "my-detector"})
    assert host.delete_endpoint(definition.name) and not host.delete_endpoint(definition.name)
    host.delete_leftovers(definition.name)
    host.delete_leftovers(definition.name)  # twice is harmless
    assert host.client.list_endpoint_configs()["EndpointConfigs"] == [] and host.client.list_models()["Models"] == []
