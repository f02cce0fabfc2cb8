"""UI benchmark (not a test): page times of `spotbot ui` over a SQLite index of 1 M tag records.

Builds the index straight into the tables (executemany, one transaction), then serves the app on
127.0.0.1 and times each page over HTTP (median of --runs, after one warm-up).

    python bench/ui.py [--records 1000000] [--home /tmp/spotbot-ui-bench] [--runs 5] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from spotbot.adapters.sqlite.index import SQLiteTagIndex  # noqa: E402
from spotbot.domain import Job, JobStatus, Tag, TagRecord, task_id  # noqa: E402
from spotbot.settings import Settings  # noqa: E402

WORDS = ["欢迎光临", "人民路", "停车场入口", "全场八折", "营业时间", "小心地滑", "请勿吸烟", "OPEN", "SALE", "火锅", "手机", "饺子"]
JOBS = (("bench-scene-text", "scene-text", 0.4), ("bench-sentiment", "sentiment", 0.4), ("bench-car-model", "car-model", 0.2))


def _tags(bot: str, rng: random.Random) -> tuple[list[Tag], str | None]:
    if bot == "scene-text":
        lines = []
        for n in range(rng.randint(1, 4)):
            y = 40 + n * 90
            text = rng.choice(WORDS) + rng.choice(WORDS)
            lines.append(Tag(label="text", score=round(rng.uniform(0.5, 1), 4), text=text,
                             box=[[30, y], [400, y], [400, y + 60], [30, y + 60]]))
        return lines, None
    if bot == "sentiment":
        label = rng.choice(["positive", "negative"])
        return [Tag(label=label, score=round(rng.uniform(0.5, 1), 4))], "".join(rng.choice(WORDS) for _ in range(8))
    make = rng.choice(["Boxster", "Cayman", "911", "Macan"])
    return [Tag(label="vehicle", score=0.99), Tag(label=make, score=round(rng.uniform(0.3, 1), 4), kind="make_model")], None


VARIANTS = 2000  # distinct tag sets per bot, made once through the domain model, then reused across records
SECONDARY_INDEXES = ("tasks_by_shard", "tasks_by_status", "tag_labels_by_label", "tag_labels_by_row")


def _variants(bot: str, rng: random.Random) -> list[tuple[str, str | None, str, list[str]]]:
    """(tags JSON, text, searchable text, labels) for VARIANTS records of the bot, as the index would store them."""
    out = []
    for _ in range(VARIANTS):
        tags, text = _tags(bot, rng)
        record = TagRecord(job_id="-", bot=bot, model_version="v1", asset="-", etag="e", tags=tags, text=text)
        tags_json = json.dumps([t.model_dump(mode="json") for t in tags], ensure_ascii=False)
        out.append((tags_json, text, record.searchable_text(), sorted({t.label for t in tags})))
    return out


def build(home: Path, records: int) -> float:
    """Writes `records` tag records (and their tasks and jobs) into home/index.sqlite3; returns seconds taken."""
    started = time.perf_counter()
    path = home / "index.sqlite3"
    SQLiteTagIndex(path).close()  # the schema
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    for name in SECONDARY_INDEXES:  # built once at the end: faster than keeping them up to date row by row
        db.execute(f"DROP INDEX IF EXISTS {name}")
    rng = random.Random(16)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    db.execute("BEGIN")
    rowid = 0
    for job_id, bot, share in JOBS:
        source = home / "assets" / bot
        source.mkdir(parents=True, exist_ok=True)
        variants = _variants(bot, rng)
        n = int(records * share)
        db.execute("INSERT INTO jobs (job_id, created_at, doc) VALUES (?, ?, ?)", (job_id, t0.isoformat(), Job(
            job_id=job_id, bot=bot, source=str(source), output=str(home / "out"), workers=2, status=JobStatus.COMPLETED,
            created_at=t0, finished_at=t0 + timedelta(seconds=n // 500), model_version="v1").model_dump_json()))
        suffix = "txt" if bot == "sentiment" else "jpg"
        for start in range(0, n, 50_000):
            tags_rows, label_rows, text_rows, task_rows = [], [], [], []
            for i in range(start, min(n, start + 50_000)):
                rowid += 1
                tags_json, text, searchable, labels = variants[rng.randrange(VARIANTS)]
                asset = f"{source}/{i // 1000:04d}/{i:07d}.{suffix}"
                at = (t0 + timedelta(milliseconds=2 * i)).isoformat()
                tags_rows.append((rowid, job_id, asset, bot, "v1", "e", tags_json, text, at))
                label_rows.extend((rowid, label) for label in labels)
                text_rows.append((rowid, searchable))
                task_rows.append((task_id(job_id, asset), job_id, asset, "e", i // 1000, "DONE", 1, None, at))
            db.executemany("INSERT INTO tags (rowid, job_id, asset, bot, model_version, etag, tags, text, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tags_rows)
            db.executemany("INSERT INTO tag_labels (tag_rowid, label) VALUES (?, ?)", label_rows)
            db.executemany("INSERT INTO tag_text (rowid, body) VALUES (?, ?)", text_rows)
            db.executemany("INSERT INTO tasks (id, job_id, asset, etag, shard, status, attempts, error, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", task_rows)
    db.execute("COMMIT")
    db.close()
    SQLiteTagIndex(path).close()  # puts the dropped indexes back
    from spotbot.adapters.sqlite.reviews import SQLiteReviewStore

    SQLiteReviewStore(path).close()  # and the review table with the UI's newest-first index
    return time.perf_counter() - started


def serve(home: Path):
    import uvicorn

    from spotbot.entrypoints.ui import UiOptions, build_app

    web, closers = build_app(Settings(home=home), UiOptions(reviewer="bench"))
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", closers


def timed(url: str, runs: int) -> tuple[float, float, int]:
    def once() -> tuple[float, bytes]:
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as answer:
            body = answer.read()
        return time.perf_counter() - started, body

    first, body = once()  # warm-up: SQLite pages into the cache, thumbnails made, a finished job's timeline read
    return first, statistics.median(once()[0] for _ in range(runs)), body.count(b'class="card"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--home", type=Path, default=Path("/tmp/spotbot-ui-bench"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Reuse an index already built at --home")
    args = parser.parse_args()
    if not (args.keep and (args.home / "index.sqlite3").exists()):
        shutil.rmtree(args.home, ignore_errors=True)
        args.home.mkdir(parents=True)
        print(f"built {args.records:,} tag records in {build(args.home, args.records):.1f} s")
    server, url, closers = serve(args.home)
    pages = {
        "search, newest first": "/search",
        "search, page 20": "/search?after=456",
        "search text 欢迎光临 (FTS)": "/search?q=" + quote("欢迎光临"),
        "search text 2 words": "/search?q=" + quote("停车场入口 OPEN"),
        "search bot=scene-text (boxes)": "/search?bot=scene-text",
        "search label=Cayman": "/search?label=Cayman",
        "search job + label": "/search?job=bench-sentiment&label=negative",
        "review queue car-model": "/review?bot=car-model",
        "jobs": "/jobs",
        "job page (chart, 400k tasks)": "/jobs/bench-scene-text",
    }
    try:
        print(f"{'page':34} {'first ms':>9} {'median ms':>10} {'cards':>6}")
        for name, path in pages.items():
            first, seconds, cards = timed(url + path, args.runs)
            print(f"{name:34} {first * 1000:9.0f} {seconds * 1000:10.0f} {cards:6}")
    finally:
        server.should_exit = True
        for closer in closers:
            closer.close()


if __name__ == "__main__":
    main()
