"""The local job runner: a pool of worker processes, each loading the bot once."""

from __future__ import annotations

import ctypes
from dataclasses import replace
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from spotbot.adapters.local.in_process import InProcessRuntime
from spotbot.domain import SpotbotError
from spotbot.ports import RunOutcome, ShardResult, ShardWork  # noqa: F401
from spotbot.settings import Settings
from spotbot.services.shard import tag_shard
from spotbot.adapters.wiring import open_asset_store, open_local_index, open_output_store


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
        results: list[ShardResult] = []
        errors: list[str] = []
        processes = min(self.workers, len(work))
        pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),  # no inherited locks, threads or DB handles
            initializer=_init_worker,
            initargs=(self.settings, os.getpid()),
        )
        try:
            pending: set[Future] = {pool.submit(_run_shard, item) for item in work}
            while pending:
                finished, pending = wait(pending, timeout=self.tick_seconds, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        results.append(future.result())
                    except BotLoadError as error:
                        raise BotLoadError(str(error)) from None
                    except BrokenProcessPool:
                        errors.append("a worker process died (out of memory?); run the job again to resume it")
                        pending = set()
                        break
                    except Exception as error:  # noqa: BLE001 - one shard's crash is reported, the rest go on
                        errors.append(f"{type(error).__name__}: {error}")
                on_tick()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            _terminate(pool)
            raise
        pool.shutdown(wait=True)
        return RunOutcome(results, errors)


def _terminate(pool: ProcessPoolExecutor) -> None:
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.is_alive():
            process.terminate()


# Everything below runs in the worker processes.

_worker: dict[str, Any] = {}


def _init_worker(settings: Settings, parent_pid: int) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _worker.update(settings=settings, parent_pid=parent_pid, runtimes={})


def _die_with_parent() -> None:
    """A kill -9 of the parent must not leave workers tagging on their own."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _cached(key: tuple[str, str], make: Any) -> Any:
    if key not in _worker:
        _worker[key] = make()
    return _worker[key]


def _parent_gone() -> bool:
    return os.getppid() != _worker["parent_pid"]


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
    result = tag_shard(
        work,
        index=_worker["index"],
        store=_cached(("store", work.source), lambda: open_asset_store(work.source, settings)),  # one S3 client per process
        output=_cached(("output", work.output), lambda: open_output_store(work.output)),
        runtime=runtime,
        settings=settings,
        should_stop=_parent_gone,
    )
    return replace(result, model_version=runtime.model_version)
