"""Isolation between jobs and idempotency (issue 10), through the handler against moto and osmem."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid

import pytest
from moto.batch.models import batch_backends

from spotbot.domain import Job, JobConflictError, JobStatus
from spotbot.services.cloud_jobs import CloudJobs, accepted
from spotbot.services.cloud_requests import JobSubmission
from spotbot.services.endpoints import BotEndpoints
from spotbot.services.submission import submit_job
from spotbot.settings import Settings
from tests.api_gateway import (  # noqa: F401 -- aws, settings and cloud are fixtures
    ACCOUNT,
    ADMIN,
    CALLER,
    IMAGE,
    QUEUE,
    REGION,
    aws,
    call,
    cloud,
    executions,
    fields,
    settings,
)
from tests.fakes import STATE_MACHINE, FakeCompute, FakeEndpointHost, FakeIndex, FakeWorkflow

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
JOB = {"source": "s3://assets/reviews/", "bot": "sentiment"}


def execution_input(cloud, execution_arn: str) -> dict:
    return json.loads(cloud.workflow.client.describe_execution(executionArn=execution_arn)["input"])


# sources and outputs are scoped


@pytest.mark.parametrize(
    "source",
    ["s3://work-bucket/models/", "s3://work-bucket/jobs/job-1/shards/", "s3://work-bucket/output/", "s3://not-granted/x"],
)
def test_a_source_the_stack_does_not_grant_is_400_naming_the_allowed_buckets(cloud, source):
    status, answer = call("POST", "/jobs", body={**JOB, "source": source})
    assert status == 400 and fields(answer) == ["body.source"]
    assert "s3://assets/" in answer["fields"][0]["message"] and "s3://work-bucket/assets/" in answer["fields"][0]["message"]
    assert executions(cloud) == []


def test_the_work_buckets_asset_area_is_a_source(cloud):
    assert call("POST", "/jobs", body={**JOB, "source": "s3://work-bucket/assets/uploads/"})[0] == 202


@pytest.mark.parametrize("output", ["s3://elsewhere/tags", "s3://work-bucket/jobs", "s3://work-bucket/models/x"])
def test_an_output_outside_the_output_bucket_is_400(cloud, output):
    status, answer = call("POST", "/jobs", body={**JOB, "output": output})
    assert status == 400 and fields(answer) == ["body.output"]
    assert executions(cloud) == []


def test_an_output_inside_another_jobs_area_is_400(cloud):
    first = call("POST", "/jobs", body={**JOB, "job_id": "first"})[1]
    assert cloud.index.get_job("first").output == "s3://work-bucket/output"
    for output in ("s3://work-bucket/output/first", "s3://work-bucket/output/first/parts"):
        status, answer = call("POST", "/jobs", body={**JOB, "output": output})
        assert status == 400 and fields(answer) == ["body.output"], answer
    # a prefix of its own beside it is fine
    assert call("POST", "/jobs", body={**JOB, "output": "s3://work-bucket/output/team-a"})[0] == 202
    assert first["job_id"] == "first"


def test_a_source_uri_longer_than_1024_bytes_is_400(cloud):
    status, answer = call("POST", "/jobs", body={**JOB, "source": "s3://assets/" + "é" * 510})
    assert status == 400 and fields(answer) == ["body.source"] and "1024" in answer["fields"][0]["message"]


# a job pins its bot


DETECTOR = {
    "name": "my-detector",
    "file_types": [".jpg"],
    "runtime": "sagemaker-endpoint",
    "image_uri": IMAGE,
    "model_data": "s3://work-bucket/models/my-detector/1/model.tar.gz",
}


def test_replacing_a_bot_does_not_change_a_submitted_job(cloud):
    assert call("POST", "/bots", body=DETECTOR)[0] == 201
    accepted = call("POST", "/jobs", body={"source": "s3://assets/photos/", "bot": "my-detector", "job_id": "pinned"})[1]
    replaced = {**DETECTOR, "model_data": "s3://work-bucket/models/my-detector/2/model.tar.gz"}
    assert call("PUT", "/bots/{name}", name="my-detector", body=replaced)[0] == 200
    pinned = cloud.index.get_job("pinned").bot_registration
    assert pinned["model_data"] == DETECTOR["model_data"] and pinned["image_uri"] == IMAGE
    assert execution_input(cloud, accepted["execution_arn"])["bot_config"]["model_data"] == DETECTOR["model_data"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/not-granted:1"}, "body.image_uri"),
        ({"model_data": "s3://someone-else/model.tar.gz"}, "body.model_data"),
        ({"instance_type": "ml.p4d.24xlarge"}, "body.instance_type"),
    ],
)
def test_a_bot_is_registered_only_with_granted_images_model_data_and_instance_types(cloud, change, field):
    status, answer = call("POST", "/bots", body={**DETECTOR, **change})
    assert status == 400 and fields(answer) == [field], answer
    assert call("GET", "/bots/{name}", name="my-detector")[0] == 404


# who may change what


def test_a_job_shows_who_submitted_it_and_only_they_or_the_admin_may_cancel(cloud):
    job_id = call("POST", "/jobs", body=JOB)[1]["job_id"]
    detail = call("GET", "/jobs/{job_id}", job_id=job_id)[1]
    assert detail["created_by"] == CALLER
    status, answer = call("DELETE", "/jobs/{job_id}", job_id=job_id, caller=BOB)
    assert status == 403 and "another principal" in answer["error"]
    assert cloud.index.get_job(job_id).status == JobStatus.SUBMITTED
    status, answer = call("DELETE", "/jobs/{job_id}", job_id=job_id, caller=ADMIN)
    assert status == 200 and answer["status"] == "CANCELLED"


def test_only_the_principal_that_registered_a_bot_may_replace_or_delete_it(cloud):
    assert call("POST", "/bots", body=DETECTOR)[1]["created_by"] == CALLER
    assert call("PUT", "/bots/{name}", name="my-detector", body=DETECTOR, caller=BOB)[0] == 403
    assert call("DELETE", "/bots/{name}", name="my-detector", caller=BOB)[0] == 403
    assert call("GET", "/bots/{name}", name="my-detector")[0] == 200
    assert call("DELETE", "/bots/{name}", name="my-detector", caller=ADMIN)[0] == 204


def test_deleting_a_finished_job_is_409(cloud):
    cloud.index.save_job(Job(job_id="done-1", bot="sentiment", source="s3://assets/a", output="s3://work-bucket/output",
                             workers=1, status=JobStatus.COMPLETED, created_by=CALLER))
    status, answer = call("DELETE", "/jobs/{job_id}", job_id="done-1")
    assert status == 409 and "COMPLETED" in answer["error"]


def test_cancelling_nightly_leaves_nightly_2_running(cloud):
    for job_id in ("nightly", "nightly-2"):
        assert call("POST", "/jobs", body={**JOB, "job_id": job_id})[0] == 202
    batch = batch_backends[ACCOUNT][REGION]
    ids = {}
    for name in ("nightly", "nightly-2"):
        environment = [{"name": "SPOTBOT_JOB_ID", "value": name}]  # as the state machine submits a job's workers
        ids[name] = cloud.compute.client.submit_job(
            jobName=name, jobQueue=QUEUE, jobDefinition="worker", containerOverrides={"environment": environment}
        )["jobId"]
        batch._jobs[ids[name]].status, batch._jobs[ids[name]].stop = "RUNNING", False
    status, answer = call("DELETE", "/jobs/{job_id}", job_id="nightly")
    assert status == 200 and answer["terminated_batch_jobs"] == [ids["nightly"]]
    assert not batch._jobs[ids["nightly-2"]].stop
    assert call("GET", "/jobs/{job_id}", job_id="nightly-2")[1]["status"] == "SUBMITTED"


# idempotency


def test_the_same_key_and_body_is_200_with_the_existing_job(cloud):
    first = call("POST", "/jobs", body=JOB, headers={"Idempotency-Key": "order-42"})
    again = call("POST", "/jobs", body=JOB, headers={"Idempotency-Key": "order-42"})
    assert (first[0], again[0]) == (202, 200) and first[1] == again[1]
    scoped = hashlib.sha256(f"{CALLER}\norder-42".encode()).hexdigest()[:20]
    assert first[1]["job_id"] == f"job-{scoped}" and len(executions(cloud)) == 1


def test_the_same_key_with_a_different_body_is_409_naming_the_fields(cloud):
    assert call("POST", "/jobs", body=JOB, headers={"Idempotency-Key": "k"})[0] == 202
    status, answer = call("POST", "/jobs", body={**JOB, "workers": 3, "source": "s3://assets/other/"},
                          headers={"Idempotency-Key": "k"})
    assert status == 409 and "source, workers" in answer["error"]
    assert "reviews" not in answer["error"]  # the recorded values are not shown
    assert len(executions(cloud)) == 1


def test_a_key_cannot_be_bypassed_by_also_sending_a_job_id(cloud):
    status, answer = call("POST", "/jobs", body={**JOB, "job_id": "mine"}, headers={"Idempotency-Key": "k"})
    assert status == 400 and fields(answer) == ["body.job_id"]


def test_a_taken_job_id_is_409_without_the_other_jobs_source(cloud):
    assert call("POST", "/jobs", body={**JOB, "source": "s3://assets/secret-project/", "job_id": "taken"})[0] == 202
    status, answer = call("POST", "/jobs", body={**JOB, "job_id": "taken"}, caller=BOB)
    assert status == 409 and "source" in answer["error"] and "secret-project" not in json.dumps(answer)


def test_another_principal_with_the_same_key_gets_a_job_of_its_own(cloud):
    mine = call("POST", "/jobs", body=JOB, headers={"Idempotency-Key": "k"})[1]
    theirs = call("POST", "/jobs", body=JOB, headers={"Idempotency-Key": "k"}, caller=BOB)
    assert theirs[0] == 202 and theirs[1]["job_id"] != mine["job_id"]


@pytest.mark.parametrize("same_body", [True, False])
def test_concurrent_first_requests_with_one_key_start_exactly_one_job(cloud, same_body):
    bodies = [{**JOB, "workers": 2 if same_body or n % 2 else 3} for n in range(8)]
    answers: list[tuple[int, dict]] = []
    barrier = threading.Barrier(len(bodies))
    # Step Functions starts one execution per name atomically; moto's StateMachine.start_execution checks, then appends,
    # so two threads can both pass the check. A lock restores what AWS guarantees; all else runs concurrently.
    client, lock = cloud.workflow.client, threading.Lock()
    unlocked_start = client.start_execution

    def start_execution(**kwargs):
        with lock:
            return unlocked_start(**kwargs)

    client.start_execution = start_execution

    def submit(body: dict) -> None:
        # each Lambda container runs one request at a time: concurrent requests are concurrent service calls
        # (the resolver's current event is per container, so threads cannot share one handler)
        barrier.wait()
        try:
            submitted = submit_job(cloud, JobSubmission(**body), "race", principal=CALLER, submission_id=uuid.uuid4().hex)
        except JobConflictError as conflict:
            answers.append((409, {"error": str(conflict)}))
            return
        answers.append((202 if submitted.created else 200, accepted(submitted.job)))

    threads = [threading.Thread(target=submit, args=(body,)) for body in bodies]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        client.start_execution = unlocked_start
    statuses = sorted(status for status, _ in answers)
    assert statuses.count(202) == 1 and len(executions(cloud)) == 1
    assert set(statuses) <= ({200, 202} if same_body else {200, 202, 409})
    (winner,) = [answer for status, answer in answers if status == 202]
    assert all(answer["job_id"] == winner["job_id"] for status, answer in answers if status == 200)
    job = cloud.index.get_job(winner["job_id"])
    started = execution_input(cloud, job.execution_arn)
    assert job.execution_arn == winner["execution_arn"] and started["workers"] == job.workers  # the record is the run


# read side costs


def test_showing_a_job_does_not_refresh_the_index(cloud):
    job_id = call("POST", "/jobs", body=JOB)[1]["job_id"]
    refreshes = []
    original = cloud.index.client.indices.refresh
    cloud.index.client.indices.refresh = lambda *a, **k: refreshes.append(k) or original(*a, **k)
    try:
        for _ in range(3):
            assert call("GET", "/jobs/{job_id}", job_id=job_id)[0] == 200
    finally:
        cloud.index.client.indices.refresh = original
    assert len(refreshes) <= 1  # this instance's own writes, once; never on every call


# resume


def test_a_resume_starts_a_new_execution_and_a_running_job_cannot_resume(cloud):
    job_id = call("POST", "/jobs", body={**JOB, "job_id": "to-resume"})[1]["job_id"]
    status, answer = call("POST", "/jobs/{job_id}/resume", job_id=job_id)
    assert status == 409 and "running" in answer["error"]
    call("DELETE", "/jobs/{job_id}", job_id=job_id)
    status, answer = call("POST", "/jobs/{job_id}/resume", job_id=job_id)
    assert status == 202, answer
    assert answer["execution_arn"].endswith(f":{job_id}-r1") and answer["status"] == "RUNNING"
    assert execution_input(cloud, answer["execution_arn"])["bot_config"]["name"] == "sentiment"
    assert call("POST", "/jobs/{job_id}/resume", job_id=job_id, caller=BOB)[0] == 403


def test_the_endpoint_of_a_job_serves_the_model_it_was_submitted_with():
    stack = Settings(state_machine_arn=STATE_MACHINE, work_bucket="work", source_buckets=["assets"],
                     sagemaker_role_arn=f"arn:aws:iam::{ACCOUNT}:role/endpoints")
    index, workflow, host = FakeIndex(), FakeWorkflow(), FakeEndpointHost()
    index.save_bot({**DETECTOR, "model_data": "s3://work/models/my-detector/1/model.tar.gz"})
    jobs = CloudJobs(index=index, workflow=workflow, compute=FakeCompute(), settings=stack)
    submit_job(jobs, JobSubmission(source="s3://assets/photos", bot="my-detector", job_id="pinned"))
    index.save_bot({**DETECTOR, "model_data": "s3://work/models/my-detector/2/model.tar.gz"})  # replaced after
    endpoints = BotEndpoints(host=host, index=index, workflow=workflow, settings=stack)
    name = endpoints.ensure("pinned", "my-detector").endpoint_name
    assert host.definitions[name].model_data == "s3://work/models/my-detector/1/model.tar.gz"
    assert endpoints.spec_for("my-detector").model_data.endswith("/2/model.tar.gz")  # a new job takes the new one
