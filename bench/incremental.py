"""Incremental jobs and local watch latency (issue 12), not a test.

1. Tags N text assets with a real bot (first run), then runs a new job over the same unchanged
   source: the re-run's wall time as a ratio to the first's (target <= 0.05). Both through the
   real `spotbot tag` command, in fresh processes.
2. Starts `spotbot watch` on an empty folder, drops K files one at a time, and measures each
   file's latency from its creation to its tag record in the index: p50 and p95.
    python bench/incremental.py [--assets 20000] [--bot sentiment] [--watch-files 40]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REVIEWS = ["这家店的菜很好吃，服务也很周到，下次还来。", "等了一个小时才上菜，味道也一般，不会再来了。", "环境不错，价格有点贵。"]


def env(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOTBOT_")}
    return base | {"SPOTBOT_HOME": str(home), "PYTHONPATH": str(REPO)}


def write_assets(folder: Path, n: int) -> None:
    for i in range(n):
        sub = folder / f"d{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"review-{i:06d}.txt").write_text(f"{REVIEWS[i % 3]} 第{i}条", encoding="utf-8")


def timed_tag(home: Path, src: Path, out: Path, bot: str, job_id: str) -> tuple[float, dict]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "spotbot", "tag", str(src), "--bot", bot, "--out", str(out), "--job-id", job_id, "--json"],
        env=env(home), capture_output=True, text=True, check=True,
    )
    return time.monotonic() - started, json.loads(result.stdout)


def watch_latency(home: Path, root: Path, bot: str, files: int, gap_s: float) -> list[float]:
    folder = root / "inbox"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotbot", "watch", str(folder), "--bot", bot, "--out", str(root / "watch-out"),
         "--debounce", "0.2"],
        env=env(home), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        while "watching" not in proc.stderr.readline():  # the model is loaded and the observer listens
            if proc.poll() is not None:
                raise SystemExit(f"spotbot watch exited {proc.returncode}")
        db = sqlite3.connect(home / "index.sqlite3", timeout=30)
        latencies = []
        for i in range(files):
            path = folder / f"new-{i:04d}.txt"
            created = time.monotonic()
            path.write_text(f"{REVIEWS[i % 3]} 新的第{i}条", encoding="utf-8")
            while not db.execute("SELECT 1 FROM tags WHERE asset = ?", (str(path.resolve()),)).fetchone():
                if time.monotonic() - created > 120:
                    raise SystemExit(f"no tag for {path} after 120 s")
                time.sleep(0.01)
            latencies.append(time.monotonic() - created)
            time.sleep(gap_s)
        db.close()
        return latencies
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=20_000)
    parser.add_argument("--bot", default="sentiment")
    parser.add_argument("--watch-files", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between dropped files")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home, src, out = root / "home", root / "src", root / "out"
        write_assets(src, args.assets)
        first_s, first = timed_tag(home, src, out, args.bot, "first")
        print(f"first run: {first_s:.1f} s, {first['run']['processed']} predicted", flush=True)
        again_s, again = timed_tag(home, src, out, args.bot, "again")
        print(f"re-run:    {again_s:.2f} s, {again['run']['processed']} predicted, {again['run']['reused']} reused")
        print(f"ratio:     {again_s / first_s:.4f} (target <= 0.05)", flush=True)
        latencies = watch_latency(home, root, args.bot, args.watch_files, args.gap)
        q = statistics.quantiles(latencies, n=20)
        print(f"watch latency over {len(latencies)} files: p50 {statistics.median(latencies):.2f} s, p95 {q[18]:.2f} s")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
