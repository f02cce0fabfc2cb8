"""The local pipeline under real faults, through the real `spotbot` command: signals, pipes, odd
names, workers that die, broken bots, lost output and bad settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO, read_parts, run_spotbot, spotbot_env, wait_for_done
from tests.test_pipeline import assert_outputs_agree, write_reviews


def start_spotbot(home: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "spotbot", *args], cwd=REPO, env=spotbot_env(home, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def job_json(home: Path, job_id: str) -> dict:
    return json.loads(run_spotbot(home, "status", job_id, "--json").stdout)


@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_stops_the_job_cleanly_and_a_resume_tags_the_rest_once(tmp_path: Path, signum: int, code: int, word: str):
    src, home, out, log = tmp_path / "src", tmp_path / "home", tmp_path / "out", tmp_path / "predicted.log"
    write_reviews(src, 120)
    args = ["tag", str(src), "--bot", "tests.support_bots:SlowLengthBot", "--out", str(out), "--job-id", "stop",
            "--workers", "2", "--shard-size", "15"]
    process = start_spotbot(home, *args, SPOTBOT_TEST_PREDICT_LOG=str(log), SPOTBOT_WRITE_BATCH="4")
    wait_for_done(home, 20)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    assert f"{word}; run the same command with --job-id stop to resume it" in stderr
    status = job_json(home, "stop")
    assert status["status"] == "CANCELLED" and 0 < status["counts"]["done"] < 120
    time.sleep(0.3)
    predicted = len(log.read_text().splitlines())
    time.sleep(0.5)
    assert len(log.read_text().splitlines()) == predicted, "a worker went on tagging after the stop"

    resumed = json.loads(run_spotbot(home, *args, "--json", SPOTBOT_TEST_PREDICT_LOG=str(log)).stdout)
    assert resumed["job"]["status"] == "COMPLETED" and resumed["job"]["counts"]["done"] == 120
    assert len(assert_outputs_agree(home, out, "stop")) == 120
    assert sorted(log.read_text().splitlines()) == sorted(f"review {i:04d}" for i in range(120))  # each tagged once


def test_a_bot_that_fails_to_load_fails_the_job_in_one_line(tmp_path: Path):
    src, home = tmp_path / "src", tmp_path / "home"
    write_reviews(src, 4)
    run = run_spotbot(home, "tag", str(src), "--bot", "tests.support_bots:BrokenLoadBot", "--job-id", "noload",
                      "--out", str(tmp_path / "o"), check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "failed to load: FileNotFoundError: model weights missing" in run.stderr
    status = job_json(home, "noload")
    assert status["status"] == "FAILED" and "model weights missing" in status["error"]


def test_pipes_and_devices_are_skipped_and_said_so(tmp_path: Path):
    src, home, out = tmp_path / "src", tmp_path / "home", tmp_path / "out"
    write_reviews(src, 3)
    os.mkfifo(src / "pipe.txt")  # reading it would block forever
    run = run_spotbot(home, "tag", str(src), "--bot", "tests.support_bots:LengthBot", "--out", str(out),
                      "--job-id", "fifo", "--json")
    assert json.loads(run.stdout)["job"]["counts"] == {"total": 3, "pending": 0, "done": 3, "failed": 0, "skipped": 0}
    assert json.loads(run.stdout)["run"]["skipped"] == [f"{src / 'pipe.txt'}: a named pipe, not a regular file"]
    assert "skipped:" in run_spotbot(home, "tag", str(src), "--bot", "tests.support_bots:LengthBot", "--job-id", "fifo").stderr


def test_a_read_that_blocks_fails_that_asset_after_the_timeout(tmp_path: Path):
    """The FIFO is swapped in after the scan, so the read itself meets it; O_NONBLOCK keeps it from hanging."""
    from spotbot.adapters.local.assets import LocalAssetStore
    from spotbot.services.decoding import AssetError

    write_reviews(tmp_path / "src", 1)
    store = LocalAssetStore(tmp_path / "src")
    (asset,) = list(store.scan((".txt",)))
    os.unlink(asset.uri)
    os.mkfifo(asset.uri)
    with pytest.raises(AssetError, match="not a regular file"):
        store.read(asset, 1000)


def test_a_file_name_that_is_not_utf8_fails_alone_shown_escaped(tmp_path: Path):
    src, home, out = tmp_path / "src", tmp_path / "home", tmp_path / "out"
    write_reviews(src, 3)
    bad = os.path.join(os.fsencode(src), b"caf\xe9.txt")
    with open(bad, "wb") as file:
        file.write(b"latin-1 name")
    run = run_spotbot(home, "tag", str(src), "--bot", "tests.support_bots:LengthBot", "--out", str(out),
                      "--job-id", "names", "--json")
    assert json.loads(run.stdout)["job"]["counts"]["done"] == 3
    (failed,) = job_json(home, "names")["failed_tasks"]
    assert failed["asset"] == f"{src}/caf\\xe9.txt" and "not valid UTF-8" in failed["error"]
    assert_outputs_agree(home, out, "names")


def test_an_asset_that_kills_its_worker_fails_alone_and_the_rest_is_tagged(tmp_path: Path):
    src, home, out, log = tmp_path / "src", tmp_path / "home", tmp_path / "out", tmp_path / "predicted.log"
    write_reviews(src, 40)
    (src / "sub1" / "review-0013.txt").write_text("review 0013 segfault here", encoding="utf-8")
    args = ["tag", str(src), "--bot", "tests.support_bots:CrashingBot", "--out", str(out), "--job-id", "crash",
            "--workers", "2", "--shard-size", "10"]
    run = run_spotbot(home, *args, "--json", SPOTBOT_TEST_PREDICT_LOG=str(log))
    assert "Traceback" not in run.stderr
    job = json.loads(run.stdout)["job"]
    assert job["status"] == "PARTIAL" and job["counts"]["done"] == 39 and job["counts"]["failed"] == 1
    (failed,) = job_json(home, "crash")["failed_tasks"]
    assert failed["asset"].endswith("review-0013.txt")
    assert failed["error"] == "the worker process died (signal SIGSEGV) while tagging this asset"
    assert Counter(log.read_text().splitlines()).most_common(1)[0][1] <= 2  # each asset tagged once (twice if in the dead batch)
    assert len(assert_outputs_agree(home, out, "crash")) == 39
    # a resume tries the asset again, finds it alone once more, and ends: no loop
    again = run_spotbot(home, *args, "--json")
    assert json.loads(again.stdout)["job"]["counts"]["failed"] == 1


def test_nan_scores_fail_the_asset_and_never_reach_the_json_lines(tmp_path: Path):
    src, home, out = tmp_path / "src", tmp_path / "home", tmp_path / "out"
    write_reviews(src, 3)
    (src / "odd.txt").write_text("nan nan", encoding="utf-8")
    run = run_spotbot(home, "tag", str(src), "--bot", "tests.support_bots:NanBot", "--out", str(out), "--job-id", "nan", "--json")
    assert json.loads(run.stdout)["job"]["counts"]["failed"] == 1
    assert "not a finite number" in job_json(home, "nan")["failed_tasks"][0]["error"]
    for part in (out / "nan").glob("part-*.jsonl"):
        for line in part.read_text().splitlines():
            json.loads(line, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))


def test_lost_or_corrupted_output_is_made_whole_on_resume(tmp_path: Path):
    src, home, out, log = tmp_path / "src", tmp_path / "home", tmp_path / "out", tmp_path / "predicted.log"
    write_reviews(src, 30)
    args = ["tag", str(src), "--bot", "tests.support_bots:LengthBot", "--out", str(out), "--job-id", "whole",
            "--shard-size", "10", "--workers", "1"]
    run_spotbot(home, *args, SPOTBOT_TEST_PREDICT_LOG=str(log))
    before = sorted(read_parts(out / "whole"), key=lambda r: r["asset"])
    parts = sorted((out / "whole").glob("part-*.jsonl"))
    parts[1].write_text(parts[1].read_text()[:-40] + "\n{not json\n")  # corrupted
    run_spotbot(home, *args, SPOTBOT_TEST_PREDICT_LOG=str(log))
    assert sorted(read_parts(out / "whole"), key=lambda r: r["asset"]) == before
    for path in (out / "whole").iterdir():
        path.unlink()
    (out / "whole").rmdir()
    resumed = json.loads(run_spotbot(home, *args, "--json", SPOTBOT_TEST_PREDICT_LOG=str(log)).stdout)
    assert resumed["job"]["status"] == "COMPLETED" and (out / "whole" / "_job.json").exists()
    assert sorted(read_parts(out / "whole"), key=lambda r: r["asset"]) == before
    assert len(log.read_text().splitlines()) == 30  # made whole from the index: nothing tagged twice


def test_bad_settings_and_a_broken_home_get_one_line(tmp_path: Path):
    home = tmp_path / "home"
    bad = run_spotbot(home, "jobs", check=False, SPOTBOT_WORKERS="many")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "SPOTBOT_WORKERS='many'" in bad.stderr
    bad_json = run_spotbot(home, "jobs", "--json", check=False, SPOTBOT_READ_CONCURRENCY="0")
    assert bad_json.returncode == 2 and json.loads(bad_json.stderr)["exit_code"] == 2
    assert "SPOTBOT_READ_CONCURRENCY" in json.loads(bad_json.stderr)["error"]
    src = tmp_path / "src"
    write_reviews(src, 2)
    comma = run_spotbot(home, "tag", str(src), "--bot", "tests.support_bots:LengthBot", "--out", str(tmp_path / "o"),
                        SPOTBOT_TEXT_ENCODINGS="utf-8,gb18030")
    assert comma.returncode == 0

    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    for command in (["jobs"], ["status", "x"], ["search", "x"]):
        run = run_spotbot(a_file, *command, check=False)
        assert run.returncode == 1 and "Traceback" not in run.stderr and str(a_file) in run.stderr, run.stderr
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    run = run_spotbot(corrupt, "jobs", check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr and "spotbot doctor" in run.stderr
    doctor = run_spotbot(corrupt, "doctor", check=False)
    assert doctor.returncode == 1 and "index" in doctor.stdout and "move it aside" in doctor.stdout.lower()
    assert run_spotbot(home, "doctor").returncode == 0


def test_errors_under_json_are_json(tmp_path: Path):
    run = run_spotbot(tmp_path / "home", "status", "no-such-job", "--json", check=False)
    assert run.returncode == 2
    assert json.loads(run.stderr) == {"error": "no job 'no-such-job'; `spotbot jobs` lists the jobs", "exit_code": 2}


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 64 KiB tmpfs, so the output fills up for real; skipped where mounting is refused."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_ends_the_job_in_one_line_and_a_resume_finishes_it(tmp_path: Path, small_disk: Path):
    src, home = tmp_path / "src", tmp_path / "home"
    write_reviews(src, 400)  # ~150 KB of JSON Lines: more than the disk holds
    args = ["tag", str(src), "--bot", "tests.support_bots:LengthBot", "--out", str(small_disk), "--job-id", "full",
            "--workers", "1"]
    run = run_spotbot(home, *args, check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "No space left on device" in run.stderr
    status = job_json(home, "full")
    assert status["status"] in ("FAILED", "PARTIAL") and status["counts"]["failed"] == 0
    assert not list(small_disk.rglob("*.tmp")), "a half-written file was left behind"
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    resumed = json.loads(run_spotbot(home, *args, "--json").stdout)
    assert resumed["job"]["status"] == "COMPLETED" and resumed["job"]["counts"]["done"] == 400
    assert len(assert_outputs_agree(home, small_disk, "full")) == 400


def test_bots_says_car_model_is_not_ready_without_its_model(tmp_path: Path):
    listed = json.loads(run_spotbot(tmp_path / "home", "bots", "--models", str(tmp_path / "empty"), "--json").stdout)
    ready = {b["name"]: (b["ready"], b["model_version"]) for b in listed}
    assert ready["car-model"] == (False, None) and ready["sentiment"][0] is True


def test_status_folds_a_long_failed_path_in_80_columns(tmp_path: Path):
    src, home = tmp_path / "src", tmp_path / "home"
    deep = src / ("a-rather-long-folder-name-" * 3) / "and-a-file-name-that-does-not-fit-either.txt"
    deep.parent.mkdir(parents=True)
    deep.write_text("boom", encoding="utf-8")
    run_spotbot(home, "tag", str(src), "--bot", "tests.support_bots:FussyBot", "--job-id", "fold", "--out", str(tmp_path / "o"))
    env = spotbot_env(home) | {"COLUMNS": "80"}
    table = subprocess.run([sys.executable, "-m", "spotbot", "status", "fold"], cwd=REPO, env=env,
                           capture_output=True, text=True, check=True).stdout
    joined = "".join(part.strip() for line in table.splitlines() for part in line.split("│"))
    assert str(deep.relative_to(src)).replace(" ", "") in joined and "…" not in table


def children_of(pid: int) -> set[int]:
    try:
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to find the workers")
def test_workers_die_when_the_parent_dies_during_their_start_up(tmp_path: Path):
    src, home = tmp_path / "src", tmp_path / "home"
    write_reviews(src, 60)
    process = start_spotbot(home, "tag", str(src), "--bot", "tests.support_bots:SlowLengthBot", "--workers", "2",
                            "--shard-size", "10", "--out", str(tmp_path / "o"))
    deadline, seen = time.monotonic() + 60, set()
    while time.monotonic() < deadline and len(seen) < 2:  # the resource tracker and the first worker being spawned
        seen |= children_of(process.pid)
        time.sleep(0.005)
    process.kill()  # while the workers are still importing: before their initializer ran
    process.wait()
    assert seen, "no worker was ever started"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(pid) for pid in seen):
        time.sleep(0.1)
    assert not [pid for pid in seen if alive(pid)], "a worker or the resource tracker outlived its parent"
