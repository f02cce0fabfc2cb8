"""Pipeline benchmarks (not tests): prints figures for the local pipeline.

(a) overhead: a no-op bot over 20,000 small files, scan -> shard -> workers -> index -> JSON Lines.
(b) efficiency: the real scene-text bot on the samples, end to end, against a bare model loop
    over the same images with the same number of processes.

    python bench/pipeline.py [--files 20000] [--workers 2] [--copies 8] [--only a|b]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from spotbot.adapters.local.job_lock import job_lock  # noqa: E402
from spotbot.adapters.local.runner import LocalPoolRunner  # noqa: E402
from spotbot.services.tagging import TagRequest, tag_assets  # noqa: E402
from spotbot.settings import Settings  # noqa: E402
from spotbot.adapters.wiring import open_asset_store, open_local_index, open_output_store  # noqa: E402


def children_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest waited-for child, KiB on Linux


def run_pipeline(source: Path, bot: str, workers: int, work_dir: Path, **request) -> tuple[float, int]:
    settings = Settings(home=work_dir / "home", workers=workers)
    index = open_local_index(settings)
    started = time.perf_counter()
    run = tag_assets(
        TagRequest(bot=bot, workers=workers, **request),
        settings,
        index=index,
        store=open_asset_store(str(source), settings),
        output=open_output_store(str(work_dir / "out")),
        runner_for=lambda n: LocalPoolRunner(settings, n),
        lock=lambda job_id: job_lock(settings.locks_dir, job_id),
    )
    elapsed = time.perf_counter() - started
    index.close()
    assert run.job.counts.done == run.scanned, run.job.counts
    return elapsed, run.job.counts.done


def bench_overhead(files: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "src"
        for i in range(files):
            folder = source / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                folder.mkdir(parents=True)
            (folder / f"{i:06d}.txt").write_text(f"small asset {i}", encoding="utf-8")
        elapsed, done = run_pipeline(source, "bench.noop_bot:NoopBot", workers, work)
        print(f"(a) no-op bot, {done:,} files, {workers} workers: {elapsed:.2f} s, {done / elapsed:,.0f} assets/s "
              f"(target >= 2,000); peak worker RSS {children_peak_rss_mib():.0f} MiB")


def _bare_loop(images: list[str], threads: int, out: multiprocessing.Queue) -> None:
    from bots.scene_text import SceneTextBot
    from spotbot.services.decoding import decode_image
    from spotbot.services.shard import limits_from

    started = time.perf_counter()
    bot = SceneTextBot()
    bot.load(threads=threads)
    limits = limits_from(Settings())
    loaded = time.perf_counter()
    for path in images:
        bot.predict([decode_image(Path(path).read_bytes(), limits)])
    finished = time.perf_counter()
    out.put((started, loaded, finished, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def bench_scene_text(workers: int, copies: int) -> None:
    samples = sorted(p for p in (REPO / "samples").rglob("*") if p.suffix.lower() in (".png", ".jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "src"
        for copy in range(copies):
            for path in samples:
                target = source / f"copy{copy}" / path.relative_to(REPO / "samples")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        images = sorted(str(p) for p in source.rglob("*") if p.is_file())

        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        threads = max(1, multiprocessing.cpu_count() // workers)
        started = time.perf_counter()
        shares = [images[i::workers] for i in range(workers)]
        processes = [context.Process(target=_bare_loop, args=(share, threads, queue)) for share in shares]
        for process in processes:
            process.start()
        reports = [queue.get() for _ in processes]
        for process in processes:
            process.join()
        bare_wall = time.perf_counter() - started
        bare_model_only = max(f for _, _, f, _ in reports) - min(l for _, l, _, _ in reports)
        bare_rss = max(r for *_, r in reports)

        elapsed, done = run_pipeline(source, "scene-text", workers, work)
        pipeline_rate, bare_rate = done / elapsed, len(images) / bare_wall
        print(f"(b) scene-text, {done} images ({copies} copies of the samples), {workers} workers")
        print(f"    end to end: {elapsed:.2f} s, {pipeline_rate:.2f} assets/s; peak worker RSS {children_peak_rss_mib():.0f} MiB")
        print(f"    bare model loop, same processes: {bare_wall:.2f} s with start-up and model load "
              f"({bare_rate:.2f} assets/s), {bare_model_only:.2f} s predicting; peak RSS {bare_rss:.0f} MiB")
        print(f"    efficiency (end to end / bare loop, both with start-up): {pipeline_rate / bare_rate:.3f} (target >= 0.90)")
        print(f"    efficiency against the bare predict loop alone (no start-up, no load): "
              f"{pipeline_rate / (len(images) / bare_model_only):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copies", type=int, default=8, help="copies of the sample images for (b)")
    parser.add_argument("--only", choices=("a", "b"))
    args = parser.parse_args()
    if args.only in (None, "a"):
        bench_overhead(args.files, args.workers)
    if args.only in (None, "b"):
        bench_scene_text(args.workers, args.copies)


if __name__ == "__main__":
    main()
