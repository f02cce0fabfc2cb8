"""Bot benchmarks (not tests): cold load time, per-asset latency, throughput by batch size, peak RSS.

Each bot runs in its own fresh process so load time and RSS are its own.
    python bench/bots.py [--bots scene-text,sentiment,car-model] [--assets 64] [--threads 2] [--profile]

--profile also records each bot's CPU-seconds per asset (user+system of all its threads, at its own
batch size) into spotbot/domain/bot_profiles.json, which `spotbot estimate` reads when not calibrating.
CPU-seconds, not wall seconds: on a machine other engineers load, the CPU time stays honest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BATCH_SIZES = (1, 8, 32)


def sample_inputs(kind: str, count: int) -> list[bytes]:
    if kind == "image":
        files = sorted(p for p in (REPO / "samples").rglob("*") if p.suffix.lower() in (".png", ".jpg"))
    else:
        files = sorted((REPO / "samples" / "reviews").glob("*.txt"))
    data = [p.read_bytes() for p in files]
    return [data[i % len(data)] for i in range(count)]


def measure(bot_spec: str, models: str | None, pinned: str | None, count: int, threads: int,
            queue: multiprocessing.Queue) -> None:
    started = time.perf_counter()
    from spotbot.bot import resolve_bot
    from spotbot.services.decoding import decode_asset
    from spotbot.settings import Settings
    from spotbot.adapters.wiring import open_model_registry
    from spotbot.services.shard import limits_from

    settings = Settings()
    registry, _ = open_model_registry(settings, models)
    bot_class = resolve_bot(bot_spec)
    version = registry.resolve(bot_class.name, pinned)
    bot = bot_class()
    bot.load(version.path if version else None, threads=threads)
    load_seconds = time.perf_counter() - started

    limits = limits_from(settings)
    decoded = [decode_asset(data, bot.input_kind, limits) for data in sample_inputs(bot.input_kind, count)]
    bot.predict(decoded[:2])  # warm-up
    latencies = []
    for item in decoded:
        t = time.perf_counter()
        bot.predict([item])
        latencies.append(time.perf_counter() - t)
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(decoded), bot.batch_size):
        bot.predict(decoded[start : start + bot.batch_size])
    cpu_per_asset = (time.process_time() - cpu) / len(decoded)
    wall_per_asset = (time.perf_counter() - wall) / len(decoded)
    rates = {}
    for size in BATCH_SIZES:
        t = time.perf_counter()
        for start in range(0, len(decoded), size):
            bot.predict(decoded[start : start + size])
        rates[size] = len(decoded) / (time.perf_counter() - t)
    queue.put(
        {
            "bot": bot_class.name,
            "model_version": bot.model_version,
            "load_s": load_seconds,
            "median_ms": statistics.median(latencies) * 1000,
            "p95_ms": sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000,
            "rates": rates,
            "cpu_s_per_asset": cpu_per_asset,
            "wall_s_per_asset": wall_per_asset,
            "batch_size": bot.batch_size,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", default="scene-text,sentiment,sentiment@snownlp-0.12.3,car-model")
    parser.add_argument("--assets", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=None, help="model store (default: the configured one)")
    parser.add_argument("--profile", action="store_true", help="record CPU-seconds per asset for `spotbot estimate`")
    args = parser.parse_args()
    profiles: dict[str, dict] = {}

    context = multiprocessing.get_context("spawn")
    print(f"{'bot':<26} {'model':<22} {'load s':>7} {'p50 ms':>8} {'p95 ms':>8} "
          + " ".join(f"{f'b={b} /s':>9}" for b in BATCH_SIZES) + f" {'RSS MiB':>8}")
    for entry in args.bots.split(","):
        spec, _, pinned = entry.partition("@")
        queue = context.Queue()
        process = context.Process(target=measure, args=(spec, args.models, pinned or None, args.assets, args.threads, queue))
        process.start()
        result = queue.get()
        process.join()
        print(f"{entry:<26} {result['model_version'][:22]:<22} {result['load_s']:7.2f} {result['median_ms']:8.1f} "
              f"{result['p95_ms']:8.1f} " + " ".join(f"{result['rates'][b]:9.1f}" for b in BATCH_SIZES)
              + f" {result['peak_rss_mib']:8.0f}" + f"  cpu {result['cpu_s_per_asset'] * 1000:.1f} ms/asset")
        if not pinned:
            profiles[result["bot"]] = {"local": {
                "cpu_seconds_per_asset": round(result["cpu_s_per_asset"], 5),
                "wall_seconds_per_asset": round(result["wall_s_per_asset"], 5),
                "load_seconds": round(result["load_s"], 2), "threads": args.threads, "batch_size": result["batch_size"],
                "model_version": result["model_version"], "peak_rss_mib": round(result["peak_rss_mib"]),
            }}  # fmt: skip
    if args.profile:
        write_profiles(profiles, args)


PROFILES = REPO / "spotbot" / "domain" / "bot_profiles.json"


def write_profiles(measured: dict[str, dict], args: argparse.Namespace) -> None:
    """Merges the bots measured now into the recorded profiles, keeping the other figures there."""
    recorded = json.loads(PROFILES.read_text(encoding="utf-8")) if PROFILES.exists() else {}
    recorded.setdefault("bots", {}).update(measured)
    recorded.update(
        recorded=time.strftime("%Y-%m-%d", time.gmtime()),
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        command=f"python bench/bots.py --profile --assets {args.assets} --threads {args.threads}",
    )
    PROFILES.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"profiles written to {PROFILES.relative_to(REPO)}")


if __name__ == "__main__":
    main()
