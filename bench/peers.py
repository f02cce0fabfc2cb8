"""spotbot against a peer (not a test): the same scene-text model over the same images on the same cores.

Two sides, each a fresh process tree, one after the other, with the same 2 CPUs:
- spotbot: `spotbot tag FOLDER --bot scene-text --workers W` (the pool loads the model once per worker);
- Ray Data: `ray.data.from_items(paths).map_batches(SceneText, concurrency=W, num_cpus=1)`, an actor class
  that loads the model once per actor, reads and decodes each file, and predicts in batches.
Both use one ONNX thread per worker/actor. Printed: assets/s, the ratio, and the peak of the summed
RSS of each process tree (sampled every 50 ms from /proc). Ray is in the `bench` extra, which nothing
else installs (pip install 'spot-tagging-bot[bench]'); --ray-python points at an interpreter that has it.

    python bench/peers.py [--images 60] [--workers 2] [--ray-python /path/to/python]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BATCH = 4  # the scene-text bot's own batch size


def tree_rss_mib(root: int) -> float:
    """The summed RSS of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 2**20


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak tree RSS MiB, stdout) of a command."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_mib(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} … exited {process.returncode}:\n{err[-3000:]}")
    return seconds, peak, out


def make_images(folder: Path, count: int) -> list[Path]:
    sources = sorted(p for d in ("scene-text", "photos") for p in (REPO / "samples" / d).iterdir() if p.suffix in (".png", ".jpg"))
    paths = []
    for i in range(count):
        source = sources[i % len(sources)]
        target = folder / f"{i:05d}{source.suffix}"
        shutil.copyfile(source, target)
        paths.append(target)
    return paths


def ray_side(folder: str, workers: int) -> None:
    """Runs inside the Ray interpreter: the model loaded once per actor, batches of files through it."""
    import ray

    from spotbot.services.decoding import decode_asset
    from spotbot.services.shard import limits_from
    from spotbot.settings import Settings

    class SceneText:
        def __init__(self) -> None:
            from bots.scene_text import SceneTextBot

            self.bot = SceneTextBot()
            self.bot.load(None, threads=1)
            self.limits = limits_from(Settings())

        def __call__(self, batch: dict) -> dict:
            images = [decode_asset(Path(p).read_bytes(), "image", self.limits) for p in batch["path"]]
            tags = self.bot.predict(images)
            return {"path": batch["path"], "lines": [len(t) for t in tags]}

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    paths = sorted(str(p) for p in Path(folder).iterdir())
    started = time.perf_counter()
    rows = ray.data.from_items([{"path": p} for p in paths]).map_batches(
        SceneText, concurrency=workers, num_cpus=1, batch_size=BATCH
    ).take_all()
    print(f"RAY {len(rows)} {time.perf_counter() - started:.3f}")
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ray-python", default=sys.executable, help="an interpreter with ray[data] installed")
    parser.add_argument("--side", choices=("ray",), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "ray":
        ray_side(args.folder, args.workers)
        return
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        folder.mkdir()
        make_images(folder, args.images)
        env["SPOTBOT_HOME"] = str(Path(scratch) / "home")
        print(f"{args.images} images, {args.workers} workers, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        ours_s, ours_mib, _ = run_measured(
            [sys.executable, "-m", "spotbot", "tag", str(folder), "--bot", "scene-text", "--workers", str(args.workers),
             "--out", str(Path(scratch) / "out"), "--json"], env)  # fmt: skip
        print(f"  spotbot tag: {args.images / ours_s:6.2f} assets/s ({ours_s:.1f} s, model load included), peak RSS {ours_mib:,.0f} MiB")
        try:
            ray_s, ray_mib, out = run_measured([args.ray_python, __file__, "--side", "ray", "--folder", str(folder),
                                                "--workers", str(args.workers)], env)  # fmt: skip
        except SystemExit as error:
            print(f"  Ray Data: could not run ({str(error)[:300]})")
            return
        line = next(line for line in out.splitlines() if line.startswith("RAY "))
        print(f"  Ray Data:    {args.images / ray_s:6.2f} assets/s ({ray_s:.1f} s, ray.init and actor start included; "
              f"pipeline alone {float(line.split()[2]):.1f} s), peak RSS {ray_mib:,.0f} MiB")
        print(f"  ratio: spotbot {ray_s / ours_s:.2f}x Ray's assets/s, at {ours_mib / ray_mib:.2f}x its peak memory")


if __name__ == "__main__":
    main()
