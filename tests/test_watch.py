"""Continuous tagging, locally (issue 12): `spotbot watch FOLDER` tags files as they arrive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotbot.adapters.local.assets import LocalAssetStore
from spotbot.adapters.local.folder_events import FolderEvents
from spotbot.adapters.local.in_process import InProcessRuntime
from spotbot.adapters.local.output import LocalOutputStore
from spotbot.adapters.sqlite.index import SQLiteTagIndex
from spotbot.domain import AssetRef
from spotbot.domain.watches import watch_job_id
from spotbot.services.watch import WatchTarget, tag_arrivals, watch_folder
from spotbot.settings import Settings
from tests.conftest import REPO, read_parts, spotbot_env

LENGTH = "tests.support_bots:LengthBot"
WAIT_S = 60  # a generous bound for a loaded machine; the figure itself is in bench/incremental.py


def write(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_text(f"{name}\nsome words", encoding="utf-8")


def predicted(log: Path) -> list[str]:
    return sorted(log.read_text(encoding="utf-8").splitlines()) if log.exists() else []


def tagged(home: Path, job_id: str) -> list[str]:
    index = SQLiteTagIndex(home / "index.sqlite3")
    try:
        return sorted(Path(r.asset).name for r in index.tag_records(job_id))
    finally:
        index.close()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def start_watch(home: Path, folder: Path, out: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "spotbot", "watch", str(folder), "--bot", LENGTH, "--out", str(out), "--debounce", "0.2"],
        cwd=REPO,
        env=spotbot_env(home, SPOTBOT_TEST_PREDICT_LOG=str(log)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, stderr
    return stderr


def test_watch_tags_arrivals_catches_up_after_a_restart_and_never_tags_twice(tmp_path: Path):
    home, folder, out, log = tmp_path / "home", tmp_path / "inbox", tmp_path / "out", tmp_path / "predicted.log"
    folder.mkdir()
    write(folder, "before-1.txt", "before-2.txt")
    job_id = watch_job_id(str(folder.resolve()), LENGTH)

    proc = start_watch(home, folder, out, log)
    try:
        wait_for(lambda: tagged(home, job_id) == ["before-1.txt", "before-2.txt"], "the catch-up")
        (folder / "sub").mkdir()
        write(folder, "new-1.txt", "ignored.png")
        write(folder / "sub", "new-2.txt")
        wait_for(lambda: len(tagged(home, job_id)) == 4, "the arrivals")
        for name in ("new-1.txt", "before-1.txt"):  # duplicate events: the same bytes and mtime again
            path = folder / name
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
        write(folder, "marker.txt")  # tagged after the duplicates' events, in order
        wait_for(lambda: len(tagged(home, job_id)) == 5, "the marker")
    finally:
        stderr = stop(proc)
    assert "stopped" in stderr
    assert predicted(log) == ["before-1.txt", "before-2.txt", "marker.txt", "new-1.txt", "new-2.txt"]

    write(folder, "while-down.txt")  # arrives while nobody watches
    changed = folder / "before-2.txt"
    changed.write_text("before-2.txt\nchanged while down, and longer", encoding="utf-8")
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    proc = start_watch(home, folder, out, log)
    try:
        wait_for(lambda: "while-down.txt" in tagged(home, job_id), "the restart's catch-up")
        wait_for(lambda: predicted(log).count("before-2.txt") == 2, "the changed file")
    finally:
        stop(proc)
    assert predicted(log) == sorted(["before-1.txt", "before-2.txt", "before-2.txt", "marker.txt", "new-1.txt",
                                     "new-2.txt", "while-down.txt"])
    lines = {Path(r["asset"]).name: r for r in read_parts(out / job_id)}
    assert sorted(lines) == tagged(home, job_id) and lines["before-2.txt"]["tags"][0]["label"] == "long"


def test_watch_refuses_a_missing_folder(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "spotbot", "watch", str(tmp_path / "nope"), "--bot", LENGTH],
        cwd=REPO, env=spotbot_env(tmp_path / "home"), capture_output=True, text=True, timeout=WAIT_S,
    )
    assert result.returncode == 2 and "is not a folder" in result.stderr


@pytest.fixture
def target(tmp_path: Path) -> Iterator[WatchTarget]:
    settings = Settings(home=tmp_path / "home")
    folder = tmp_path / "inbox"
    folder.mkdir()
    index = SQLiteTagIndex(settings.home / "index.sqlite3")
    store = LocalAssetStore(folder)
    runtime = InProcessRuntime.load(LENGTH)
    yield WatchTarget("w1", index, store, LocalOutputStore(tmp_path / "out"), runtime, settings, bot=LENGTH)
    index.close()


def test_a_burst_of_10000_duplicate_events_tags_each_file_once(target: WatchTarget, tmp_path: Path, monkeypatch):
    log = tmp_path / "predicted.log"
    monkeypatch.setenv("SPOTBOT_TEST_PREDICT_LOG", str(log))
    target.runtime.bot.log = str(log)
    folder = Path(target.store.source)
    write(folder, *(f"f{i:04d}.txt" for i in range(2000)))
    refs = list(target.store.scan((".txt",)))
    burst = [refs[i % 2000] for i in range(10_000)]  # every file five times, as at-least-once delivery may
    batches = [burst[i : i + 700] for i in range(0, 10_000, 700)]
    total = watch_folder(target, iter(batches[1:]), file_types=(".txt",))  # the catch-up sees them all first
    assert total.done == 2000 and total.planned == 2000 and total.failed == {}
    assert len(predicted(log)) == 2000 and len(set(predicted(log))) == 2000
    again = tag_arrivals(target, burst)
    assert (again.planned, again.done) == (0, 0)
    job = target.index.get_job("w1")
    assert job.status == "COMPLETED" and job.counts.done == 2000 and job.counts.total == 2000


def test_arrivals_reuse_an_earlier_jobs_record_and_a_bad_asset_fails_alone(target: WatchTarget, tmp_path: Path):
    folder = Path(target.store.source)
    write(folder, "a.txt")
    (folder / "bad.txt").write_bytes(b"")  # an empty file fails to decode
    first = tag_arrivals(target, target.store.scan((".txt",)))
    assert first.done == 1 and list(first.failed) == [str(folder / "bad.txt")]
    other = WatchTarget("w2", target.index, target.store, target.output, target.runtime, target.settings, bot=LENGTH)
    second = tag_arrivals(other, target.store.refs([str(folder / "a.txt")], (".txt",)))
    assert (second.done, second.reused) == (0, 1)
    assert [r.reused_from for r in target.index.tag_records("w2")] == ["w1"]


def test_folder_events_batch_a_burst_by_file_and_type(tmp_path: Path):
    store = LocalAssetStore(tmp_path)
    with FolderEvents(store, (".txt",), debounce_s=0.3, max_wait_s=30) as events:
        time.sleep(0.2)  # the observer is scheduled on enter; let inotify settle before the burst
        for i in range(300):
            (tmp_path / f"x{i}.txt").write_text("x")
            (tmp_path / f"x{i}.txt").write_text("xy")  # several events per file
        (tmp_path / "skip.png").write_text("not a text")
        batches = events.batches()
        got: set[str] = set()
        while len(got) < 300:
            batch: list[AssetRef] = next(batches)
            assert len({r.uri for r in batch}) == len(batch)  # many events of a file: once in a batch
            got |= {r.uri for r in batch}
    assert got == {str(tmp_path.resolve() / f"x{i}.txt") for i in range(300)}  # no .png


def test_folder_events_refuse_a_bad_debounce(tmp_path: Path):
    with pytest.raises(ValueError, match="debounce"):
        FolderEvents(LocalAssetStore(tmp_path), (".txt",), debounce_s=0)
