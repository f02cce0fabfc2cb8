"""Scan an S3 source (the cloud "Scan assets" step): list it in parallel and plan a task per asset in the index.

The S3 side of what `spotbot.services.planning` does for a local folder: the planning rule itself is
the domain's (spotbot.domain.planning); this module is the listing, the time budget and the continuation.

One call of `scan_assets` is one run of the state machine's "Scan assets" step. It stops on a time
budget and hands back a continuation; the state machine loops until `done`.

Parallel listing. One ListObjectsV2 continuation chain is sequential (1,000 keys per request), so
the listing is split into key ranges (`KeyRange`: keys under a prefix, after an exclusive lower
bound, up to an inclusive upper bound), each listed one request at a time by a bounded thread pool.
The ranges always partition the source's key space, so every key is listed exactly once, whatever
the split points; the split points only decide how fast. A range is listed either whole ("flat":
every key of the subtree, no delimiter) or by folder (`Delimiter='/'`: the folder's own keys, and
each sub-folder becomes a range of its own). After one page of a range comes back truncated at key L:

- a new sub-folder is first listed flat: a subtree of up to 1,000 keys costs one request however
  deep it is;
- deep trees: when the page's keys sit in a few big sub-folders, the range descends: the rest of
  L's sub-folder is one flat range, and the folders after it are found with one delimited request
  and listed in parallel;
- flat folders (or many tiny sub-folders): the rest of the range (L, upper] is cut at split points
  made from the characters seen in the page's keys -- `L[:j] + c` for each character c above L[j],
  at the positions j from the start of the range up to where the page's keys start to differ --
  e.g. after a page `00000.jpg`..`00999.jpg`: `01`, `02`, ..., `09`, `1`, `2`, ..., `9`, so each
  part spans about a page's worth of key space or more. A part that comes back truncated is cut
  again the same way (or, when the rest looks smaller than a page, listed on as one range), so a
  folder of N keys takes about log(N) rounds of parallel requests instead of N/1,000 in a row.
  Split points never contain a '/' past the folder, so they never cut a sub-folder in two.

Shards. Found assets are planned by the one planning rule (spotbot.domain.planning, which the local
path uses too): new assets are dealt into shards numbered densely after the job's highest shard, an
asset whose etag changed is PENDING again in its old shard. The worker reads its shard's tasks from
the index; nothing else is written. Shard size: the request's `shard_size`, default 500 (small
enough that a Spot reclaim loses little work, big enough that loading the bot is paid rarely). The
total is unknown until the listing ends, so the 10,000-child limit of a Batch array job is kept by
growth (domain.planning.shard_capacity) instead of a cap computed up front. Each call writes its
last, partial shard too, so a job has at most one partial shard per call.

Idempotence. Existing tasks are looked up by id (a multi-get of only the assets this call found; the
cost of a call does not grow with the job). An asset whose task was written by this scan already can
only come from a failed attempt of this same call, so it is planned again. Re-running a scan
therefore never duplicates a task.

Continuation. `{"v", "job_id", "call", "base_shard", "next_shard", "assets", "shard_size",
"file_types", "work"}` where `work` is the list of ranges not yet listed; when that list is over
INLINE_WORK_BYTES it is stored at `s3://<work_bucket>/jobs/<job_id>/scan-state/<call>.json` and the
token holds `work_at` instead (one object per call, so a retried call still finds its own input).
"""

from __future__ import annotations

import json
import logging
import time

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spotbot.adapters.s3.assets import parse_s3_uri
from spotbot.adapters.s3.inventory import InventoryAssetStore, InventoryError, is_inventory_source  # noqa: F401
from spotbot.adapters.s3.listing import (  # noqa: F401  (the step's errors, retried or not by name)
    KeyRange,
    ParallelLister,
    ScanError,
    SourceAccessDeniedError,
    SourceNotFoundError,
)
from spotbot.domain.catalogue import BUILTIN_CATALOGUE
from spotbot.domain import AssetRef, BadInputError, JobStatus, Task, TooManyShardsError, plan_tasks, validate_job_id
from spotbot.ports import JobRecords
from spotbot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 500
LAMBDA_SAFETY_MARGIN_S = 30.0  # time kept back from the Lambda's limit for the requests in flight and the last shard
INLINE_WORK_BYTES = 32 * 1024  # a bigger work list goes to the work bucket (Step Functions state: 256 KB)
CLASSIFY_BATCH = 5_000  # found assets looked up in the index at once
TOKEN_VERSION = 1

# The built-in bots' file types from the catalogue, so the scanner Lambda need not import the bots
BUILTIN_FILE_TYPES: dict[str, tuple[str, ...]] = {name: bot.file_types for name, bot in BUILTIN_CATALOGUE.items()}


# errors: the state machine retries by name (a Lambda error's errorType is the class name), never a bad request


class ScanRequestError(ScanError, BadInputError):
    """The step's input is not valid: a bad source URI, an unknown bot, a foreign continuation."""


# the request


class ScanRequest(BaseModel):
    """The step's input (the state machine may pass more fields; they are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: str
    bot: str
    source: str
    shard_size: int | None = Field(default=None, ge=1)
    workers: int | None = None
    file_types: tuple[str, ...] | None = None  # the bot's, when the state machine has them (bot_config.file_types)

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, value: str) -> str:
        return validate_job_id(value)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        bucket, _ = parse_s3_uri(value)
        return value


class BotRegistry(Protocol):
    def get_bot(self, name: str) -> dict[str, Any] | None: ...


def file_types_for(bot: str, registry: BotRegistry | None = None) -> tuple[str, ...]:
    """The lower-case extensions a bot reads: built-in table, then the bot registry, then a module:Class import."""
    if bot in BUILTIN_FILE_TYPES:
        return BUILTIN_FILE_TYPES[bot]
    if ":" in bot:
        from spotbot.services.bots import UnknownBotError, resolve_bot  # imports the bot's module: only for module:Class bots

        try:
            return tuple(t.lower() for t in resolve_bot(bot).file_types)
        except UnknownBotError as error:
            raise ScanRequestError(str(error)) from error
    doc = registry.get_bot(bot) if registry is not None else None
    if doc and doc.get("file_types"):
        return tuple(str(t).lower() for t in doc["file_types"])
    raise ScanRequestError(
        f"unknown bot {bot!r}: built-in bots are {', '.join(sorted(BUILTIN_FILE_TYPES))}; register yours with POST /bots"
    )


# the step


class ScanIndex(JobRecords, Protocol):
    """What the scanner needs from the tag index (OpenSearchTagIndex; SQLiteTagIndex has the same)."""

    def max_shard(self, job_id: str) -> int | None: ...
    def tasks_by_asset(self, job_id: str, assets: Iterable[str]) -> dict[str, Task]: ...
    def add_tasks(self, tasks: Iterable[Task]) -> int: ...


@dataclass(frozen=True)
class ScanResult:
    job_id: str
    done: bool
    continuation: dict[str, Any] | None
    assets: int  # every matching asset found so far by this scan, new or already known
    shards: int  # the job's shard count: the size of the Batch array job
    new_tasks: int = 0  # tasks written by this call (new or changed assets)

    def as_output(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "done": self.done,
            "continuation": self.continuation,
            "assets": self.assets,
            "shards": self.shards,
        }


class _TaskWriter:
    """Plans found assets against the index in batches (spotbot.domain.planning) and writes their tasks."""

    def __init__(self, index: ScanIndex, job_id: str, base_shard: int, next_shard: int, shard_size: int) -> None:
        self.index = index
        self.job_id = job_id
        self.base_shard = base_shard
        self.next_shard = next_shard
        self.shard_size = shard_size
        self.found: dict[str, AssetRef] = {}
        self.carry: list[AssetRef] = []
        self.seen = 0
        self.tasks_written = 0

    def add(self, assets: list[AssetRef]) -> None:
        for asset in assets:
            self.found[asset.uri] = asset
        if len(self.found) >= CLASSIFY_BATCH:
            self._plan(final=False)

    def finish(self) -> None:
        self._plan(final=True)

    def _plan(self, final: bool) -> None:
        found, self.found = self.found, {}
        self.seen += len(found)
        known = self.index.tasks_by_asset(self.job_id, list(found)) if found else {}
        plan = plan_tasks(
            self.job_id,
            [*self.carry, *found.values()],
            known,
            next_shard=self.next_shard,
            shard_size=self.shard_size,
            final=final,
            replan_from_shard=self.base_shard,  # tasks from a failed attempt of this call are planned again
        )
        self.carry, self.next_shard = plan.carry, plan.next_shard
        if plan.tasks:
            self.tasks_written += self.index.add_tasks(plan.tasks)


def scan_assets(
    request: ScanRequest,
    settings: Settings,
    *,
    s3: Any,
    index: ScanIndex,
    continuation: dict[str, Any] | None = None,
    remaining_time_ms: Callable[[], int] | None = None,
    bot_registry: BotRegistry | None = None,
    safety_margin_s: float = LAMBDA_SAFETY_MARGIN_S,
    inline_work_bytes: int = INLINE_WORK_BYTES,
    list_client: Any | None = None,
) -> ScanResult:
    """One call of the "Scan assets" step: lists on until done or out of time, and returns where it got to.

    list_client: what answers ListObjectsV2 (the lean client, spotbot.adapters.s3.lean_listing); default s3.
    """
    started = time.monotonic()
    budget = settings.scan_time_budget_seconds
    if remaining_time_ms is not None:
        budget = min(budget, remaining_time_ms() / 1000 - safety_margin_s)
    deadline = started + max(0.0, budget)
    if not settings.work_bucket:
        raise ScanError("SPOTBOT_WORK_BUCKET is not set: the scanner writes shard manifests there")
    work_bucket = settings.work_bucket
    bucket, prefix = parse_s3_uri(request.source)

    if continuation is None:
        _start_job(index, request.job_id)
        file_types = request.file_types or file_types_for(request.bot, bot_registry)
        last_shard = index.max_shard(request.job_id)
        base_shard = 0 if last_shard is None else last_shard + 1
        state = {
            "v": TOKEN_VERSION,
            "job_id": request.job_id,
            "call": 0,
            "base_shard": base_shard,
            "next_shard": base_shard,
            "assets": 0,
            "shard_size": request.shard_size or DEFAULT_SHARD_SIZE,
            "file_types": [t.lower() for t in file_types],
        }
        work = [KeyRange(prefix)]
        state["bulk_load"] = _begin_bulk_load(index)
    else:
        state = _check_token(continuation, request.job_id)
        work = _load_work(s3, continuation)

    lister = ParallelLister(list_client or s3, bucket, tuple(state["file_types"]), settings.scan_parallelism)
    writer = _TaskWriter(index, request.job_id, state["base_shard"], state["next_shard"], state["shard_size"])
    if is_inventory_source(request.source):  # an S3 Inventory report: its data files, not a listing
        state["inventory_next"] = _read_inventory(request.source, s3, state, writer, deadline)
        left = []
    else:
        left = lister.run(work, writer.add, deadline)
    writer.finish()
    state = {**state, "call": state["call"] + 1, "next_shard": writer.next_shard, "assets": state["assets"] + writer.seen}
    done = not left and state.get("inventory_next") is None
    token = None if done else _save_work(s3, work_bucket, state, left, inline_work_bytes)
    if done:
        _delete_work_state(s3, work_bucket, request.job_id)
        _end_bulk_load(index, state.get("bulk_load"))
    log.info(
        "scan call finished",
        extra={
            "job_id": request.job_id,
            "call": state["call"],
            "done": done,
            "requests": lister.requests,
            "keys_listed": lister.keys_listed,
            "assets_found": writer.seen,
            "tasks_written": writer.tasks_written,
            "ranges_left": len(left),
            "shards": writer.next_shard,
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return ScanResult(
        job_id=request.job_id,
        done=done,
        continuation=token,
        assets=state["assets"],
        shards=writer.next_shard,
        new_tasks=writer.tasks_written,
    )


def _read_inventory(source: str, s3: Any, state: dict[str, Any], writer: _TaskWriter, deadline: float) -> int | None:
    """Plans the report's data files from state["inventory_next"] on, one whole file at least, until the
    deadline; returns the next file to read, or None when every file is read."""
    store = InventoryAssetStore(source, client=s3)
    manifest = store.manifest()
    files = manifest["files"]
    next_file = state.get("inventory_next") or 0
    first = next_file
    while next_file < len(files) and (next_file == first or time.monotonic() < deadline):
        batch: list[AssetRef] = []
        for asset in store.scan_file(manifest, files[next_file], tuple(state["file_types"])):
            batch.append(asset)
            if len(batch) >= CLASSIFY_BATCH:
                writer.add(batch)
                batch = []
        writer.add(batch)
        next_file += 1
    return next_file if next_file < len(files) else None


def _begin_bulk_load(index: ScanIndex) -> dict[str, Any] | None:
    """Task documents load fastest with refresh off and no replicas; an index without the switch loads as it is."""
    begin = getattr(index, "begin_bulk_load", None)
    return begin() if begin else None


def _end_bulk_load(index: ScanIndex, saved: dict[str, Any] | None) -> None:
    if saved is not None and hasattr(index, "end_bulk_load"):
        index.end_bulk_load(saved)


def _start_job(index: ScanIndex, job_id: str) -> None:
    """The job is RUNNING from its first scan call (a resume started it already)."""
    job = index.get_job(job_id)
    if job is None:
        log.warning("scanning for a job not in the index")
    elif job.status == JobStatus.SUBMITTED:
        index.save_job(job.start(index.counts(job_id)))


def _check_token(token: dict[str, Any], job_id: str) -> dict[str, Any]:
    if not isinstance(token, dict) or token.get("v") != TOKEN_VERSION:
        raise ScanRequestError("continuation is not a scanner token of this version: pass the one the last call returned")
    if token.get("job_id") != job_id:
        raise ScanRequestError(f"continuation belongs to job {token.get('job_id')!r}, not {job_id!r}")
    return {k: v for k, v in token.items() if k not in ("work", "work_at")}


def _load_work(s3: Any, token: dict[str, Any]) -> list[KeyRange]:
    if "work_at" in token:
        bucket, key = parse_s3_uri(token["work_at"])
        items = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    else:
        items = token.get("work", [])
    return [KeyRange.from_json(item) for item in items]


def _work_state_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/scan-state/"


def _save_work(s3: Any, work_bucket: str, state: dict[str, Any], left: list[KeyRange], inline_bytes: int) -> dict[str, Any]:
    items = [r.to_json() for r in left]
    body = json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode()
    if len(body) <= inline_bytes:
        return {**state, "work": items}
    key = f"{_work_state_prefix(state['job_id'])}{state['call']:05d}.json"
    s3.put_object(Bucket=work_bucket, Key=key, Body=body, ContentType="application/json")
    return {**state, "work_at": f"s3://{work_bucket}/{key}"}


def _delete_work_state(s3: Any, work_bucket: str, job_id: str) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=work_bucket, Prefix=_work_state_prefix(job_id)):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=work_bucket, Delete={"Objects": keys, "Quiet": True})
