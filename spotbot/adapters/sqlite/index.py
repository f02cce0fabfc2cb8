"""The local tag index: SQLite in WAL mode, written in batches, with FTS5 over tag text."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from spotbot.domain import RECORDED_STATUSES, AssetRef, Job, JobCounts, TagRecord, Task, TaskStatus, task_id, utc_now
from spotbot.ports import SearchHit, SearchQuery, TaskOutcome

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    asset TEXT NOT NULL,
    etag TEXT NOT NULL,
    shard INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_shard ON tasks (job_id, shard, status);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (job_id, status);
CREATE TABLE IF NOT EXISTS tags (
    job_id TEXT NOT NULL,
    asset TEXT NOT NULL,
    bot TEXT NOT NULL,
    model_version TEXT NOT NULL,
    etag TEXT NOT NULL,
    tags TEXT NOT NULL,
    text TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (job_id, asset)
);
CREATE INDEX IF NOT EXISTS tags_by_version ON tags (bot, model_version, asset);
CREATE TABLE IF NOT EXISTS tag_labels (
    tag_rowid INTEGER NOT NULL,
    label TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tag_labels_by_label ON tag_labels (label, tag_rowid);
CREATE INDEX IF NOT EXISTS tag_labels_by_row ON tag_labels (tag_rowid);
-- trigram tokens, because Chinese text has no spaces between words
CREATE VIRTUAL TABLE IF NOT EXISTS tag_text USING fts5 (body, tokenize = 'trigram');
"""

ALL_STATUSES = tuple(TaskStatus)


class SQLiteTagIndex:
    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        with self._write():
            for statement in _statements(SCHEMA):
                self.db.execute(statement)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(tags)")}
            if "reused_from" not in columns:  # an index made before incremental jobs
                self.db.execute("ALTER TABLE tags ADD COLUMN reused_from TEXT")

    def _write(self) -> _Transaction:
        return _Transaction(self.db)

    def close(self) -> None:
        self.db.close()

    # jobs

    def save_job(self, job: Job) -> None:
        with self._write():
            self.db.execute(
                "INSERT INTO jobs (job_id, created_at, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (job_id) DO UPDATE SET doc = excluded.doc",
                (job.job_id, job.created_at.isoformat(), job.model_dump_json()),
            )

    def get_job(self, job_id: str) -> Job | None:
        row = self.db.execute("SELECT doc FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def list_jobs(self, limit: int = 50) -> list[Job]:
        rows = self.db.execute("SELECT doc FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [Job.model_validate_json(row[0]) for row in rows]

    # tasks

    def shards_with_work(self, job_id: str, statuses: tuple[TaskStatus, ...]) -> list[int]:
        marks = ",".join("?" * len(statuses))
        rows = self.db.execute(
            f"SELECT DISTINCT shard FROM tasks WHERE job_id = ? AND status IN ({marks}) ORDER BY shard",
            (job_id, *statuses),
        )
        return [row[0] for row in rows]

    def tasks_in_shard(self, job_id: str, shard: int, statuses: tuple[TaskStatus, ...] = ALL_STATUSES) -> list[Task]:
        marks = ",".join("?" * len(statuses))
        rows = self.db.execute(
            "SELECT job_id, asset, etag, shard, status, attempts, error, updated_at FROM tasks "
            f"WHERE job_id = ? AND shard = ? AND status IN ({marks}) ORDER BY asset",
            (job_id, shard, *statuses),
        )
        return [_task(row) for row in rows]

    def done_assets(self, job_id: str, assets: Iterable[str]) -> set[str]:
        ids = {task_id(job_id, asset): asset for asset in assets}
        done: set[str] = set()
        id_list = list(ids)
        recorded = tuple(s.value for s in RECORDED_STATUSES)
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            rows = self.db.execute(
                f"SELECT id FROM tasks WHERE status IN ({','.join('?' * len(recorded))}) "
                f"AND id IN ({','.join('?' * len(chunk))})",
                (*recorded, *chunk),
            )
            done.update(ids[row[0]] for row in rows)
        return done

    def record_outcomes(self, records: list[TagRecord], outcomes: list[TaskOutcome], job_id: str) -> None:
        now = utc_now().isoformat()
        with self._write():
            for record in records:
                self._upsert_tag_record(record)
            self.db.executemany(
                "UPDATE tasks SET status = ?, error = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
                [(o.status.value, o.error, now, task_id(job_id, o.asset)) for o in outcomes],
            )

    def _upsert_tag_record(self, record: TagRecord) -> None:
        tags_json = json.dumps([t.model_dump(mode="json") for t in record.tags], ensure_ascii=False)
        (rowid,) = self.db.execute(
            "INSERT INTO tags (job_id, asset, bot, model_version, etag, tags, text, created_at, reused_from) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, asset) DO UPDATE SET "
            "bot = excluded.bot, model_version = excluded.model_version, etag = excluded.etag, "
            "tags = excluded.tags, text = excluded.text, created_at = excluded.created_at, "
            "reused_from = excluded.reused_from RETURNING rowid",
            (
                record.job_id,
                record.asset,
                record.bot,
                record.model_version,
                record.etag,
                tags_json,
                record.text,
                record.created_at.isoformat(),
                record.reused_from,
            ),
        ).fetchone()
        self.db.execute("DELETE FROM tag_text WHERE rowid = ?", (rowid,))
        self.db.execute("DELETE FROM tag_labels WHERE tag_rowid = ?", (rowid,))
        self.db.execute("INSERT INTO tag_text (rowid, body) VALUES (?, ?)", (rowid, record.searchable_text()))
        self.db.executemany(
            "INSERT INTO tag_labels (tag_rowid, label) VALUES (?, ?)",
            [(rowid, label) for label in {t.label for t in record.tags}],
        )

    def counts(self, job_id: str) -> JobCounts:
        rows = self.db.execute("SELECT status, COUNT(*) FROM tasks WHERE job_id = ? GROUP BY status", (job_id,))
        return JobCounts.from_statuses(dict(rows.fetchall()))

    def failed_tasks(self, job_id: str, limit: int = 100) -> list[Task]:
        rows = self.db.execute(
            "SELECT job_id, asset, etag, shard, status, attempts, error, updated_at FROM tasks "
            "WHERE job_id = ? AND status = 'FAILED' ORDER BY asset LIMIT ?",
            (job_id, limit),
        )
        return [_task(row) for row in rows]

    # tags

    def tag_records(self, job_id: str) -> Iterator[TagRecord]:
        rows = self.db.execute(f"SELECT {_TAG_COLUMNS} FROM tags WHERE job_id = ? ORDER BY asset", (job_id,))
        for row in rows:
            yield _tag_record(row)

    def reusable_records(self, bot: str, model_version: str, assets: Iterable[tuple[str, str]]) -> dict[str, TagRecord]:
        """The newest predicted (not reused) record per (asset, etag) with this bot and model version; 500 assets a query."""
        wanted = set(assets)
        found: dict[str, TagRecord] = {}
        asset_list = sorted({asset for asset, _ in wanted})
        for start in range(0, len(asset_list), 500):
            chunk = asset_list[start : start + 500]
            rows = self.db.execute(
                f"SELECT {_TAG_COLUMNS} FROM tags WHERE bot = ? AND model_version = ? AND reused_from IS NULL "
                f"AND asset IN ({','.join('?' * len(chunk))}) ORDER BY tags.created_at",
                (bot, model_version, *chunk),
            )
            for row in rows:
                record = _tag_record(row)
                if (record.asset, record.etag) in wanted:
                    found[record.asset] = record  # ordered by time: the newest wins
        return found

    def search(self, query: SearchQuery) -> list[SearchHit]:
        where: list[str] = []
        params: list[object] = []
        terms = (query.text or "").split()
        long_terms = [t for t in terms if len(t) >= 3]
        if long_terms:  # the trigram index answers terms of three characters or more
            where.append("tags.rowid IN (SELECT rowid FROM tag_text WHERE tag_text MATCH ?)")
            params.append(" AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms))
        for term in terms:
            if len(term) < 3:
                where.append("tags.rowid IN (SELECT rowid FROM tag_text WHERE body LIKE ? ESCAPE '\\')")
                params.append("%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        if query.bot:
            where.append("tags.bot = ?")
            params.append(query.bot)
        if query.job_id:
            where.append("tags.job_id = ?")
            params.append(query.job_id)
        if query.label:
            where.append("tags.rowid IN (SELECT tag_rowid FROM tag_labels WHERE label = ?)")
            params.append(query.label)
        sql = f"SELECT {_TAG_COLUMNS} FROM tags"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY tags.created_at DESC, tags.asset LIMIT ?"
        params.append(query.limit)
        return [SearchHit(record=_tag_record(row), snippet=_snippet(row, terms)) for row in self.db.execute(sql, params)]

    def max_shard(self, job_id: str) -> int | None:
        (last_shard,) = self.db.execute("SELECT MAX(shard) FROM tasks WHERE job_id = ?", (job_id,)).fetchone()
        return last_shard

    def tasks_by_asset(self, job_id: str, assets: Iterable[str]) -> dict[str, Task]:
        ids = {task_id(job_id, asset): asset for asset in assets}
        id_list = list(ids)
        found: dict[str, Task] = {}
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            rows = self.db.execute(
                "SELECT job_id, asset, etag, shard, status, attempts, error, updated_at FROM tasks "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update((row[1], _task(row)) for row in rows)
        return found

    def add_tasks(self, tasks: Iterable[Task]) -> int:
        rows = [(t.id, t.job_id, t.asset, t.etag, t.shard, t.updated_at.isoformat()) for t in tasks]
        with self._write():
            self.db.executemany(
                "INSERT INTO tasks (id, job_id, asset, etag, shard, status, attempts, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'PENDING', 0, ?) "
                "ON CONFLICT (id) DO UPDATE SET etag = excluded.etag, shard = excluded.shard, status = 'PENDING', "
                "attempts = 0, error = NULL, updated_at = excluded.updated_at",
                rows,
            )
        return len(rows)


_TAG_COLUMNS = (
    "tags.job_id, tags.bot, tags.model_version, tags.asset, tags.etag, tags.tags, tags.text, tags.created_at, "
    "tags.reused_from"
)


def _tag_record(row: tuple) -> TagRecord:
    job_id, bot, model_version, asset, etag, tags, text, created_at, reused_from = row
    return TagRecord(
        job_id=job_id,
        bot=bot,
        model_version=model_version,
        asset=asset,
        etag=etag,
        tags=json.loads(tags),
        text=text,
        created_at=created_at,
        reused_from=reused_from,
    )


def _snippet(row: tuple, terms: list[str], width: int = 60) -> str:
    return _tag_record(row).snippet(terms, width)


def _task(row: tuple) -> Task:
    job_id, asset, etag, shard, status, attempts, error, updated_at = row
    return Task(
        job_id=job_id,
        asset=asset,
        etag=etag,
        shard=shard,
        status=TaskStatus(status),
        attempts=attempts,
        error=error,
        updated_at=updated_at,
    )


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so concurrent writers queue, not deadlock."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
