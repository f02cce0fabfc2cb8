"""What a job costs: the arithmetic on a dated price table, before a job (an estimate) and after it (measured).

No I/O: the price table is data (spotbot/domain/prices_*.json, read by spotbot.services.estimate) and
every figure comes in as an argument. Money is in the table's currency (USD), per its region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from spotbot.domain.errors import BadInputError

HOUR = 3600.0
STEP_FUNCTIONS_FIXED_TRANSITIONS = 12  # start, endpoint branch, Tag on Spot, Finalize, Release, Succeed …
TRANSITIONS_PER_SCAN_ROUND = 2  # "Scan assets" and the Choice that loops back
HISTORY_EVENTS_PER_SCAN_ROUND = 7  # a Lambda task state (5 events) and a Choice (2 events)
HISTORY_EVENTS_FIXED = 40
SPOT_RECLAIM_PREFIX = "Host EC2"  # Batch's statusReason of an attempt whose Spot instance was reclaimed


class BudgetExceededError(BadInputError):
    """A job would cost (or has cost) more than its budget."""


class InstancePrice(BaseModel):
    model_config = ConfigDict(frozen=True)

    vcpus: int
    memory_gib: float
    on_demand_hour: float
    gpus: int = 0


class PriceTier(BaseModel):
    model_config = ConfigDict(frozen=True)

    up_to: int | None  # units per month this tier reaches; None: every unit past the tier before
    price: float  # per unit


class ManagedApiPrice(BaseModel):
    model_config = ConfigDict(frozen=True)

    title: str
    source: str  # a key of PriceTable.sources
    unit: str
    min_units_per_request: int = 1
    tiers: list[PriceTier]

    def cost(self, units: int) -> float:
        """The list price of `units` in one month, tier by tier."""
        total, below = 0.0, 0
        for tier in self.tiers:
            top = units if tier.up_to is None else min(units, tier.up_to)
            if top > below:
                total += (top - below) * tier.price
                below = top
        return total


class S3Prices(BaseModel):
    get_per_1000: float
    list_per_1000: float
    put_per_1000: float
    inventory_per_million_objects: float


class LambdaPrices(BaseModel):
    gb_second: float
    per_million_requests: float


class PriceTable(BaseModel):
    """List prices of one region on one date, and the pages they were copied from."""

    model_config = ConfigDict(frozen=True)

    date: str
    region: str
    currency: str
    note: str = ""
    sources: dict[str, str]
    checked: dict[str, str] = {}  # which figures a stored copy of the price page confirmed, source by source
    ec2: dict[str, InstancePrice]
    spot_discount: float = Field(ge=0, lt=1)
    opensearch_hour: dict[str, float]
    opensearch_storage_gb_month: float
    s3: S3Prices
    step_functions_per_1000_transitions: float
    lambda_: LambdaPrices = Field(alias="lambda")
    sagemaker_hour: dict[str, float]
    managed: dict[str, ManagedApiPrice]

    def instance(self, name: str) -> InstancePrice:
        if name not in self.ec2:
            raise BadInputError(f"no price for instance type {name!r} in the {self.date} table: known are {', '.join(sorted(self.ec2))}")
        return self.ec2[name]

    def endpoint_hour(self, name: str) -> float:
        if name not in self.sagemaker_hour:
            raise BadInputError(f"no price for endpoint instance type {name!r}: known are {', '.join(sorted(self.sagemaker_hour))}")
        return self.sagemaker_hour[name]

    def search_hour(self, name: str) -> float:
        if name not in self.opensearch_hour:
            raise BadInputError(f"no price for OpenSearch instance type {name!r}: known are {', '.join(sorted(self.opensearch_hour))}")
        return self.opensearch_hour[name]


@dataclass(frozen=True)
class CostLine:
    """One priced item: how much of what, at which unit price, and where the price comes from."""

    item: str
    quantity: float
    unit: str
    unit_price: float
    source: str

    @property
    def cost(self) -> float:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class JobShape:
    """What a job is, in the quantities that cost money. Seconds are CPU-seconds of one vCPU."""

    assets: int
    total_bytes: int
    vcpu_seconds_per_asset: float
    instance_type: str = "c6i.large"
    spot_discount: float | None = None  # None: the table's typical discount
    shards: int = 1
    from_inventory: bool = False  # planned from an S3 Inventory manifest: no listing requests
    scan_rounds: int = 1  # Lambda scan invocations (each stops on its time budget and loops)
    scan_seconds: float = 0.0
    wall_hours: float = 0.0  # the job's expected wall time, for the share of always-on services
    worker_load_seconds: float = 0.0  # model load per worker start, billed too
    workers: int = 1
    endpoint_instance_type: str | None = None  # bots served by a SageMaker endpoint
    endpoint_instances: int = 1
    opensearch_instance_type: str = "t3.medium.search"
    opensearch_instances: int = 2
    task_doc_bytes: int = 400  # a task document and its tag document, stored, per asset
    text_units: int = 0  # Comprehend units (100 characters, at least 3 a document) of a text job


@dataclass
class CostEstimate:
    shape: JobShape
    table_date: str
    vcpu_hours: float
    instance_hours: float
    compute_spot: CostLine
    compute_on_demand: CostLine
    services: list[CostLine] = field(default_factory=list)
    managed: list[CostLine] = field(default_factory=list)  # the same assets on the matching managed API

    @property
    def services_cost(self) -> float:
        return sum(line.cost for line in self.services)

    @property
    def total_spot(self) -> float:
        return self.compute_spot.cost + self.services_cost

    @property
    def total_on_demand(self) -> float:
        return self.compute_on_demand.cost + self.services_cost


def spot_hour(table: PriceTable, instance_type: str, spot_discount: float | None = None) -> float:
    discount = table.spot_discount if spot_discount is None else spot_discount
    if not 0 <= discount < 1:
        raise BadInputError(f"spot discount must be in [0, 1), got {discount}")
    return table.instance(instance_type).on_demand_hour * (1 - discount)


def step_function_transitions(scan_rounds: int, endpoint_polls: int = 0) -> int:
    return STEP_FUNCTIONS_FIXED_TRANSITIONS + TRANSITIONS_PER_SCAN_ROUND * scan_rounds + 3 * endpoint_polls


def history_events(scan_rounds: int, endpoint_polls: int = 0) -> int:
    """Execution history events of a job; a Standard workflow stops at 25,000."""
    return HISTORY_EVENTS_FIXED + HISTORY_EVENTS_PER_SCAN_ROUND * scan_rounds + 7 * endpoint_polls


def estimate_cost(shape: JobShape, table: PriceTable, managed_api: str | None = None) -> CostEstimate:
    """Compute on Spot and on demand, the AWS services around it, and the managed API beside it."""
    instance = table.instance(shape.instance_type)
    vcpu_hours = (shape.assets * shape.vcpu_seconds_per_asset + shape.workers * shape.worker_load_seconds * instance.vcpus) / HOUR
    instance_hours = vcpu_hours / instance.vcpus
    ec2 = table.sources["ec2"]
    spot = CostLine(f"{shape.instance_type} on Spot", instance_hours, "instance-hour",
                    spot_hour(table, shape.instance_type, shape.spot_discount), table.sources["spot"])
    on_demand = CostLine(f"{shape.instance_type} on demand", instance_hours, "instance-hour", instance.on_demand_hour, ec2)
    s3, s3_source = table.s3, table.sources["s3"]
    services = [
        CostLine("S3 GET (one per asset)", shape.assets / 1000, "1,000 requests", s3.get_per_1000, s3_source),
        CostLine("S3 PUT (shard manifests, parts, summary)", (2 * shape.shards + 1) / 1000, "1,000 requests", s3.put_per_1000, s3_source),
    ]
    if shape.from_inventory:
        services.append(CostLine("S3 Inventory (objects listed)", shape.assets / 1e6, "million objects",
                                 s3.inventory_per_million_objects, s3_source))
    else:
        services.append(CostLine("S3 LIST (1,000 keys a page)", math.ceil(shape.assets / 1000) / 1000, "1,000 requests",
                                 s3.list_per_1000, s3_source))
    services.append(CostLine("Step Functions transitions", step_function_transitions(shape.scan_rounds) / 1000,
                             "1,000 transitions", table.step_functions_per_1000_transitions, table.sources["step_functions"]))
    services.append(CostLine("Lambda scanner (1,024 MB)", max(shape.scan_seconds, 1.0), "GB-second",
                             table.lambda_.gb_second, table.sources["lambda"]))
    search_hours = shape.opensearch_instances * max(shape.wall_hours, 0.0)
    services.append(CostLine(f"OpenSearch {shape.opensearch_instance_type} x{shape.opensearch_instances} (job's wall time)",
                             search_hours, "instance-hour", table.search_hour(shape.opensearch_instance_type),
                             table.sources["opensearch"]))
    services.append(CostLine("OpenSearch storage (task + tag docs, one month)", shape.assets * shape.task_doc_bytes / 1e9,
                             "GB-month", table.opensearch_storage_gb_month, table.sources["opensearch"]))
    if shape.endpoint_instance_type:
        services.append(CostLine(f"SageMaker endpoint {shape.endpoint_instance_type} x{shape.endpoint_instances}",
                                 shape.endpoint_instances * max(shape.wall_hours, 0.0), "instance-hour",
                                 table.endpoint_hour(shape.endpoint_instance_type), table.sources["sagemaker"]))
    managed = []
    if managed_api:
        api = table.managed[managed_api]
        units = shape.text_units if api.min_units_per_request > 1 else shape.assets
        average = api.cost(units) / units if units else api.tiers[0].price  # the tiers, averaged over this job
        managed.append(CostLine(api.title, units, api.unit, average, table.sources[api.source]))
    return CostEstimate(shape, table.date, vcpu_hours, instance_hours, spot, on_demand, services, managed)


def comprehend_units(characters: int) -> int:
    """Comprehend bills a document in units of 100 characters, at least 3."""
    return max(3, math.ceil(characters / 100))


def usd(value: float) -> str:
    """Dollars as people read them: cents above a dollar, four decimals below."""
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"


def check_budget(expected: float, max_cost: float | None, what: str = "the job") -> None:
    """Raises BudgetExceededError when `expected` is over `max_cost` (None: no budget)."""
    if max_cost is not None and expected > max_cost:
        raise BudgetExceededError(
            f"{what} is expected to cost {usd(expected)}, over its budget of {usd(max_cost)} (--max-cost): "
            "raise the budget, tag fewer assets, or pick a cheaper instance type"
        )


# After a job: what it cost, measured


@dataclass(frozen=True)
class WorkerAttempt:
    """One attempt of one Batch job (a shard): when it ran, on what, and why it stopped."""

    started_at: datetime | None
    stopped_at: datetime | None
    status_reason: str = ""
    instance_type: str | None = None
    vcpus: int | None = None  # what the job asked for; None: the stack's worker_vcpus

    @property
    def seconds(self) -> float:
        return self.seconds_until(None)

    def seconds_until(self, now: datetime | None) -> float:
        """Seconds it ran; one still running (no stoppedAt) counts up to `now`, or nothing without it."""
        stopped = self.stopped_at or now
        if self.started_at is None or stopped is None:
            return 0.0
        return max(0.0, (stopped - self.started_at).total_seconds())

    @property
    def spot_reclaimed(self) -> bool:
        return self.status_reason.startswith(SPOT_RECLAIM_PREFIX)


class JobCost(BaseModel):
    """A job's measured cost, as its summary (`_job.json`, `spotbot status`, GET /jobs/{id}) shows it."""

    where: str  # "local": CPU-seconds on this machine; "cloud": Batch attempts and endpoint hours
    cpu_seconds: float = 0.0  # local: user+system CPU of the job's processes
    worker_seconds: float = 0.0  # cloud: wall seconds of every Batch attempt, retries and reclaimed ones too
    vcpu_hours: float = 0.0
    attempts: int = 0
    spot_reclaims: int = 0
    instance_types: list[str] = Field(default_factory=list)
    endpoint_hours: float = 0.0
    compute_usd: float = 0.0  # at the Spot price of the instance type
    endpoint_usd: float = 0.0
    total_usd: float = 0.0
    prices: str = ""  # which price table, and the assumptions on it


def local_job_cost(cpu_seconds: float, table: PriceTable, instance_type: str = "c6i.large",
                   spot_discount: float | None = None) -> JobCost:
    """A local job's CPU-seconds, and what the same vCPU-hours cost on Spot in the cloud."""
    vcpu_hours = cpu_seconds / HOUR
    per_vcpu = spot_hour(table, instance_type, spot_discount) / table.instance(instance_type).vcpus
    compute = vcpu_hours * per_vcpu
    return JobCost(where="local", cpu_seconds=round(cpu_seconds, 3), vcpu_hours=vcpu_hours, compute_usd=compute,
                   total_usd=compute, prices=f"{table.date} {table.region}, {instance_type} Spot equivalent")


def cloud_job_cost(
    attempts: list[WorkerAttempt],
    table: PriceTable,
    *,
    worker_vcpus: int,
    default_instance_type: str = "c6i.large",
    spot_discount: float | None = None,
    endpoint_hours: float = 0.0,
    endpoint_instance_type: str | None = None,
    now: datetime | None = None,
) -> JobCost:
    """A cloud job's cost from its Batch attempts: each attempt pays its share (its vCPUs) of its instance.

    now: count attempts still running up to this time (a budget check while the job runs).
    """
    compute, vcpu_seconds, seconds = 0.0, 0.0, 0.0
    types: set[str] = set()
    for attempt in attempts:
        instance_type = attempt.instance_type or default_instance_type
        instance = table.instance(instance_type)
        vcpus = attempt.vcpus or worker_vcpus
        ran = attempt.seconds_until(now)
        compute += ran / HOUR * min(1.0, vcpus / instance.vcpus) * spot_hour(table, instance_type, spot_discount)
        vcpu_seconds += ran * vcpus
        seconds += ran
        types.add(instance_type)
    endpoint = endpoint_hours * table.endpoint_hour(endpoint_instance_type) if endpoint_instance_type else 0.0
    return JobCost(
        where="cloud",
        worker_seconds=round(seconds, 3),
        vcpu_hours=vcpu_seconds / HOUR,
        attempts=len(attempts),
        spot_reclaims=sum(a.spot_reclaimed for a in attempts),
        instance_types=sorted(types),
        endpoint_hours=endpoint_hours,
        compute_usd=compute,
        endpoint_usd=endpoint,
        total_usd=compute + endpoint,
        prices=f"{table.date} {table.region}, Spot at {1 - (table.spot_discount if spot_discount is None else spot_discount):.0%} of on demand",
    )


def over_budget(cost: JobCost, max_cost: float | None) -> bool:
    """A running cloud job whose measured cost has crossed its budget stops (resumably)."""
    return max_cost is not None and cost.total_usd > max_cost
