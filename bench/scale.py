"""Scale figures for docs/scale.md (not a test): 1 M, 10 M and 100 M assets per built-in bot.

Measured here: reading an S3 Inventory (gzip CSV, a local copy of the report) in keys/s, and the
size of a task document. Taken from the other benchmarks (pass what they printed): the lean
parallel listing rate (bench/cloud.py (a)), the task-document load rate (bench/cloud.py (c)), and
each bot's CPU-seconds per asset (bench/bots.py --profile, in spotbot/domain/bot_profiles.json).
Everything else is the product's own arithmetic: spotbot.domain.planning for shards,
spotbot.domain.pricing for Step Functions history and cost.

    python bench/scale.py --listing-keys-per-s 30000 --task-docs-per-s 20000 [--inventory-rows 200000]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SIZES = (1_000_000, 10_000_000, 100_000_000)
SHARD_SIZES = (500, 1000, 2000, 5000, 10_000)  # 500: the scanner's default
ATTEMPT_TIMEOUT_S = 120 * 60  # the stack's worker_attempt_timeout_minutes
MAX_VCPUS, WORKER_VCPUS = 256, 2  # the stack's defaults
HISTORY_LIMIT = 25_000  # events of a Standard workflow execution


def inventory_rate(rows: int) -> float:
    """Keys per second InventoryAssetStore reads from a gzip CSV report (one file, a local copy)."""
    from spotbot.adapters.s3.inventory import InventoryAssetStore

    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL)
    for i in range(rows):
        writer.writerow(["assets", f"photos/{i // 1000:04d}/{i:08d}.jpg", "", "true", "false", 123456, "2026-11-01T00:00:00.000Z", f"{i:032x}"])
    data = gzip.compress(text.getvalue().encode())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "data").mkdir()
        (root / "data/part.csv.gz").write_bytes(data)
        manifest = {"sourceBucket": "assets", "fileFormat": "CSV", "files": [{"key": "data/part.csv.gz", "MD5checksum": hashlib.md5(data).hexdigest()}],
                    "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"}  # fmt: skip
        (root / "manifest.json").write_text(json.dumps(manifest))
        started = time.perf_counter()
        count = sum(1 for _ in InventoryAssetStore(str(root / "manifest.json")).scan((".jpg",)))
        seconds = time.perf_counter() - started
    assert count == rows
    return rows / seconds


def task_doc_bytes() -> int:
    from spotbot.domain import AssetRef, plan_tasks

    task = plan_tasks("a-job-id-of-usual-length", [AssetRef(uri="s3://assets/photos/0001/00001234.jpg", etag="0" * 32, size=1)], {},
                      next_shard=0, shard_size=1).tasks[0]  # fmt: skip
    return len(json.dumps(task.model_dump(mode="json")).encode())


def shards_for(assets: int, shard_size: int) -> tuple[int, int]:
    """(shards, largest shard) the planner makes; shards past BATCH_ARRAY_MAX mean the job cannot run."""
    from spotbot.domain.planning import shard_capacity

    shard, left, largest = 0, assets, 0
    while left > 0:
        size = shard_capacity(shard, shard_size)
        largest, left, shard = max(largest, min(size, left)), left - size, shard + 1
    return shard, largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listing-keys-per-s", type=float, required=True, help="bench/cloud.py (a), lean parallel")
    parser.add_argument("--task-docs-per-s", type=float, required=True, help="bench/cloud.py (c), scan load")
    parser.add_argument("--inventory-rows", type=int, default=200_000)
    args = parser.parse_args()

    from spotbot.domain.planning import BATCH_ARRAY_MAX
    from spotbot.domain.pricing import JobShape, estimate_cost, history_events
    from spotbot.services.estimate import MANAGED_EQUIVALENT, load_bot_profiles, load_price_table

    table, profiles = load_price_table(), load_bot_profiles()
    inventory = inventory_rate(args.inventory_rows)
    doc = task_doc_bytes()
    print(f"inventory read: {inventory:,.0f} keys/s (gzip CSV, {args.inventory_rows:,} rows); task document: {doc} bytes of JSON")
    print(f"listing: {args.listing_keys_per_s:,.0f} keys/s; task load: {args.task_docs_per_s:,.0f} docs/s; prices {table.date}\n")
    print("| bot | assets | listing / inventory | task docs: load, size | shards (size) of 10,000 | largest shard | SFN events | vCPU-h | wall @256 vCPU | Spot $ | on-demand $ | managed API $ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for bot, entries in sorted(profiles["bots"].items()):
        per_asset = entries["local"]["cpu_seconds_per_asset"] / 0.85
        for n in SIZES:
            listing_s, inventory_s = n / args.listing_keys_per_s, n / inventory
            fits = [(z, *shards_for(n, z)) for z in SHARD_SIZES]
            ok = [f for f in fits if f[1] <= BATCH_ARRAY_MAX and f[2] * per_asset / WORKER_VCPUS <= ATTEMPT_TIMEOUT_S]
            size, shards, largest = ok[0] if ok else min(fits, key=lambda f: f[2])
            note = "" if ok else " ✗ split the job"
            rounds = max(1, math.ceil(listing_s / 570))  # a 600 s scan budget less the safety margin
            events = history_events(rounds)
            vcpu_h = n * per_asset / 3600
            wall_h = vcpu_h / MAX_VCPUS + listing_s / 3600
            shape = JobShape(assets=n, total_bytes=n * 200_000, vcpu_seconds_per_asset=per_asset, shards=shards,
                             scan_rounds=rounds, scan_seconds=listing_s, wall_hours=wall_h, workers=MAX_VCPUS // WORKER_VCPUS,
                             worker_load_seconds=entries["local"].get("load_seconds", 0.0), task_doc_bytes=doc * 2,
                             text_units=n * 3)  # fmt: skip
            cost = estimate_cost(shape, table, MANAGED_EQUIVALENT.get(bot))
            largest_h = largest * per_asset / WORKER_VCPUS / 3600
            print(f"| {bot} | {n / 1e6:,.0f} M | {listing_s / 60:,.1f} min / {inventory_s / 60:,.1f} min | "
                  f"{n / args.task_docs_per_s / 60:,.1f} min, {n * doc / 1e9:,.2f} GB | {shards:,} ({size:,}){note} | "
                  f"{largest:,} = {largest_h:,.1f} h | {events:,}{' ✗' if events > HISTORY_LIMIT else ''} | {vcpu_h:,.0f} | "
                  f"{wall_h:,.1f} h | {cost.total_spot:,.0f} | {cost.total_on_demand:,.0f} | "
                  f"{sum(m.cost for m in cost.managed):,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
