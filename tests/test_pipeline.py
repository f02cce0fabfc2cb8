"""The local pipeline end to end, through the real `spotbot` command and worker processes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from PIL import Image

from spotbot.adapters.sqlite.index import SQLiteTagIndex
from tests.conftest import REPO, read_parts, run_spotbot, spotbot_env, wait_for_done


def write_reviews(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"sub{i % 3}" / f"review-{i:04d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"review {i:04d}\n这家店的菜很好吃，服务也很周到，下次还来。" * (1 + i % 2), encoding="utf-8")
        paths.append(path)
    return paths


def index_records(home: Path, job_id: str) -> list[dict]:
    index = SQLiteTagIndex(home / "index.sqlite3")
    try:
        return [r.model_dump(mode="json", exclude_none=True) for r in index.tag_records(job_id)]
    finally:
        index.close()


def assert_outputs_agree(home: Path, out: Path, job_id: str) -> list[dict]:
    """The JSON Lines and the SQLite index hold the same records, one per asset."""
    lines = read_parts(out / job_id)
    assets = Counter(line["asset"] for line in lines)
    assert [a for a, n in assets.items() if n > 1] == [], "an asset was written twice"
    indexed = index_records(home, job_id)
    assert sorted(lines, key=lambda r: r["asset"]) == indexed
    return lines


def test_bad_inputs_fail_alone_and_the_job_ends_partial(tmp_path: Path):
    images, texts = tmp_path / "images", tmp_path / "texts"
    images.mkdir()
    texts.mkdir()
    Image.new("RGB", (64, 32), "white").save(images / "good.png")
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (images / "empty.png").write_bytes(b"")
    Image.new("1", (10_000, 10_000), 1).save(images / "huge-blank.png")
    (images / "unreadable.png").symlink_to(tmp_path / "gone.png")  # dangling link: cannot be read
    (texts / "good.txt").write_text("味道不错", encoding="utf-8")
    (texts / "gbk.txt").write_bytes("味道不错，推荐".encode("gb18030"))
    (texts / "big.txt").write_bytes("好".encode() * 2**20)  # 3 MB
    (texts / "empty.txt").write_bytes(b"")
    (texts / "huge.txt").write_bytes(b"a" * (65 * 2**20))  # over the 64 MiB asset limit: never read whole
    home, out = tmp_path / "home", tmp_path / "out"

    run = run_spotbot(home, "tag", str(images), "--bot", "scene-text", "--out", str(out), "--job-id", "imgs", "--json")
    job = json.loads(run.stdout)["job"]
    assert job["status"] == "PARTIAL"
    assert job["counts"] == {"total": 5, "pending": 0, "done": 1, "failed": 4, "skipped": 0}
    run_spotbot(home, "tag", str(texts), "--bot", "sentiment", "--out", str(out), "--job-id", "texts")

    status = json.loads(run_spotbot(home, "status", "imgs", "--json").stdout)
    errors = {Path(t["asset"]).name: t["error"] for t in status["failed_tasks"]}
    assert errors.keys() == {"corrupt.jpg", "empty.png", "huge-blank.png", "unreadable.png"}
    assert "corrupt or truncated image" in errors["corrupt.jpg"]
    assert errors["empty.png"] == "empty file (0 bytes)"
    assert "100 megapixels" in errors["huge-blank.png"]
    assert "cannot read file" in errors["unreadable.png"]

    table = run_spotbot(home, "status", "texts").stdout
    assert "PARTIAL" in table and "gbk.txt" not in table  # GB 18030 is detected, no setting needed
    assert "above max_text_bytes" in table and "empty file" in table and "above max_asset_bytes" in table
    assert_outputs_agree(home, out, "texts")

    strict = run_spotbot(home, "tag", str(texts), "--bot", "sentiment", "--job-id", "texts", "--fail-on-error", check=False)
    assert strict.returncode == 1
    # the limits are settings: allowing GB 18030 text and larger files tags what failed before
    run_spotbot(
        home, "tag", str(texts), "--bot", "sentiment", "--job-id", "texts",
        SPOTBOT_TEXT_ENCODINGS='["utf-8","gb18030"]', SPOTBOT_MAX_TEXT_BYTES=str(4 * 2**20),
    )
    status = json.loads(run_spotbot(home, "status", "texts", "--json").stdout)
    assert status["counts"]["done"] == 3
    assert [Path(t["asset"]).name for t in status["failed_tasks"]] == ["empty.txt", "huge.txt"]
    encodings = {Path(line["asset"]).name: line["encoding"] for line in assert_outputs_agree(home, out, "texts")}
    assert encodings == {"good.txt": "utf-8", "gbk.txt": "gb18030", "big.txt": "utf-8"}


def test_bot_error_fails_that_asset_only(tmp_path: Path):
    src = tmp_path / "src"
    write_reviews(src, 6)
    (src / "boom.txt").write_text("boom", encoding="utf-8")
    home, out = tmp_path / "home", tmp_path / "out"
    job = json.loads(
        run_spotbot(home, "tag", str(src), "--bot", "tests.support_bots:FussyBot", "--out", str(out), "--json").stdout
    )["job"]
    assert job["counts"]["done"] == 6 and job["counts"]["failed"] == 1
    status = json.loads(run_spotbot(home, "status", job["job_id"], "--json").stdout)
    assert status["failed_tasks"][0]["error"] == "bot error: ValueError: cannot take this text"


def test_rerun_with_the_same_job_id_tags_only_what_is_missing(tmp_path: Path):
    src, home, out, log = tmp_path / "src", tmp_path / "home", tmp_path / "out", tmp_path / "predicted.log"
    write_reviews(src, 10)
    args = ["tag", str(src), "--bot", "tests.support_bots:LengthBot", "--out", str(out), "--job-id", "again", "--json"]
    first = json.loads(run_spotbot(home, *args, SPOTBOT_TEST_PREDICT_LOG=str(log)).stdout)
    assert first["run"]["processed"] == 10
    write_reviews(src / "more", 2)
    second = json.loads(run_spotbot(home, *args, SPOTBOT_TEST_PREDICT_LOG=str(log)).stdout)
    assert second["run"]["processed"] == 2 and second["job"]["counts"]["done"] == 12
    assert len(log.read_text().splitlines()) == 12  # nothing was predicted twice
    assert len(assert_outputs_agree(home, out, "again")) == 12

    conflict = run_spotbot(home, "tag", str(src), "--bot", "sentiment", "--job-id", "again", check=False)
    assert conflict.returncode == 2 and "exists with bot" in conflict.stderr


def test_resume_after_kill_9_loses_nothing_and_tags_nothing_twice(tmp_path: Path):
    src, home, out, log = tmp_path / "src", tmp_path / "home", tmp_path / "out", tmp_path / "predicted.log"
    write_reviews(src, 300)
    args = ["tag", str(src), "--bot", "tests.support_bots:SlowLengthBot", "--out", str(out), "--job-id", "kill9"]
    args += ["--workers", "2", "--shard-size", "25"]
    env = spotbot_env(home, SPOTBOT_TEST_PREDICT_LOG=str(log), SPOTBOT_WRITE_BATCH="8")
    process = subprocess.Popen([sys.executable, "-m", "spotbot", *args], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = home / "index.sqlite3"
    wait_for_done(home, 60, timeout=120)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    with sqlite3.connect(db, timeout=30) as conn:
        done_assets = {row[0] for row in conn.execute("SELECT asset FROM tasks WHERE status = 'DONE'")}
    assert 0 < len(done_assets) < 300
    predicted_before = len(log.read_text().splitlines())
    time.sleep(0.5)  # orphaned workers would go on predicting; they must have died with their parent
    assert len(log.read_text().splitlines()) == predicted_before

    resumed = json.loads(run_spotbot(home, *args, "--json", SPOTBOT_TEST_PREDICT_LOG=str(log)).stdout)
    assert resumed["job"]["status"] == "COMPLETED"
    assert resumed["job"]["counts"]["done"] == 300
    assert resumed["run"]["processed"] == 300 - len(done_assets)
    predicted_on_resume = log.read_text().splitlines()[predicted_before:]
    done_texts = {Path(a).read_text(encoding="utf-8").splitlines()[0] for a in done_assets}
    assert done_texts.isdisjoint(predicted_on_resume), "an asset tagged before the kill was tagged again"
    lines = assert_outputs_agree(home, out, "kill9")
    assert {line["asset"] for line in lines} == {str(p) for p in src.rglob("*.txt")}


def test_a_running_job_cannot_be_started_twice(tmp_path: Path):
    src, home = tmp_path / "src", tmp_path / "home"
    write_reviews(src, 200)
    args = ["tag", str(src), "--bot", "tests.support_bots:SlowLengthBot", "--job-id", "busy", "--out", str(tmp_path / "o")]
    process = subprocess.Popen([sys.executable, "-m", "spotbot", *args], cwd=REPO, env=spotbot_env(home),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = home / "locks" / "busy.lock"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.05)
        second = run_spotbot(home, *args, check=False)
        assert second.returncode == 3 and "running already" in second.stderr
    finally:
        process.kill()
        process.wait()


def test_bad_command_lines_get_clear_errors(tmp_path: Path):
    home = tmp_path / "home"
    unknown = run_spotbot(home, "tag", str(tmp_path), "--bot", "nope", check=False)
    assert unknown.returncode == 2 and "unknown bot 'nope'" in unknown.stderr and "scene-text" in unknown.stderr
    missing = run_spotbot(home, "tag", str(tmp_path / "missing"), "--bot", "sentiment", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad_id = run_spotbot(home, "tag", str(tmp_path), "--bot", "sentiment", "--job-id", "a b", check=False)
    assert bad_id.returncode == 2 and "job id 'a b' is not valid" in bad_id.stderr
    write_reviews(tmp_path / "src", 2)
    broken = run_spotbot(home, "tag", str(tmp_path / "src"), "--bot", "tests.support_bots:BrokenLoadBot", check=False)
    assert broken.returncode == 1 and "failed to load" in broken.stderr and "model weights missing" in broken.stderr
    assert run_spotbot(home, "status", "no-such-job", check=False).returncode == 2
    nothing = run_spotbot(home, "tag", str(tmp_path / "src"), "--bot", "scene-text", "--out", str(tmp_path / "o"))
    assert "no assets of types .jpg" in nothing.stderr
    assert "Tag every asset under SOURCE" in run_spotbot(home, "tag", "--help").stdout
