"""The cloud services' rules on in-memory control planes (tests/fakes.py): no AWS emulation.

Submit is idempotent, cancel stops exactly its own job and releases its endpoint, release keeps an
endpoint only for a live job (its execution RUNNING), zero assets start no endpoint, resume starts
`<job_id>-r<n>`. Every leak path ends with no endpoint left.
"""

from __future__ import annotations

import pytest

from spotbot.domain import ConflictError, Job, JobCounts, JobStatus, NotFoundError
from spotbot.domain.job import JobConflictError, JobFinishedError
from spotbot.services.cloud_jobs import CloudJobs, cancel_job, resume_job, submit_job
from spotbot.services.cloud_requests import JobSubmission
from spotbot.services.endpoints import BotEndpoints
from spotbot.services.finalize import CaughtError, FinalizeRequest, finalize_job
from spotbot.settings import Settings
from tests.fakes import STATE_MACHINE, FakeCompute, FakeEndpointHost, FakeIndex, FakeWorkflow

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-detector:1.0"
SETTINGS = Settings(
    state_machine_arn=STATE_MACHINE,
    batch_job_queue="workers",
    work_bucket="work",
    sagemaker_role_arn="arn:aws:iam::123456789012:role/endpoints",
)


@pytest.fixture
def cloud() -> CloudJobs:
    index = FakeIndex()
    index.save_bot(
        {"name": "my-detector", "file_types": [".jpg"], "runtime": "sagemaker-endpoint", "image_uri": IMAGE,
         "model_data": "s3://models/my-detector/model.tar.gz", "instance_type": "ml.g4dn.xlarge"}  # fmt: skip
    )
    workflow = FakeWorkflow()
    endpoints = BotEndpoints(host=FakeEndpointHost(), index=index, workflow=workflow, settings=SETTINGS)
    return CloudJobs(index=index, workflow=workflow, compute=FakeCompute(), settings=SETTINGS, endpoints=endpoints)


def submit(cloud: CloudJobs, job_id: str, bot: str = "my-detector", **more) -> Job:
    return submit_job(cloud, JobSubmission(source="s3://assets/photos", bot=bot, output="s3://out/tags", job_id=job_id, **more)).job


def started_endpoint(cloud: CloudJobs, job_id: str) -> str:
    """The job is submitted and its "Start bot endpoint" step ran: the endpoint exists, recorded on the job."""
    submit(cloud, job_id)
    name = cloud.endpoints.ensure(job_id, "my-detector").endpoint_name
    assert name and cloud.endpoints.host.describe(name) == {"status": "InService"}
    assert cloud.index.get_job(job_id).endpoint_name == name
    return name


def host(cloud: CloudJobs) -> FakeEndpointHost:
    return cloud.endpoints.host


# submit


def test_the_same_idempotency_key_twice_starts_one_execution(cloud):
    body = JobSubmission(source="s3://assets/photos", bot="my-detector", output="s3://out/tags", idempotency_key="k-1")
    first = submit_job(cloud, body)
    second = submit_job(cloud, body)
    assert first.created and not second.created
    assert first.job.job_id == second.job.job_id and len(cloud.workflow.started) == 1
    assert first.job.status == JobStatus.SUBMITTED
    with pytest.raises(JobConflictError, match="source"):
        submit_job(cloud, body.model_copy(update={"source": "s3://assets/other"}))


def test_a_job_whose_execution_did_not_start_is_failed_with_why(cloud, monkeypatch):
    def refuse(name, execution_input):
        raise RuntimeError("throttled")

    monkeypatch.setattr(cloud.workflow, "start", refuse)
    with pytest.raises(RuntimeError, match="throttled"):
        submit(cloud, "job-1")
    failed = cloud.index.get_job("job-1")
    assert failed.status == JobStatus.FAILED and "throttled" in failed.error and failed.finished_at


# cancel


def test_cancel_terminates_exactly_its_own_batch_jobs_and_releases_its_endpoint(cloud):
    name = started_endpoint(cloud, "nightly")
    mine = cloud.compute.add("nightly", "nightly")
    done = cloud.compute.add("nightly", "nightly", status="SUCCEEDED")
    other = cloud.compute.add("nightly-2", "nightly-2")  # its name starts with "nightly"
    detail = cancel_job(cloud, "nightly")
    assert detail["status"] == "CANCELLED" and detail["terminated_batch_jobs"] == [mine]
    assert set(cloud.compute.terminated) == {mine} and done not in cloud.compute.terminated
    assert other not in cloud.compute.terminated
    assert detail["execution"]["status"] == "ABORTED"
    assert detail["endpoint_released"] is True and host(cloud).describe(name) is None  # a stopped execution runs no Catch

    again = cancel_job(cloud, "nightly")  # harmless
    assert again["status"] == "CANCELLED" and again["terminated_batch_jobs"] == []


def test_cancel_of_a_finished_job_is_a_conflict_and_stops_nothing(cloud):
    name = started_endpoint(cloud, "job-1")
    job = cloud.index.get_job("job-1")
    cloud.index.save_job(job.start(JobCounts()).finish(JobCounts(total=1, done=1)))
    with pytest.raises(JobFinishedError, match="COMPLETED") as raised:
        cancel_job(cloud, "job-1")
    assert isinstance(raised.value, ConflictError)  # 409
    assert cloud.workflow.is_running(job.execution_arn) and host(cloud).describe(name) is not None
    with pytest.raises(NotFoundError):
        cancel_job(cloud, "no-such-job")


# release: only when no live job uses it


def test_release_by_job_id_finds_the_endpoint_on_the_job(cloud):
    name = started_endpoint(cloud, "job-1")
    released = cloud.endpoints.release("job-1")  # the failure path: no endpoint name, only the job
    assert released.released and host(cloud).describe(name) is None
    assert not cloud.endpoints.release("job-1").released  # twice is harmless
    assert not cloud.endpoints.release("job-unknown").released


def test_a_live_job_keeps_the_endpoint_until_its_execution_ends(cloud):
    name = started_endpoint(cloud, "job-1")
    assert started_endpoint(cloud, "job-2") == name  # the same bot and model: one endpoint
    cloud.index.save_job(cloud.index.get_job("job-2").start(JobCounts()))
    assert cloud.endpoints.release("job-1").in_use_by == ["job-2"]
    assert host(cloud).describe(name) is not None

    cloud.workflow.end(cloud.index.get_job("job-2").execution_arn, "SUCCEEDED")
    assert cloud.endpoints.release("job-1").released and host(cloud).describe(name) is None


def test_a_job_whose_execution_died_without_finalizing_pins_no_endpoint(cloud):
    name = started_endpoint(cloud, "job-1")
    started_endpoint(cloud, "job-dead")
    dead = cloud.index.get_job("job-dead").start(JobCounts())
    cloud.index.save_job(dead)  # RUNNING in the index for ever: stopped in the console, or States.Runtime
    cloud.workflow.end(dead.execution_arn, "ABORTED")
    released = cloud.endpoints.release("job-1")
    assert released.released and released.in_use_by == [] and host(cloud).describe(name) is None


def test_a_parallel_failure_after_ensure_releases_the_endpoint(cloud):
    """The scan fails while the endpoint branch ran: the Catch releases by job id, then Finalize fails the job."""
    name = started_endpoint(cloud, "job-1")
    assert cloud.endpoints.release("job-1").released
    assert host(cloud).endpoints == {} and host(cloud).describe(name) is None


def test_a_job_with_no_assets_starts_no_endpoint(cloud):
    submit(cloud, "job-empty")
    ensured = cloud.endpoints.ensure("job-empty", "my-detector", tasks=0)
    assert ensured.endpoint_name is None and ensured.as_output()["endpoint_name"] == ""
    assert host(cloud).created == [] and host(cloud).endpoints == {}
    assert cloud.index.get_job("job-empty").endpoint_name is None
    assert cloud.endpoints.ensure("job-empty", "my-detector", tasks=3).endpoint_name  # with work: one starts


def test_an_in_container_bot_needs_no_endpoint(cloud):
    submit(cloud, "job-1", bot="sentiment")
    assert cloud.endpoints.ensure("job-1", "sentiment").endpoint_name is None
    assert host(cloud).created == []


# finalize and resume


def _finalize(cloud: CloudJobs, job_id: str, counts: JobCounts, error: CaughtError | None) -> Job:
    cloud.index.job_counts[job_id] = counts
    written = []

    class Output:
        def write_summary(self, job: Job) -> str:
            written.append(job)
            return f"s3://out/tags/{job_id}/_job.json"

    finalized = finalize_job(cloud.index, FinalizeRequest(job_id=job_id, error=error), lambda output: Output()).job
    assert written == [finalized]
    return finalized


BATCH_FAILED = CaughtError(
    Error="States.TaskFailed",
    Cause='{"JobId": "b-1", "Status": "FAILED", "StatusReason": "Array Child Job failed"}',
)


def test_a_batch_failure_after_some_shards_is_partial_with_its_counts_and_error(cloud):
    submit(cloud, "job-1")
    job = _finalize(cloud, "job-1", JobCounts(total=10, done=6, pending=4), BATCH_FAILED)
    assert job.status == JobStatus.PARTIAL and job.counts.done == 6 and job.counts.pending == 4
    assert "Array Child Job failed" in job.error

    submit(cloud, "job-2")
    nothing = _finalize(cloud, "job-2", JobCounts(total=10, pending=10), BATCH_FAILED)
    assert nothing.status == JobStatus.FAILED and "Array Child Job failed" in nothing.error
    scan = CaughtError(Error="SourceNotFoundError", Cause="no bucket")
    submit(cloud, "job-3")
    assert _finalize(cloud, "job-3", JobCounts(total=3, done=3), scan).status == JobStatus.FAILED  # not a Batch failure


def test_resume_starts_a_new_execution_of_the_same_job_with_the_same_input(cloud):
    submit(cloud, "job-1", shard_size=50)
    first_arn = cloud.index.get_job("job-1").execution_arn
    with pytest.raises(ConflictError, match="running"):
        resume_job(cloud, "job-1")  # its execution still runs
    cloud.workflow.end(first_arn, "FAILED")
    _finalize(cloud, "job-1", JobCounts(total=10, done=6, pending=4), BATCH_FAILED)

    resumed = resume_job(cloud, "job-1")
    assert resumed.status == JobStatus.RUNNING and resumed.error is None and resumed.finished_at is None
    assert resumed.execution_arn.endswith(":job-1-r1") and cloud.workflow.is_running(resumed.execution_arn)
    (name, first_input), (again, resumed_input) = cloud.workflow.started
    assert (name, again) == ("job-1", "job-1-r1")
    assert resumed_input == first_input and resumed_input["job_id"] == "job-1" and resumed_input["shard_size"] == 50

    cloud.workflow.end(resumed.execution_arn, "SUCCEEDED")
    _finalize(cloud, "job-1", JobCounts(total=10, done=9, failed=1), None)
    assert resume_job(cloud, "job-1").execution_arn.endswith(":job-1-r2")


def test_a_completed_job_has_nothing_to_resume(cloud):
    submit(cloud, "job-1")
    cloud.workflow.end(cloud.index.get_job("job-1").execution_arn, "SUCCEEDED")
    _finalize(cloud, "job-1", JobCounts(total=2, done=2), None)
    with pytest.raises(ConflictError, match="COMPLETED"):
        resume_job(cloud, "job-1")
    with pytest.raises(NotFoundError):
        resume_job(cloud, "no-such-job")


def test_a_job_whose_execution_died_can_be_resumed(cloud):
    submit(cloud, "job-1")
    job = cloud.index.get_job("job-1").start(JobCounts(total=4, pending=4))
    cloud.index.save_job(job)
    cloud.workflow.end(job.execution_arn, "ABORTED")  # stopped in the console: nothing finalized it
    assert resume_job(cloud, "job-1").execution_arn.endswith(":job-1-r1")
