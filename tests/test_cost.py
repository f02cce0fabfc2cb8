"""What a job cost, measured after it: Batch attempts (Spot reclaims counted), endpoint hours, the budget check."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from spotbot.domain import Job
from spotbot.domain.pricing import BudgetExceededError, WorkerAttempt, cloud_job_cost, local_job_cost, over_budget
from spotbot.services.estimate import load_bot_profiles, load_price_table

TABLE = load_price_table()
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def attempt(start_min: float, minutes: float, reason: str = "Essential container in task exited", **kw) -> WorkerAttempt:
    started = T0 + timedelta(minutes=start_min)
    return WorkerAttempt(started_at=started, stopped_at=started + timedelta(minutes=minutes), status_reason=reason, **kw)


def test_cloud_cost_sums_every_attempt_and_counts_spot_reclaims():
    attempts = [
        attempt(0, 30),
        attempt(0, 10, "Host EC2 (instance i-0abc) terminated."),  # reclaimed: paid for, then retried
        attempt(12, 30),
        attempt(0, 60, instance_type="c6i.xlarge"),  # a 2-vCPU worker on a 4-vCPU instance pays half of it
    ]
    cost = cloud_job_cost(attempts, TABLE, worker_vcpus=2, spot_discount=0.7)
    assert cost.where == "cloud" and cost.attempts == 4 and cost.spot_reclaims == 1
    assert cost.worker_seconds == pytest.approx((30 + 10 + 30 + 60) * 60)
    assert cost.vcpu_hours == pytest.approx((30 + 10 + 30 + 60) / 60 * 2)
    large = 70 / 60 * 0.085 * 0.3
    xlarge = 1.0 * 0.5 * 0.17 * 0.3
    assert cost.compute_usd == pytest.approx(large + xlarge)
    assert cost.instance_types == ["c6i.large", "c6i.xlarge"]
    assert cost.total_usd == pytest.approx(cost.compute_usd)


def test_an_attempt_that_never_started_costs_nothing_and_endpoint_hours_are_priced():
    cost = cloud_job_cost([WorkerAttempt(started_at=None, stopped_at=None)], TABLE, worker_vcpus=2,
                          endpoint_hours=1.5, endpoint_instance_type="ml.m5.large")
    assert cost.worker_seconds == 0 and cost.compute_usd == 0
    assert cost.endpoint_usd == pytest.approx(1.5 * 0.115)
    assert cost.total_usd == pytest.approx(cost.endpoint_usd)


def test_local_cost_is_cpu_seconds_at_the_spot_price_of_a_vcpu():
    cost = local_job_cost(7200, TABLE, "c6i.large", spot_discount=0.5)
    assert cost.vcpu_hours == pytest.approx(2.0)
    assert cost.total_usd == pytest.approx(2.0 * 0.085 * 0.5 / 2)


def test_a_job_keeps_its_cost_and_budget_through_its_lifecycle():
    job = Job(job_id="j", bot="b", source="s", output="o", workers=1, max_cost=0.01)
    cost = cloud_job_cost([attempt(0, 600)], TABLE, worker_vcpus=2)
    job = job.record_cost(cost)
    assert Job.model_validate_json(job.model_dump_json()).cost == cost  # the summary round-trips
    assert over_budget(job.cost, job.max_cost)
    assert not over_budget(job.cost, None) and not over_budget(job.cost, 10.0)


# a cloud job: finalize records the cost from the ComputeQueue; the budget stops a running job

from botocore.stub import Stubber  # noqa: E402
import boto3  # noqa: E402

from spotbot.adapters.aws.batch import BatchQueue  # noqa: E402
from spotbot.domain import JobCounts, JobStatus  # noqa: E402
from spotbot.services.cloud_jobs import CloudJobs, resume_job  # noqa: E402
from spotbot.services.submission import submit_job  # noqa: E402
from spotbot.services.cloud_requests import JobSubmission  # noqa: E402
from spotbot.services.finalize import FinalizeRequest, finalize_job  # noqa: E402
from spotbot.services.job_cost import CostBasis, refuse_planned_over_budget, stop_jobs_over_budget, stop_over_budget  # noqa: E402
from spotbot.settings import Settings  # noqa: E402
from tests.fakes import STATE_MACHINE, FakeCompute, FakeIndex, FakeWorkflow  # noqa: E402

SETTINGS = Settings(
    state_machine_arn=STATE_MACHINE, batch_job_queue="workers", work_bucket="work", source_buckets=["assets"],
    default_output="s3://out/tags",
)
BASIS = CostBasis(TABLE, worker_vcpus=2, spot_discount=0.7)


@pytest.fixture
def cloud() -> CloudJobs:
    return CloudJobs(index=FakeIndex(), workflow=FakeWorkflow(), compute=FakeCompute(), settings=SETTINGS)


def test_finalize_records_the_measured_cost_from_the_batch_attempts(cloud):
    job = submit_job(cloud, JobSubmission(source="s3://assets/p", bot="sentiment", output="s3://out/t", job_id="j1")).job
    cloud.compute.attempts["j1"] = [attempt(0, 30), attempt(0, 5, "Host EC2 (instance i-1) terminated."), attempt(6, 30)]
    cloud.index.job_counts["j1"] = JobCounts(total=4, done=4)
    written = []

    class Output:
        def write_summary(self, finished: Job) -> str:
            written.append(finished)
            return "s3://out/t/j1/_job.json"

    finalized = finalize_job(cloud.index, FinalizeRequest(job_id=job.job_id), lambda output: Output(), cloud.compute, BASIS).job
    assert written[0].cost == finalized.cost  # the summary has it
    cost = finalized.cost
    assert cost.attempts == 3 and cost.spot_reclaims == 1 and cost.worker_seconds == 65 * 60
    assert cost.total_usd == pytest.approx(65 / 60 * 0.085 * 0.3)
    assert cloud.index.get_job("j1").cost == cost


def test_a_running_job_over_its_budget_is_stopped_and_can_resume(cloud):
    submit_job(cloud, JobSubmission(source="s3://assets/p", bot="sentiment", output="s3://out/t", job_id="j2"))
    cloud.index.save_job(cloud.index.get_job("j2").model_copy(update={"max_cost": 0.05, "status": JobStatus.RUNNING}))
    batch = cloud.compute.add("j2", "j2-tag")
    running = WorkerAttempt(started_at=T0, stopped_at=None)  # still running: counted up to now
    cloud.compute.attempts["j2"] = [running]
    assert stop_over_budget(cloud, "j2", BASIS, now=T0 + timedelta(hours=1)) is None  # $0.0255: within
    cost = stop_over_budget(cloud, "j2", BASIS, now=T0 + timedelta(hours=3))
    assert cost is not None and cost.total_usd == pytest.approx(3 * 0.085 * 0.3)
    stopped = cloud.index.get_job("j2")
    assert stopped.status == JobStatus.CANCELLED and "crossed the budget of $0.0500" in stopped.error
    assert batch in cloud.compute.terminated and stopped.cost == cost
    assert stop_over_budget(cloud, "j2", BASIS, now=T0 + timedelta(hours=4)) is None  # stopped once
    assert resume_job(cloud, "j2").status in (JobStatus.SUBMITTED, JobStatus.RUNNING)  # the rest can be tagged


def test_the_budget_watch_stops_only_the_live_budgeted_jobs_over_their_budget(cloud):
    for job_id, max_cost, status in (("over", 0.05, JobStatus.RUNNING), ("within", 5.0, JobStatus.RUNNING),
                                     ("unbudgeted", None, JobStatus.RUNNING), ("done", 0.01, JobStatus.COMPLETED)):  # fmt: skip
        submit_job(cloud, JobSubmission(source="s3://assets/p", bot="sentiment", output=f"s3://out/{job_id}", job_id=job_id))
        cloud.index.save_job(cloud.index.get_job(job_id).model_copy(update={"max_cost": max_cost, "status": status}))
        cloud.compute.attempts[job_id] = [WorkerAttempt(started_at=T0, stopped_at=None)]
    stopped = stop_jobs_over_budget(cloud, BASIS, max_jobs=3 + 1, now=T0 + timedelta(hours=3))
    assert set(stopped) == {"over"} and cloud.index.get_job("over").status == JobStatus.CANCELLED
    assert {cloud.index.get_job(j).status for j in ("within", "unbudgeted")} == {JobStatus.RUNNING}
    assert cloud.index.get_job("done").status == JobStatus.COMPLETED  # finished jobs are not priced again


def test_the_scan_refuses_a_budgeted_job_whose_planned_tasks_cost_more(cloud):
    submit_job(cloud, JobSubmission(source="s3://assets/p", bot="sentiment", output="s3://out/b", job_id="b1", max_cost=0.05))
    cloud.index.job_counts["b1"] = JobCounts(total=1000, pending=1000)
    profiles = load_bot_profiles()
    refuse_planned_over_budget(cloud.index, "b1", "sentiment", table=TABLE, profiles=profiles)  # cents: within
    cloud.index.job_counts["b1"] = JobCounts(total=10_000_000, done=5, pending=9_999_995)
    with pytest.raises(BudgetExceededError, match=r"9,999,995 assets with sentiment .* over its budget of \$0\.0500"):
        refuse_planned_over_budget(cloud.index, "b1", "sentiment", table=TABLE, profiles=profiles)
    refuse_planned_over_budget(cloud.index, "b1", "my-own-bot", table=TABLE, profiles=profiles)  # no profile: not refused


def test_the_batch_adapter_reads_the_attempts_of_every_array_child():
    client = boto3.client("batch", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    env = {"environment": [{"name": "SPOTBOT_JOB_ID", "value": "j3"}],
           "resourceRequirements": [{"type": "VCPU", "value": "2"}]}  # fmt: skip
    ms = int(T0.timestamp() * 1000)
    parent = {"jobId": "p", "jobName": "j3-tag", "status": "SUCCEEDED", "container": env, "arrayProperties": {"size": 2},
              "jobQueue": "workers", "jobDefinition": "d", "startedAt": ms}  # fmt: skip
    children = [
        {"jobId": "p:0", "jobName": "j3-tag", "status": "SUCCEEDED", "container": env, "jobQueue": "workers",
         "jobDefinition": "d", "startedAt": ms, "attempts": [
             {"startedAt": ms, "stoppedAt": ms + 600_000, "statusReason": "Host EC2 (instance i-2) terminated."},
             {"startedAt": ms + 700_000, "stoppedAt": ms + 1_900_000, "statusReason": "Essential container exited"}]},
        {"jobId": "p:1", "jobName": "j3-tag", "status": "SUCCEEDED", "container": env, "jobQueue": "workers",
         "jobDefinition": "d", "startedAt": ms, "attempts": [{"startedAt": ms, "stoppedAt": ms + 1_200_000}]},
    ]  # fmt: skip
    with Stubber(client) as stub:
        stub.add_response("list_jobs", {"jobSummaryList": [{"jobId": "p", "jobName": "j3-tag"}]},
                          {"jobQueue": "workers", "filters": [{"name": "JOB_NAME", "values": ["j3*"]}]})
        stub.add_response("describe_jobs", {"jobs": [parent]}, {"jobs": ["p"]})
        stub.add_response("describe_jobs", {"jobs": [parent]}, {"jobs": ["p"]})
        stub.add_response("list_jobs", {"jobSummaryList": [{"jobId": "p:0", "jobName": "j3-tag"},
                                                           {"jobId": "p:1", "jobName": "j3-tag"}]}, {"arrayJobId": "p"})
        stub.add_response("describe_jobs", {"jobs": children}, {"jobs": ["p:0", "p:1"]})
        attempts = BatchQueue(client, "workers").attempts_of("j3")
    assert [a.seconds for a in attempts] == [600, 1200, 1200]
    assert sum(a.spot_reclaimed for a in attempts) == 1 and {a.vcpus for a in attempts} == {2}
