"""Scan assets (the cloud path): list an S3 source in parallel and index a task per asset.

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
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spotbot.adapters.s3.assets import parse_s3_uri
from spotbot.domain.catalogue import BUILTIN_CATALOGUE
from spotbot.domain import AssetRef, Task, TooManyShardsError, plan_tasks, validate_job_id
from spotbot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 500
LAMBDA_SAFETY_MARGIN_S = 30.0  # time kept back from the Lambda's limit for the requests in flight and the last shard
INLINE_WORK_BYTES = 32 * 1024  # a bigger work list goes to the work bucket (Step Functions state: 256 KB)
CLASSIFY_BATCH = 5_000  # found assets looked up in the index at once
PROBE_KEYS = 100  # page size for the rest of a range that looks done
TOKEN_VERSION = 1

# The built-in bots' file types from the catalogue, so the scanner Lambda need not import the bots
BUILTIN_FILE_TYPES: dict[str, tuple[str, ...]] = {name: bot.file_types for name, bot in BUILTIN_CATALOGUE.items()}


# errors: the state machine catches them by name (a Lambda error's errorType is the class name)


class ScanError(RuntimeError):
    """The scan cannot go on; the message says why and what to do."""


class ScanRequestError(ScanError, ValueError):
    """The step's input is not valid: a bad source URI, an unknown bot, a foreign continuation."""


class SourceNotFoundError(ScanError):
    """The source bucket does not exist."""


class SourceAccessDeniedError(ScanError):
    """The scanner may not list the source."""


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

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> ScanRequest:
        try:
            return cls.model_validate(event)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors())
            raise ScanRequestError(f"scan input is not valid: {problems}") from None


class BotRegistry(Protocol):
    def get_bot(self, name: str) -> dict[str, Any] | None: ...


def file_types_for(bot: str, registry: BotRegistry | None = None) -> tuple[str, ...]:
    """The lower-case extensions a bot reads: built-in table, then the bot registry, then a module:Class import."""
    if bot in BUILTIN_FILE_TYPES:
        return BUILTIN_FILE_TYPES[bot]
    if ":" in bot:
        from spotbot.bot import UnknownBotError, resolve_bot  # imports the bot's module: only for module:Class bots

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


# shards


def listing_s3_client(endpoint_url: str | None = None, max_pool_connections: int = 24) -> Any:
    """An S3 client for the scanner: its responses keep timestamps as text.

    botocore parses every LastModified with dateutil, over half the CPU of reading a 1,000-key
    page; the scanner never looks at it, and a Lambda's CPU is what bounds parallel listing.
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=lambda value: value)
    return boto3.session.Session(botocore_session=session).client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(retries={"mode": "adaptive", "max_attempts": 8}, max_pool_connections=max_pool_connections),
    )



@dataclass(frozen=True)
class KeyRange:
    """Keys under `prefix` with after < key <= through (through None: no upper bound), listed whole or by folder.

    A `probe` range is the rest of a range that looks nearly done: it asks for PROBE_KEYS keys, not a
    full page, since S3 cannot stop at `through` and would send a page of keys past it.
    """

    prefix: str
    after: str = ""
    through: str | None = None
    by_folder: bool = False
    probe: bool = False

    def to_json(self) -> list[Any]:
        return [self.prefix, self.after, self.through, int(self.by_folder), int(self.probe)]

    @classmethod
    def from_json(cls, item: list[Any]) -> KeyRange:
        prefix, after, through, by_folder, probe = item
        return cls(prefix, after, through, bool(by_folder), bool(probe))

    def holds(self, name: str) -> bool:
        return name > self.after and (self.through is None or name <= self.through)


def split_points(prefix: str, last: str, through: str | None, names: list[str], max_points: int) -> list[str]:
    """Strings between `last` and `through` that cut the rest of a range into parts, from the page's key alphabet.

    Each is `last[:j] + c` with c above last[j], at the positions j from where the range starts up
    to where the page's names start to differ (that one only when the page took just a few steps
    there): each part then spans about as much key space as the page did or more, so it is worth a
    request of its own. None when the rest looks smaller (listed on as one range). No point has a
    '/' past `prefix`.
    """
    start = len(prefix)
    if through is not None:
        start = max(start, len(_common_prefix(last, through)))
    slash = last.find("/", len(prefix))
    limit = slash if slash >= 0 else len(last)
    vary = min(max(len(_common_prefix(names[0], last)) if names else limit, start), limit)
    positions = list(range(start, vary))
    if vary == start or len({name[vary] for name in names if len(name) > vary}) <= 2:
        positions.append(vary)  # the page moved a step or two there: a step is worth a part of its own
    # the characters where the page's names vary (digits of a counter, say); else every character seen
    narrow = {name[j] for name in [*names, last] for j in range(start, min(len(name), vary + 1))} - {"/"}
    if any(c.isdigit() for c in narrow):  # a counter: its digits not seen yet come later
        narrow |= set("0123456789")
    broad = {c for name in [*names, last] for c in name[len(prefix) :]} - {"/"}
    points: set[str] = set()
    for alphabet in (sorted(narrow), sorted(broad - narrow)):
        for j in positions:
            head, here = last[:j], last[j] if j < len(last) else ""
            for c in alphabet:
                point = head + c
                if c > here and (through is None or point < through):
                    points.add(point)
        if points:
            break
    ordered = sorted(points)
    if len(ordered) > max_points:  # keep an even spread
        step = len(ordered) / max_points
        ordered = [ordered[int(i * step)] for i in range(max_points)]
    return ordered


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def _split(r: KeyRange, last: str, points: list[str], by_folder: bool) -> list[KeyRange]:
    """r's rest after `last`, cut at points; the first part, the rest of last's own step, is probed."""
    bounds = [last, *points]
    parts = [KeyRange(r.prefix, lo, hi, by_folder, probe=i == 0) for i, (lo, hi) in enumerate(zip(bounds, points))]
    parts.append(KeyRange(r.prefix, bounds[-1], r.through, by_folder))
    return parts


class ParallelLister:
    """Lists key ranges of one bucket with up to `parallelism` requests at a time, until done or a deadline.

    Each range costs one request; what is left of it comes back as new ranges, listed in turn. At
    least one request runs per `run`, so every call makes progress however small its budget.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        file_types: tuple[str, ...],
        parallelism: int,
        *,
        max_points: int | None = None,
        page_size: int = 1000,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.file_types = tuple(t.lower() for t in file_types)
        self.parallelism = max(1, parallelism)
        self.max_points = max_points or min(64, max(8, 3 * self.parallelism))
        self.page_size = page_size
        self.requests = 0
        self.keys_listed = 0
        self._lock = threading.Lock()

    def run(
        self, work: list[KeyRange], on_assets: Callable[[list[AssetRef]], None], deadline: float
    ) -> list[KeyRange]:
        """Lists until the work is done or the deadline passes; calls on_assets (in this thread) as pages
        come in; returns the ranges not listed yet."""
        results: queue.Queue = queue.Queue(maxsize=64)  # back-pressure: listing waits while assets are written
        left: list[KeyRange] = []
        lock = threading.Lock()
        outstanding = 1  # this thread's hold, until the first ranges are all submitted
        started = 0  # requests of this run
        failure: list[BaseException] = []
        stop = threading.Event()
        done_marker = object()

        def submit(r: KeyRange) -> None:
            nonlocal outstanding
            with lock:
                outstanding += 1
            pool.submit(task, r)

        def task(r: KeyRange) -> None:
            nonlocal started
            try:
                with self._lock:
                    late = stop.is_set() or (started > 0 and time.monotonic() >= deadline)
                    if not late:
                        started += 1
                        self.requests += 1
                if late:
                    with lock:
                        left.append(r)
                    return
                assets, more = self._list(r)
                if assets:
                    results.put(assets)
                for child in more:
                    submit(child)
            except BaseException as error:  # handed to the caller's thread
                with lock:
                    failure.append(error)
                    left.append(r)
                stop.set()
            finally:
                release()

        def release() -> None:
            nonlocal outstanding
            with lock:
                outstanding -= 1
                finished = outstanding == 0
            if finished:
                results.put(done_marker)

        pool = ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="scan")
        try:
            for r in work:
                submit(r)
            release()
            while True:
                item = results.get()
                if item is done_marker:
                    break
                if not stop.is_set():
                    try:
                        on_assets(item)
                    except BaseException:
                        stop.set()
                        _drain(results, done_marker)
                        raise
        finally:
            pool.shutdown(wait=True)
        if failure:
            raise failure[0]
        return sorted(left, key=lambda r: (r.prefix, r.after))

    def _list(self, r: KeyRange) -> tuple[list[AssetRef], list[KeyRange]]:
        page_size = min(PROBE_KEYS, self.page_size) if r.probe else self.page_size
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": r.prefix, "MaxKeys": page_size}
        if r.after:
            params["StartAfter"] = r.after
        if r.by_folder:
            params["Delimiter"] = "/"
        try:
            page = self.s3.list_objects_v2(**params)
        except ClientError as error:
            raise source_error(self.bucket, r.prefix, error) from error
        contents = page.get("Contents", [])
        folders = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        with self._lock:
            self.keys_listed += len(contents)
        assets = [
            AssetRef(uri=f"s3://{self.bucket}/{item['Key']}", etag=item["ETag"].strip('"'), size=item["Size"])
            for item in contents
            if r.holds(item["Key"]) and self._wanted(item["Key"])
        ]
        more = [KeyRange(folder) for folder in folders if r.holds(folder)]  # a new folder: flat first
        names = sorted(name for name in [*(item["Key"] for item in contents), *folders] if name > r.after)
        if page.get("IsTruncated"):
            if not names:
                raise ScanError(f"S3 answered a truncated page with no key after {r.after!r} under {r.prefix!r}")
            if r.through is None or names[-1] < r.through:
                more.extend(self._rest(r, names))
        return assets, more

    def _wanted(self, key: str) -> bool:
        return not key.endswith("/") and key.lower().endswith(self.file_types)

    def _rest(self, r: KeyRange, names: list[str]) -> list[KeyRange]:
        """The ranges that cover what is left of r after a truncated page ending at names[-1]."""
        last = names[-1]
        if r.probe:  # more than it looked: list on with full pages (split again if they come back full)
            return [KeyRange(r.prefix, last, r.through, r.by_folder)]
        big_folders = _folders_are_big(r.prefix, names, max(2, len(names) // 20))
        rel = last[len(r.prefix) :]
        if not r.by_folder and "/" in rel and big_folders:
            # descend: the rest of last's folder flat, and the folders after it found by delimiter
            folder = r.prefix + rel[: rel.index("/") + 1]
            return [KeyRange(folder, last), KeyRange(r.prefix, folder, r.through, by_folder=True)]
        points = split_points(r.prefix, last, r.through, names, self.max_points)
        if not points and r.through is not None and not r.probe:
            return [KeyRange(r.prefix, last, r.through, r.by_folder, probe=True)]
        return _split(r, last, points, by_folder=r.by_folder or big_folders)


def _folders_are_big(prefix: str, names: list[str], small: int) -> bool:
    """Whether the page's keys sit in sub-folders of `small` or more keys each (on average)."""
    in_folders = Counter(name[len(prefix) :].split("/", 1)[0] for name in names if "/" in name[len(prefix) :])
    return bool(in_folders) and sum(in_folders.values()) / len(in_folders) >= small


def _drain(results: queue.Queue, done_marker: object) -> None:
    while results.get() is not done_marker:
        pass


def source_error(bucket: str, prefix: str, error: ClientError) -> ScanError:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    where = f"s3://{bucket}/{prefix}"
    if code == "NoSuchBucket":
        return SourceNotFoundError(f"cannot list {where}: bucket {bucket!r} does not exist (check the source URI)")
    if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
        return SourceAccessDeniedError(
            f"cannot list {where}: access denied; the scanner needs s3:ListBucket on arn:aws:s3:::{bucket}"
        )
    return ScanError(f"cannot list {where}: {code or status} {error}")


# the step


class ScanIndex(Protocol):
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
) -> ScanResult:
    """One call of the "Scan assets" step: lists on until done or out of time, and returns where it got to."""
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
    else:
        state = _check_token(continuation, request.job_id)
        work = _load_work(s3, continuation)

    lister = ParallelLister(s3, bucket, tuple(state["file_types"]), settings.scan_parallelism)
    writer = _TaskWriter(index, request.job_id, state["base_shard"], state["next_shard"], state["shard_size"])
    left = lister.run(work, writer.add, deadline)
    writer.finish()
    state = {**state, "call": state["call"] + 1, "next_shard": writer.next_shard, "assets": state["assets"] + writer.seen}
    done = not left
    token = None if done else _save_work(s3, work_bucket, state, left, inline_work_bytes)
    if done:
        _delete_work_state(s3, work_bucket, request.job_id)
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


def list_source(
    s3: Any, source: str, file_types: tuple[str, ...], parallelism: int, deadline: float | None = None
) -> tuple[list[AssetRef], list[KeyRange]]:
    """Every matching asset under source, listed in parallel (for benchmarks and tools; no index, no manifests)."""
    bucket, prefix = parse_s3_uri(source)
    found: list[AssetRef] = []
    lister = ParallelLister(s3, bucket, file_types, parallelism)
    left = lister.run([KeyRange(prefix)], found.extend, deadline if deadline is not None else float("inf"))
    return found, left
