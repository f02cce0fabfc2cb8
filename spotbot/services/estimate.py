"""What a job will cost, before anything runs: assets found, seconds per asset, vCPU-hours, dollars.

`estimate_job` is the one service behind `spotbot estimate` and the cloud's `POST /estimates`: it
counts the source (a listing, or an S3 Inventory manifest), takes the bot's CPU-seconds per asset
from a calibration on this machine or from the bot's recorded profile, and prices the job on the
dated table (spotbot/domain/prices_*.json) beside the managed API that does the same work.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from spotbot.domain import AssetRef, BadInputError, auto_shard_size
from spotbot.domain.catalogue import BUILTIN_CATALOGUE
from spotbot.domain.pricing import (
    CostEstimate,
    JobShape,
    PriceTable,
    check_budget,
    comprehend_units,
    estimate_cost,
    history_events,
)
from spotbot.ports import AssetStore, BotRuntime
from spotbot.services.decoding import AssetError, DecodeLimits, decode_asset

PRICE_TABLE = "prices_2026_11.json"
BOT_PROFILES = "bot_profiles.json"
# the managed API that does a built-in bot's work, priced beside it
MANAGED_EQUIVALENT = {
    "scene-text": "rekognition-detect-text",
    "car-model": "rekognition-detect-labels",
    "sentiment": "comprehend-sentiment",
}
DEFAULT_MAX_VCPUS = 256  # the stack's Spot environment (stacks/config.py TaggingConfig.max_vcpus)
DEFAULT_WORKER_VCPUS = 2  # vCPUs of one Batch worker (TaggingConfig.worker_vcpus)
DEFAULT_LISTING_KEYS_PER_SECOND = 20_000.0  # the scanner's listing rate when no profile records one
DEFAULT_INVENTORY_KEYS_PER_SECOND = 150_000.0  # reading a gzip CSV inventory, when no profile records one
SCAN_ROUND_SECONDS = 600.0  # the scanner Lambda's time budget per round (Settings.scan_time_budget_seconds)
TEXT_SAMPLE = 20  # texts read to learn characters per byte, for the Comprehend comparison


@functools.cache  # package data, read once per process: the step Lambdas price every invocation
def load_price_table(name: str = PRICE_TABLE) -> PriceTable:
    return PriceTable.model_validate_json(resources.files("spotbot.domain").joinpath(name).read_text(encoding="utf-8"))


def load_bot_profiles(name: str = BOT_PROFILES) -> dict[str, Any]:
    """Per bot, CPU-seconds per asset as bench/bots.py recorded them; {} when none were recorded."""
    path = resources.files("spotbot.domain").joinpath(name)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@dataclass(frozen=True)
class EstimateRequest:
    source: str
    bot: str
    instance_type: str = "c6i.large"
    spot_discount: float | None = None  # None: the price table's typical Spot discount
    max_cost: float | None = None
    max_vcpus: int = DEFAULT_MAX_VCPUS
    worker_vcpus: int = DEFAULT_WORKER_VCPUS
    max_shard_size: int = 1000
    endpoint_instance_type: str | None = None  # set for a bot served by a SageMaker endpoint
    opensearch_instance_type: str = "t3.medium.search"
    opensearch_instances: int = 2
    utilization: float = 0.85  # of a worker's vCPUs busy tagging (reads, writes and retries take the rest)


@dataclass(frozen=True)
class Calibration:
    """A bot measured on a few assets on this machine."""

    assets: int
    cpu_seconds_per_asset: float
    wall_seconds_per_asset: float
    load_seconds: float
    chars_per_byte: float | None = None


@dataclass
class JobEstimate:
    bot: str
    source: str
    assets: int
    total_bytes: int
    from_inventory: bool
    cpu_seconds_per_asset: float
    seconds_from: str  # where the figure comes from: a calibration here, or a recorded profile
    shards: int
    workers: int
    scan_seconds: float
    wall_hours: float
    history_events: int
    cost: CostEstimate
    prices: dict[str, Any]  # the table's date, region, note, and which of its figures a stored page confirmed
    max_cost: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def within_budget(self) -> bool:
        return self.max_cost is None or self.cost.total_spot <= self.max_cost

    def as_dict(self) -> dict[str, Any]:
        line = lambda item: {**asdict(item), "cost": item.cost}  # noqa: E731 - a one-line shape
        cost = self.cost
        return {
            "bot": self.bot, "source": self.source, "assets": self.assets, "bytes": self.total_bytes,
            "from_inventory": self.from_inventory, "cpu_seconds_per_asset": self.cpu_seconds_per_asset,
            "seconds_from": self.seconds_from, "vcpu_hours": cost.vcpu_hours, "instance_hours": cost.instance_hours,
            "instance_type": cost.shape.instance_type, "shards": self.shards, "workers": self.workers,
            "scan_seconds": self.scan_seconds, "wall_hours": self.wall_hours, "history_events": self.history_events,
            "compute": {"spot": line(cost.compute_spot), "on_demand": line(cost.compute_on_demand)},
            "services": [line(item) for item in cost.services],
            "total": {"spot": cost.total_spot, "on_demand": cost.total_on_demand},
            "managed": [line(item) for item in cost.managed],
            "max_cost": self.max_cost, "within_budget": self.within_budget,
            "prices": self.prices, "notes": self.notes,
        }  # fmt: skip


def calibrate(store: AssetStore, sample: list[AssetRef], runtime: BotRuntime, limits: DecodeLimits,
              load_seconds: float = 0.0) -> Calibration:
    """Tags `sample` with `runtime` in this process and measures CPU-seconds per asset (all its threads)."""
    decoded, chars, read_bytes = [], 0, 0
    for asset in sample:
        try:
            data = store.read(asset, limits.max_asset_bytes)
            item = decode_asset(data, runtime.input_kind, limits)
        except AssetError:
            continue  # a bad asset fails alone in the job; it does not count here
        decoded.append(item)
        read_bytes += len(data)
        chars += len(item) if isinstance(item, str) else 0
    if not decoded:
        raise BadInputError(f"none of the {len(sample)} sample assets could be read and decoded: nothing to calibrate on")
    runtime.predict(decoded[:1])  # warm-up: the first call builds caches a job pays once per worker
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(decoded), runtime.batch_size):
        runtime.predict(decoded[start : start + runtime.batch_size])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Calibration(len(decoded), cpu / len(decoded), wall / len(decoded), load_seconds,
                       chars / read_bytes if chars and read_bytes else None)


def chars_per_byte(store: AssetStore, assets: list[AssetRef], limits: DecodeLimits) -> float | None:
    """Characters per byte of a few texts: Comprehend bills characters, a listing gives bytes."""
    chars = size = 0
    for asset in assets[:TEXT_SAMPLE]:
        try:
            data = store.read(asset, limits.max_text_bytes)
            chars, size = chars + len(decode_asset(data, "text", limits)), size + len(data)
        except AssetError:
            continue
    return chars / size if size else None


def recorded_profile(profiles: dict[str, Any], bot: str, instance_type: str) -> tuple[dict[str, Any], str] | None:
    """The bot's profile on the instance type if recorded, else on the machine bench/bots.py ran on."""
    entries = profiles.get("bots", {}).get(bot, {})
    for where in (instance_type, instance_type.split(".")[0], "local"):
        if where in entries:
            entry = entries[where]
            machine = entry.get("machine", profiles.get("machine", where))
            return entry, f"profile recorded {profiles.get('recorded', '?')} on {machine} ({where}) by bench/bots.py"
    return None


def estimate_job(
    request: EstimateRequest,
    store: AssetStore,
    *,
    table: PriceTable,
    profiles: dict[str, Any],
    calibration: Calibration | None = None,
    limits: DecodeLimits | None = None,
    file_types: tuple[str, ...] | None = None,
) -> JobEstimate:
    """Counts the source and prices the job. No calibration and no recorded profile: BadInputError."""
    if not 0 < request.utilization <= 1:
        raise BadInputError(f"utilization must be in (0, 1], got {request.utilization}")
    builtin = BUILTIN_CATALOGUE.get(request.bot)
    types = file_types or (builtin.file_types if builtin else None)
    if types is None:
        raise BadInputError(f"bot {request.bot!r}: give its file types (only built-in bots are known without loading)")
    sentiment = MANAGED_EQUIVALENT.get(builtin.name if builtin else "") == "comprehend-sentiment"
    assets = store.scan(types)  # streamed: an inventory of 100 M keys is counted, never held
    sample = list(itertools.islice(assets, TEXT_SAMPLE))  # the first ones; texts are read for characters per byte
    ratio, assumed = _text_ratio(store, sample, calibration, limits) if sentiment and sample else (None, False)
    count = total_bytes = text_units = 0
    for asset in itertools.chain(sample, assets):
        count, total_bytes = count + 1, total_bytes + asset.size
        if ratio is not None:
            text_units += comprehend_units(round(asset.size * ratio))
    share = float(getattr(store, "share_read", 1.0) or 1.0)  # a sampling store read this share of its source
    if share < 1.0:
        count, total_bytes, text_units = round(count / share), round(total_bytes / share), round(text_units / share)
    from_inventory = bool(getattr(store, "from_inventory", False))  # an inventory store says so; a listing does not
    estimate = price_assets(
        request, store.source, count, total_bytes, from_inventory=from_inventory,
        table=table, profiles=profiles, calibration=calibration, text_units=text_units,
    )  # fmt: skip
    if assumed:
        estimate.notes.insert(0, "characters per byte assumed 1/3 (Chinese in UTF-8): no text was read")
    if share < 1.0:
        estimate.notes.insert(0, f"assets and bytes extrapolated from {share:.1%} of the source read ({getattr(store, 'read_note', '')})")
    return estimate


def _text_ratio(store: AssetStore, sample: list[AssetRef], calibration: Calibration | None,
                limits: DecodeLimits | None) -> tuple[float, bool]:
    """Characters per byte, and whether it is assumed: from the calibration, else read off the sample."""
    ratio = (calibration.chars_per_byte if calibration else None) or (chars_per_byte(store, sample, limits) if limits else None)
    return (ratio, False) if ratio is not None else (1 / 3, True)  # Chinese in UTF-8: three bytes a character


def price_assets(
    request: EstimateRequest,
    source: str,
    count: int,
    total_bytes: int,
    *,
    from_inventory: bool,
    table: PriceTable,
    profiles: dict[str, Any],
    calibration: Calibration | None = None,
    text_units: int = 0,
) -> JobEstimate:
    """Prices `count` assets of `total_bytes`: the estimate of a listing, and the scanner's budget check of
    the tasks a cloud job has planned (no listing again). No calibration and no recorded profile: BadInputError."""
    builtin = BUILTIN_CATALOGUE.get(request.bot)
    notes: list[str] = []
    if calibration is not None:
        per_asset, load = calibration.cpu_seconds_per_asset, calibration.load_seconds
        seconds_from = f"calibrated here on {calibration.assets} of the assets"
    else:
        found = recorded_profile(profiles, builtin.name if builtin else request.bot, request.instance_type)
        if found is None:
            raise BadInputError(f"no recorded profile for bot {request.bot!r}: calibrate on a sample (--sample N)")
        entry, seconds_from = found
        per_asset, load = float(entry["cpu_seconds_per_asset"]), float(entry.get("load_seconds", 0.0))
    vcpu_seconds = per_asset / request.utilization
    workers = max(1, request.max_vcpus // request.worker_vcpus)
    shard_size = auto_shard_size(count, workers, request.max_shard_size)
    shards = math.ceil(count / shard_size) if count else 0
    rate = profiles.get("inventory_keys_per_second" if from_inventory else "listing_keys_per_second") or (
        DEFAULT_INVENTORY_KEYS_PER_SECOND if from_inventory else DEFAULT_LISTING_KEYS_PER_SECOND
    )
    scan_seconds = count / rate
    scan_rounds = max(1, math.ceil(scan_seconds / SCAN_ROUND_SECONDS))
    busy_workers = max(1, min(workers, shards))
    tag_hours = count * vcpu_seconds / 3600 / (busy_workers * request.worker_vcpus) + load / 3600
    wall_hours = scan_seconds / 3600 + tag_hours
    managed_api = MANAGED_EQUIVALENT.get(builtin.name) if builtin else None
    shape = JobShape(
        assets=count, total_bytes=total_bytes, vcpu_seconds_per_asset=vcpu_seconds,
        instance_type=request.instance_type, spot_discount=request.spot_discount, shards=shards,
        from_inventory=from_inventory, scan_rounds=scan_rounds, scan_seconds=scan_seconds, wall_hours=wall_hours,
        worker_load_seconds=load, workers=busy_workers, endpoint_instance_type=request.endpoint_instance_type,
        opensearch_instance_type=request.opensearch_instance_type, opensearch_instances=request.opensearch_instances,
        text_units=text_units,
    )  # fmt: skip
    cost = estimate_cost(shape, table, managed_api)
    notes.append(f"vCPU-seconds = CPU-seconds per asset / {request.utilization:.0%} busy; "
                 f"{busy_workers} workers of {request.worker_vcpus} vCPUs (max_vcpus {request.max_vcpus})")
    if request.endpoint_instance_type:
        notes.append("endpoint bot: the endpoint is billed for the job's wall time; workers' compute is counted as if in-container")
    prices = {"date": table.date, "region": table.region, "currency": table.currency, "table": PRICE_TABLE, "note": table.note,
              "checked": table.checked}
    return JobEstimate(
        bot=request.bot, source=source, assets=count, total_bytes=shape.total_bytes,
        from_inventory=from_inventory, cpu_seconds_per_asset=per_asset, seconds_from=seconds_from, shards=shards,
        workers=busy_workers, scan_seconds=scan_seconds, wall_hours=wall_hours,
        history_events=history_events(scan_rounds), cost=cost, prices=prices, max_cost=request.max_cost, notes=notes,
    )  # fmt: skip


def enforce_budget(estimate: JobEstimate) -> None:
    """Refuses a job whose expected Spot cost is over its budget (BudgetExceededError, a bad input)."""
    check_budget(estimate.cost.total_spot, estimate.max_cost, what=f"tagging {estimate.assets:,} assets with {estimate.bot}")
