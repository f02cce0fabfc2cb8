"""The local tag index: SQLite in WAL mode, written in batches, with FTS5 over tag text."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from spotbot.domain import (
    RECORDED_STATUSES,
    AssetRef,
    BadInputError,
    Job,
    JobCounts,
    TagRecord,
    Task,
    TaskStatus,
    UnavailableError,
    task_id,
    utc_now,
)
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
    encoding TEXT,
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
-- one token per character (see _characters): a one- or two-character term is a phrase query here
CREATE VIRTUAL TABLE IF NOT EXISTS tag_chars USING fts5 (body, tokenize = 'unicode61 remove_diacritics 0');
"""
# Stands for each character that is not a letter or digit in tag_chars, so no phrase can match across it.
# A private-use character: unicode61 keeps it as a token, and no search term holds one (see _char_phrase).
_BREAK = "\ue000"


def _characters(text: str) -> str:
    """The text as tag_chars indexes it: every letter or digit its own token, every other character a break."""
    return " ".join(c if c.isalnum() else _BREAK for c in text)


def _char_phrase(term: str) -> str | None:
    """The tag_chars phrase that finds `term` as a substring (case-insensitive); None if it holds a non-letter."""
    if not all(c.isalnum() for c in term):
        return None
    return '"' + " ".join(term) + '"'

MAX_SEARCH_TERMS = 32  # each term is one clause: more makes SQLite's expression tree too large
MAX_TERM_CHARS = 200

ALL_STATUSES = tuple(TaskStatus)


class UnusableIndexError(UnavailableError):
    """The index file is damaged, not a database, or in a folder we cannot write (exit 1)."""


class SQLiteTagIndex:
    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UnusableIndexError(
                f"the state folder {self.path.parent} (SPOTBOT_HOME) cannot be used: {error.strerror or error}; "
                "point SPOTBOT_HOME at a folder you can write"
            ) from None
        self.db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            with self._write():
                for statement in _statements(SCHEMA):
                    self.db.execute(statement)
                columns = {row[1] for row in self.db.execute("PRAGMA table_info(tags)")}
                if "encoding" not in columns:  # an index made before text encodings were recorded
                    self.db.execute("ALTER TABLE tags ADD COLUMN encoding TEXT")
                if "reused_from" not in columns:  # an index made before incremental jobs
                    self.db.execute("ALTER TABLE tags ADD COLUMN reused_from TEXT")
                self._fill_characters()
        except sqlite3.DatabaseError as error:
            self.db.close()
            raise UnusableIndexError(
                f"the local index {self.path} cannot be used ({error}); run `spotbot doctor` to see what to do"
            ) from None

    def _fill_characters(self) -> None:
        """An index made before tag_chars: its text is copied in once, from tag_text."""
        if self.db.execute("SELECT 1 FROM tag_chars LIMIT 1").fetchone() is not None:
            return
        rows = self.db.execute("SELECT rowid, body FROM tag_text")
        self.db.executemany("INSERT INTO tag_chars (rowid, body) VALUES (?, ?)", ((r, _characters(b or "")) for r, b in rows))

    def check(self) -> list[str]:
        """What is wrong with the index file, from SQLite's own integrity check; [] when it is sound."""
        rows = [row[0] for row in self.db.execute("PRAGMA quick_check").fetchall()]
        return [] if rows == ["ok"] else rows

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
            "INSERT INTO tags (job_id, asset, bot, model_version, etag, tags, text, created_at, encoding, reused_from) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, asset) DO UPDATE SET "
            "bot = excluded.bot, model_version = excluded.model_version, etag = excluded.etag, "
            "tags = excluded.tags, text = excluded.text, created_at = excluded.created_at, "
            "encoding = excluded.encoding, reused_from = excluded.reused_from RETURNING rowid",
            (
                record.job_id,
                record.asset,
                record.bot,
                record.model_version,
                record.etag,
                tags_json,
                record.text,
                record.created_at.isoformat(),
                record.encoding,
                record.reused_from,
            ),
        ).fetchone()
        self.db.execute("DELETE FROM tag_text WHERE rowid = ?", (rowid,))
        self.db.execute("DELETE FROM tag_chars WHERE rowid = ?", (rowid,))
        self.db.execute("DELETE FROM tag_labels WHERE tag_rowid = ?", (rowid,))
        text = record.searchable_text()
        self.db.execute("INSERT INTO tag_text (rowid, body) VALUES (?, ?)", (rowid, text))
        self.db.execute("INSERT INTO tag_chars (rowid, body) VALUES (?, ?)", (rowid, _characters(text)))
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

    def forget_records(self, job_ids: Sequence[str], assets: Sequence[str]) -> int:
        """Deletes these assets' tag records (and their search text and labels) from these jobs; tasks stay."""
        forgotten = 0
        with self._write():
            for job_id in job_ids:
                for start in range(0, len(assets), 500):
                    chunk = list(assets[start : start + 500])
                    rowids = [row[0] for row in self.db.execute(
                        f"SELECT rowid FROM tags WHERE job_id = ? AND asset IN ({','.join('?' * len(chunk))})", (job_id, *chunk)
                    )]  # fmt: skip
                    for table, column in (("tag_text", "rowid"), ("tag_chars", "rowid"), ("tag_labels", "tag_rowid")):
                        self.db.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(r,) for r in rowids])
                    self.db.executemany("DELETE FROM tags WHERE rowid = ?", [(r,) for r in rowids])
                    forgotten += len(rowids)
        return forgotten

    def search(self, query: SearchQuery) -> list[SearchHit]:
        where: list[str] = []
        params: list[object] = []
        terms = list(dict.fromkeys((query.text or "").split()))
        if len(terms) > MAX_SEARCH_TERMS:
            raise BadInputError(f"a search takes at most {MAX_SEARCH_TERMS} terms, got {len(terms)}")
        if any(len(t) > MAX_TERM_CHARS for t in terms):
            raise BadInputError(f"a search term is at most {MAX_TERM_CHARS} characters")
        long_terms = [t for t in terms if len(t) >= 3]
        short_terms = [t for t in terms if len(t) < 3]
        text_where: list[str] = []
        text_params: list[object] = []
        if long_terms:  # the trigram index answers terms of three characters or more
            text_where.append("tag_text MATCH ?")
            text_params.append(" AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms))
        for term in (t for t in short_terms if _char_phrase(t) is None):  # "c+", "?": LIKE, over the other hits
            text_where.append("body LIKE ? ESCAPE '\\'")
            text_params.append("%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        if text_where:
            where.append(f"tags.rowid IN (SELECT rowid FROM tag_text WHERE {' AND '.join(text_where)})")
            params.extend(text_params)
        phrases = [p for p in map(_char_phrase, short_terms) if p is not None]
        if phrases:  # shorter ones of letters and digits: phrases in the per-character index
            where.append("tags.rowid IN (SELECT rowid FROM tag_chars WHERE tag_chars MATCH ?)")
            params.append(" AND ".join(phrases))
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
    "tags.encoding, tags.reused_from"
)


def _tag_record(row: tuple) -> TagRecord:
    job_id, bot, model_version, asset, etag, tags, text, created_at, encoding, reused_from = row
    return TagRecord(
        job_id=job_id,
        bot=bot,
        model_version=model_version,
        asset=asset,
        etag=etag,
        tags=json.loads(tags),
        text=text,
        created_at=created_at,
        encoding=encoding,
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
