"""Review decisions in the local SQLite file, in their own table beside the tag index's."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from spotbot.adapters.sqlite.index import _TAG_COLUMNS, SQLiteTagIndex, _tag_record
from spotbot.domain import TagRecord
from spotbot.domain.reviews import Review

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS reviews (review_id TEXT PRIMARY KEY, record_id TEXT NOT NULL, bot TEXT NOT NULL, "
    "decided_at TEXT NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS reviews_by_bot ON reviews (bot, decided_at)",
    "CREATE INDEX IF NOT EXISTS reviews_by_record ON reviews (record_id, decided_at)",
    # The web pages list records newest first, maybe of one bot or job: without these, a page of 1 M
    # records is a full sort (the tag index's own search uses them as they are there).
    "CREATE INDEX IF NOT EXISTS tags_by_created ON tags (created_at DESC, asset)",
    "CREATE INDEX IF NOT EXISTS tags_by_bot ON tags (bot, created_at DESC, asset)",
    "CREATE INDEX IF NOT EXISTS tags_by_job ON tags (job_id, created_at DESC, asset)",
    # the queue reads one bot's records by rowid; without this a random probe scans the other bots' rows
    "CREATE INDEX IF NOT EXISTS tags_by_bot_rowid ON tags (bot)",
)
PAGE = 200


class SQLiteReviewStore:
    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0) -> None:
        SQLiteTagIndex(path, busy_timeout_s).close()  # the tag tables this store reads must exist
        self.db = sqlite3.connect(Path(path).expanduser(), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self._lock = threading.Lock()  # one connection shared by the web server's threads
        with self._lock:
            for statement in SCHEMA:
                self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    def save_review(self, review: Review) -> None:
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO reviews (review_id, record_id, bot, decided_at, doc) VALUES (?, ?, ?, ?, ?)",
                (review.review_id, review.record_id, review.bot, review.decided_at.isoformat(), review.model_dump_json()),
            )

    def reviews(self, bot: str | None = None, record_id: str | None = None) -> list[Review]:
        where, params = [], []
        if bot is not None:
            where.append("bot = ?")
            params.append(bot)
        if record_id is not None:
            where.append("record_id = ?")
            params.append(record_id)
        sql = "SELECT doc FROM reviews" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY decided_at, rowid"
        with self._lock:
            rows = self.db.execute(sql, params).fetchall()
        return [Review.model_validate_json(row[0]) for row in rows]

    def record(self, record_id: str) -> TagRecord | None:
        with self._lock:
            row = self.db.execute(
                f"SELECT {_TAG_COLUMNS} FROM tasks JOIN tags ON tags.job_id = tasks.job_id AND tags.asset = tasks.asset "
                "WHERE tasks.id = ?",
                (record_id,),
            ).fetchone()
        return _tag_record(row) if row else None

    def low_scoring(self, bot: str, below: float) -> Iterator[TagRecord]:
        after = 0
        while True:
            with self._lock:
                rows = self.db.execute(
                    f"SELECT tags.rowid, {_TAG_COLUMNS} FROM tags WHERE tags.rowid > ? AND tags.bot = ? AND EXISTS "
                    "(SELECT 1 FROM json_each(tags.tags) WHERE json_extract(value, '$.score') < ?) "
                    "ORDER BY tags.rowid LIMIT ?",
                    (after, bot, below, PAGE),
                ).fetchall()
            for row in rows:
                yield _tag_record(row[1:])
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def sample(self, bot: str, n: int, seed: int) -> list[TagRecord]:
        rng = random.Random(seed)
        with self._lock:
            (top,) = self.db.execute("SELECT MAX(rowid) FROM tags").fetchone()
            picked: dict[int, TagRecord] = {}
            for _ in range(n * 4 if top else 0):  # probes at random rowids; a probe landing on a taken one is lost
                row = self.db.execute(
                    f"SELECT tags.rowid, {_TAG_COLUMNS} FROM tags WHERE tags.rowid >= ? AND tags.bot = ? ORDER BY tags.rowid LIMIT 1",
                    (rng.randint(1, top), bot),
                ).fetchone()
                if row is not None:
                    picked.setdefault(row[0], _tag_record(row[1:]))
                if len(picked) >= n:
                    break
        return list(picked.values())
