"""The local job runner: a pool of worker processes, each loading the bot once.

A worker that dies (a segfault or OOM in a native decoder or model) breaks the pool. Each worker
notes the assets it has in flight in a journal file, so the parent can tell which assets the dead
worker held: one is failed alone, several are tagged again one at a time in a fresh pool, and the
rest of every shard goes on.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any

from spotbot.adapters.local.in_process import InProcessRuntime
from spotbot.adapters.wiring import open_asset_store, open_local_index, open_output_store
from spotbot.domain import SpotbotError, TaskStatus
from spotbot.ports import RunOutcome, ShardResult, ShardWork, TaskOutcome
from spotbot.services.shard import tag_shard
from spotbot.settings import Settings

STOP_GRACE_SECONDS = 10.0  # after Ctrl-C or SIGTERM, how long workers get to save the batch they hold
MAX_POOL_RESTARTS = 50  # each restart fails an asset or narrows the suspects; this bounds a pathological run


class BotLoadError(SpotbotError, RuntimeError):
    """The bot cannot load in a worker: the job fails (exit 1), no asset is blamed."""


class LocalPoolRunner:
    def __init__(self, settings: Settings, workers: int, tick_seconds: float = 0.25) -> None:
        self.settings = settings
        self.workers = workers
        self.tick_seconds = tick_seconds

    def run(self, work: list[ShardWork], on_tick: Callable[[], None]) -> RunOutcome:
        if not work:
            return RunOutcome([], [])
        journals = Path(tempfile.mkdtemp(prefix="spotbot-journal-"))
        results: list[ShardResult] = []
        errors: list[str] = []
        try:
            todo = list(work)
            for _ in range(MAX_POOL_RESTARTS):
                todo = self._run_pool(todo, journals, results, errors, on_tick)
                if not todo:
                    break
            else:
                errors.append(f"worker processes kept dying ({MAX_POOL_RESTARTS} times); run the job again to resume it")
        finally:
            shutil.rmtree(journals, ignore_errors=True)
        return RunOutcome(results, errors)

    def _run_pool(
        self, work: list[ShardWork], journals: Path, results: list[ShardResult], errors: list[str], on_tick: Callable[[], None]
    ) -> list[ShardWork]:
        """Runs the shards in one pool; returns the shards to run again when a worker died."""
        context = multiprocessing.get_context("spawn")  # no inherited locks, threads or DB handles
        stop = context.Event()
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(work)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.settings, os.getpid(), str(journals), stop),
        )
        processes: dict[int, Any] = {}
        futures: dict[Future, ShardWork] = {pool.submit(_run_shard, item): item for item in work}
        unfinished: list[ShardWork] = []
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=self.tick_seconds, return_when=FIRST_COMPLETED)
                processes.update(getattr(pool, "_processes", None) or {})  # kept: the pool forgets them when it breaks
                for future in finished:
                    try:
                        results.append(future.result())
                    except SpotbotError as error:  # the bot would not load, S3 is down: the job stops, no asset fails
                        raise type(error)(str(error)) from None
                    except BrokenProcessPool:
                        unfinished.append(futures[future])
                    except Exception as error:  # noqa: BLE001 - one shard's crash is reported, the rest go on
                        errors.append(f"{type(error).__name__}: {error}")
                on_tick()
        except BaseException:
            processes.update(getattr(pool, "_processes", None) or {})
            stop.set()  # each worker saves what it has tagged, as the Batch worker does on SIGTERM
            pool.shutdown(wait=False, cancel_futures=True)
            _wait_for_workers(futures, processes.values(), STOP_GRACE_SECONDS)
            _terminate(processes.values())
            raise
        pool.shutdown(wait=True)
        if not unfinished:
            return []
        return self._after_a_death(unfinished, processes, journals, errors)

    def _after_a_death(
        self, unfinished: list[ShardWork], processes: dict[int, Any], journals: Path, errors: list[str]
    ) -> list[ShardWork]:
        """Fails the asset that killed its worker, or marks the dead worker's assets as suspects."""
        dead = {pid: p.exitcode for pid, p in processes.items() if p.exitcode not in (0, None, -signal.SIGTERM)}
        by_shard = {w.shard: w for w in unfinished}
        blamed = False
        index = open_local_index(self.settings)
        try:
            for pid, exitcode in dead.items():
                shard, in_flight = read_journal(journals / f"{pid}.jsonl")
                if shard is None or shard not in by_shard or not in_flight:
                    continue
                work = by_shard[shard]
                blamed = True
                if len(in_flight) == 1:
                    (asset,) = in_flight
                    how = f"signal {signal.Signals(-exitcode).name}" if exitcode < 0 else f"exit code {exitcode}"
                    message = f"the worker process died ({how}) while tagging this asset"
                    index.record_outcomes([], [TaskOutcome(asset, TaskStatus.FAILED, message)], work.job_id)
                    by_shard[shard] = replace(work, skip=(*work.skip, asset), suspects=tuple(set(work.suspects) - {asset}))
                else:
                    by_shard[shard] = replace(work, suspects=tuple(sorted(in_flight)))
        finally:
            index.close()
        if not blamed:  # nothing to tell the dead worker's assets by: stop rather than crash forever
            errors.append("a worker process died (out of memory?); run the job again to resume it")
            return []
        for journal in journals.glob("*.jsonl"):
            journal.unlink()
        return list(by_shard.values())


def read_journal(path: Path) -> tuple[int | None, set[str]]:
    """The shard a worker was on and the assets it had started but not finished."""
    shard: int | None = None
    in_flight: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None, set()
    for line in lines:
        try:
            event, value = json.loads(line)
        except (ValueError, TypeError):
            continue  # torn by the death
        if event == "shard":
            shard, in_flight = value, set()
        elif event == "+":
            in_flight.add(value)
        elif event == "-":
            in_flight.discard(value)
    return shard, in_flight


def _wait_for_workers(futures: Any, processes: Any, grace_seconds: float) -> None:
    """Until each shard has ended or no worker is left alive to end it, for at most grace_seconds: the
    shards still queued when the pool shut down have no worker, and their futures never end."""
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(process.is_alive() for process in list(processes)):
        unfinished = [future for future in futures if not future.done()]
        if not unfinished:
            return
        wait(unfinished, timeout=min(0.1, max(0.0, deadline - time.monotonic())))


def _terminate(processes: Any) -> None:
    for process in list(processes):
        if process.is_alive():
            process.terminate()
    for process in list(processes):
        process.join(timeout=5)


# Everything below runs in the worker processes.

_worker: dict[str, Any] = {}


class _FileJournal:
    """Appends +asset / -asset lines; the OS keeps them when the process dies, no fsync needed."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()  # reads start on several threads

    def note(self, event: str, value: Any) -> None:
        with self.lock:
            self.file.write(json.dumps([event, value]) + "\n")
            self.file.flush()

    def started(self, asset: str) -> None:
        self.note("+", asset)

    def ended(self, asset: str) -> None:
        self.note("-", asset)


def _init_worker(settings: Settings, parent_pid: int, journals: str, stop: Any) -> None:
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    journal = _FileJournal(Path(journals) / f"{os.getpid()}.jsonl")
    _worker.update(settings=settings, parent_pid=parent_pid, runtimes={}, journal=journal, stop=stop)


def _die_with_parent(parent_pid: int) -> None:
    """A kill -9 of the parent must not leave workers tagging on their own."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died while this worker started: the signal will never come
        os._exit(1)


def _cached(key: tuple[str, str], make: Any) -> Any:
    if key not in _worker:
        _worker[key] = make()
    return _worker[key]


def _should_stop() -> bool:
    """The parent asked (Ctrl-C, SIGTERM) or died."""
    return _worker["stop"].is_set() or os.getppid() != _worker["parent_pid"]


def _run_shard(work: ShardWork) -> ShardResult:
    settings: Settings = _worker["settings"]
    key = (work.bot, work.batch_size, work.model_dir)
    runtime = _worker["runtimes"].get(key)
    if runtime is None:
        try:
            model_dir = Path(work.model_dir) if work.model_dir else None
            runtime = InProcessRuntime.load(work.bot, model_dir, threads=work.threads, batch_size=work.batch_size)
        except Exception as error:  # noqa: BLE001 - reported to the parent with what to fix
            raise BotLoadError(f"bot {work.bot!r} failed to load: {type(error).__name__}: {error}") from None
        _worker["runtimes"][key] = runtime
    if "index" not in _worker:
        _worker["index"] = open_local_index(settings)
    journal: _FileJournal = _worker["journal"]
    journal.note("shard", work.shard)
    result = tag_shard(
        work,
        index=_worker["index"],
        store=_cached(("store", work.source), lambda: open_asset_store(work.source, settings)),  # one S3 client per process
        output=_cached(("output", work.output), lambda: open_output_store(work.output, settings)),
        runtime=runtime,
        settings=settings,
        should_stop=_should_stop,
        journal=journal,
    )
    return replace(result, model_version=runtime.model_version)
