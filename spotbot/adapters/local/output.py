"""JSON Lines output in a local folder: OUT/<job_id>/part-<shard>.jsonl and OUT/<job_id>/_job.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from spotbot.domain import Job


class LocalPartFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def read_records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        with open(self.path, encoding="utf-8") as file:
            for line in file:
                if not line.endswith("\n"):
                    break  # torn by a crash mid-write: that asset is not DONE, so it is tagged again
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".jsonl.tmp")
        try:
            with open(partial, "w", encoding="utf-8") as file:
                file.writelines(encode_line(record) for record in records)
            os.replace(partial, self.path)
        except OSError:
            partial.unlink(missing_ok=True)
            raise

    def append(self, records: list[dict[str, Any]]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write("".join(encode_line(record) for record in records))
        self._file.flush()  # in the page cache before the index says DONE, so a kill -9 loses nothing

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def encode_line(record: dict[str, Any]) -> str:
    """One JSON Lines record, as every output store writes it."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


class LocalOutputStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.location = str(self.root)

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def part(self, job_id: str, shard: int) -> LocalPartFile:
        return LocalPartFile(self.job_dir(job_id) / f"part-{shard:05d}.jsonl")

    def write_summary(self, job: Job) -> str:
        path = self.job_dir(job.job_id) / "_job.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.tmp")
        try:
            partial.write_text(job.model_dump_json(indent=2), encoding="utf-8")
            os.replace(partial, path)
        except OSError:
            partial.unlink(missing_ok=True)  # a full disk leaves no half summary behind
            raise
        return str(path)
