"""Listing an S3 prefix fast: ListObjectsV2 over key ranges in parallel (the scanner's lister).

How the key space is split is described in spotbot.adapters.s3.scan's docstring; here are the
ranges (`KeyRange`), the split points and the bounded-thread-pool lister, and the errors a listing
raises (a Lambda error's errorType is the class name: the state machine retries a ScanError, never a
SourceNotFoundError).
"""

from __future__ import annotations

import logging
from collections import Counter
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from spotbot.adapters.s3.assets import parse_s3_uri
from spotbot.adapters.s3.keys import assets_of, is_wanted, wanted_types
from spotbot.domain import AssetRef, NotFoundError, UnavailableError

log = logging.getLogger(__name__)

PROBE_KEYS = 100  # page size for the rest of a range that looks done


class ScanError(UnavailableError):
    """The scan cannot go on; the message says why and what to do."""


class SourceNotFoundError(ScanError, NotFoundError):
    """The source bucket does not exist."""


class SourceAccessDeniedError(ScanError):
    """The scanner may not list the source."""


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
        self.file_types = wanted_types(file_types)
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

        def is_late() -> bool:
            return stop.is_set() or (started > 0 and time.monotonic() >= deadline)

        def submit(r: KeyRange) -> None:
            nonlocal outstanding
            with self._lock:
                late = is_late()
            if late:  # past the deadline: left for the next run without a trip through the pool
                with lock:
                    left.append(r)
                return
            with lock:
                outstanding += 1
            pool.submit(task, r)

        def task(r: KeyRange) -> None:
            nonlocal started
            try:
                with self._lock:
                    late = is_late()
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
        assets = assets_of(self.bucket, (item for item in contents if r.holds(item["Key"]) and is_wanted(item["Key"], self.file_types)))
        more = [KeyRange(folder) for folder in folders if r.holds(folder)]  # a new folder: flat first
        names = sorted(name for name in [*(item["Key"] for item in contents), *folders] if name > r.after)
        if page.get("IsTruncated"):
            if not names:
                raise ScanError(f"S3 answered a truncated page with no key after {r.after!r} under {r.prefix!r}")
            if r.through is None or names[-1] < r.through:
                more.extend(self._rest(r, names))
        return assets, more

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


def list_source(
    s3: Any, source: str, file_types: tuple[str, ...], parallelism: int, deadline: float | None = None
) -> tuple[list[AssetRef], list[KeyRange]]:
    """Every matching asset under source, listed in parallel (for benchmarks and tools; no index, no manifests)."""
    bucket, prefix = parse_s3_uri(source)
    found: list[AssetRef] = []
    lister = ParallelLister(s3, bucket, file_types, parallelism)
    left = lister.run([KeyRange(prefix)], found.extend, deadline if deadline is not None else float("inf"))
    return found, left
