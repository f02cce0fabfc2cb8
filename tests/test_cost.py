"""What a job cost, measured after it: Batch attempts (Spot reclaims counted), endpoint hours, the budget check."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from spotbot.domain import Job
from spotbot.domain.pricing import WorkerAttempt, cloud_job_cost, local_job_cost, over_budget
from spotbot.services.estimate import load_price_table

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
