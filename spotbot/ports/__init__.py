"""The ports: what the service layer needs from the outside world. Each has a local and a cloud adapter."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from spotbot.domain import AssetRef, Job, JobCounts, Tag, TagRecord, Task, TaskStatus


class AssetStore(Protocol):
    """Where assets live: a local folder or an S3 prefix."""

    source: str

    def scan(self, file_types: tuple[str, ...]) -> Iterator[AssetRef]:
        """Every asset under the source whose extension is in file_types, recursively."""

    def read(self, asset: AssetRef, max_bytes: int) -> bytes:
        """The asset's bytes. Raises AssetError when it cannot be read or is over max_bytes."""


@dataclass(frozen=True)
class LocalFile:
    """An asset as a file on this machine: the asset itself, or a temporary copy the reader deletes."""

    path: Path
    temporary: bool


@runtime_checkable
class FileAssetStore(AssetStore, Protocol):
    """A store that hands an asset over as a file, so a long video is decoded from disk, never held in memory."""

    def open_file(self, asset: AssetRef, max_bytes: int, spool_dir: Path) -> LocalFile:
        """The asset as a file. Raises AssetError when it cannot be read or is over max_bytes."""


@dataclass(frozen=True)
class TaskOutcome:
    asset: str
    status: TaskStatus
    error: str | None = None


@dataclass(frozen=True)
class SearchHit:
    record: TagRecord
    snippet: str = ""
    position: list[Any] | None = None  # a paged index's cursor that resumes just after this hit


@dataclass(frozen=True)
class SearchQuery:
    text: str | None = None
    bot: str | None = None
    label: str | None = None
    job_id: str | None = None
    limit: int = 20


class ReuseIndex(Protocol):
    """Tag records any earlier job made, found by what makes them reusable (spotbot.domain.reuse)."""

    def reusable_records(self, bot: str, model_version: str, assets: Iterable[tuple[str, str]]) -> dict[str, TagRecord]:
        """For (asset, etag) pairs: a record some job made for that asset version with this bot and model, by asset. In bulk."""


@runtime_checkable
class ForgettingIndex(Protocol):
    """An index that can drop tag records of assets gone from their source (the local one: `--forget-deleted`)."""

    def forget_records(self, job_ids: Sequence[str], assets: Sequence[str]) -> int:
        """Deletes these assets' tag records from these jobs (tasks stay, as history); returns how many went."""


class JobRecords(Protocol):
    """Jobs by id, and the counts of their tasks: what each step that moves a job along reads and writes."""

    def get_job(self, job_id: str) -> Job | None: ...
    def save_job(self, job: Job) -> None: ...
    def counts(self, job_id: str) -> JobCounts: ...


class TagIndex(JobRecords, ReuseIndex, Protocol):
    """Jobs, tasks and tag records, searchable: SQLite locally, OpenSearch in AWS."""

    def list_jobs(self, limit: int = 50) -> list[Job]: ...
    def tasks_by_asset(self, job_id: str, assets: Iterable[str]) -> dict[str, Task]:
        """The job's existing tasks for these assets, by asset uri."""
    def max_shard(self, job_id: str) -> int | None:
        """The highest shard number among the job's tasks; None when it has none."""
    def add_tasks(self, tasks: Iterable[Task]) -> int:
        """Writes each task PENDING, replacing the asset's task if any (spotbot.domain.planning plans them)."""
    def shards_with_work(self, job_id: str, statuses: tuple[TaskStatus, ...]) -> list[int]: ...
    def tasks_in_shard(self, job_id: str, shard: int, statuses: tuple[TaskStatus, ...]) -> list[Task]: ...
    def done_assets(self, job_id: str, assets: Iterable[str]) -> set[str]:
        """The assets whose task holds its record: DONE, or SKIPPED (reused from an earlier job)."""
    def record_outcomes(self, records: list[TagRecord], outcomes: list[TaskOutcome], job_id: str) -> None:
        """Writes tag records and marks their tasks, all or nothing."""
    def failed_tasks(self, job_id: str, limit: int = 100) -> list[Task]: ...
    def tag_records(self, job_id: str) -> Iterator[TagRecord]: ...
    def search(self, query: SearchQuery) -> list[SearchHit]: ...
    def close(self) -> None: ...


class RuntimeUnavailableError(RuntimeError):
    """The runtime as a whole cannot answer (endpoint down, throttled past retries): stop the shard, don't fail assets."""


class BotRuntime(Protocol):
    """Where the model runs: in this process, or behind a SageMaker endpoint."""

    bot_name: str
    model_version: str
    input_kind: str
    batch_size: int

    def predict(self, batch: list[Any]) -> list[list[Tag]]: ...


class PartFile(Protocol):
    """One shard's JSON Lines output."""

    def read_records(self) -> list[dict[str, Any]]:
        """The complete records already written; a torn last line is dropped."""
    def rewrite(self, records: list[dict[str, Any]]) -> None: ...
    def append(self, records: list[dict[str, Any]]) -> None: ...
    def close(self) -> None: ...


class OutputStore(Protocol):
    """Where JSON Lines parts and the job summary go: a local folder or an S3 prefix."""

    location: str

    def part(self, job_id: str, shard: int) -> PartFile: ...
    def write_summary(self, job: Job) -> str: ...


@dataclass(frozen=True)
class ShardWork:
    """One unit of work for a worker: a shard of a job, and all it needs to tag it."""

    job_id: str
    shard: int
    bot: str
    source: str
    output: str
    retry_failed: bool = True
    batch_size: int | None = None
    threads: int | None = None
    model_dir: str | None = None  # the extracted model version; None: the bot's packaged default
    suspects: tuple[str, ...] = ()  # assets in flight when a worker died: tagged one at a time, first
    skip: tuple[str, ...] = ()  # assets this run has failed already (one killed its worker): not tried again
    incremental: bool = True  # reuse earlier jobs' records of unchanged assets instead of predicting

    @classmethod
    def of(cls, job: Job, shard: int, **options: Any) -> ShardWork:
        """Shard `shard` of `job`: the job's id, bot, source and output, with these options (retry_failed, ...)."""
        return cls(job_id=job.job_id, shard=shard, bot=job.bot, source=job.source, output=job.output, **options)


class AssetJournal(Protocol):
    """Where a worker notes the assets in flight, so the one that killed it can be found afterwards."""

    def started(self, asset: str) -> None: ...
    def ended(self, asset: str) -> None: ...


@dataclass(frozen=True)
class ShardResult:
    shard: int
    done: int
    failed: int
    model_version: str | None = None
    stopped: bool = False  # cut short by should_stop: running the shard again tags the rest
    reused: int = 0  # assets whose record an earlier job made (SKIPPED), not predicted again


class JobRunner(Protocol):
    """Runs the shards of a job: a local process pool, or AWS Batch array jobs."""

    def run(self, work: list[ShardWork], on_tick: Callable[[], None]) -> RunOutcome: ...


@dataclass(frozen=True)
class RunOutcome:
    results: list[ShardResult]
    errors: list[str]


from spotbot.ports.control_planes import (  # noqa: E402  (the control planes live in their own module)
    ComputeJob,
    ComputeQueue,
    EndpointDefinition,
    EndpointHost,
    Execution,
    WorkflowEngine,
)
from spotbot.ports.reviews import ReviewStore  # noqa: E402,F401  (issue 16: review decisions)
