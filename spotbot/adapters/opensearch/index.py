"""The cloud tag index: OpenSearch (Amazon OpenSearch Service), the same port as SQLiteTagIndex.

Four indices, named from a prefix: `<prefix>-tasks`, `<prefix>-tags`, `<prefix>-jobs`, `<prefix>-bots` (and `<prefix>-reuse`, see reuse.py).
`ensure_indices()` creates them (and an index template per index, so an index that a write
auto-creates still gets the right mappings); it is idempotent and only adds to mappings.

Documents are always written whole, keyed by a stable id -- no scripted updates:

- task: id `task_id(job_id, asset)`; tag record: the same id (one per asset per job); job: `job_id`;
  bot: its name.
- `record_outcomes` reads the current task documents with a real-time multi-get, then writes the
  tag documents and the whole updated task documents in byte-sized bulk requests (tags first: if
  the write is cut short, the task is still PENDING and is tagged again, overwriting its record).
  OpenSearch has no transactions, so "all or nothing" becomes "idempotent and retried".

Full text. `search_text` (labels, string fields of tags, the asset's text) is indexed three ways:
the field itself with the built-in `cjk` analyzer (CJK bigrams, for relevance-ranked queries), a
`.gram` sub-field of 1- and 2-character n-grams and a `.tri` sub-field of trigrams, both lowercased
and over every character. A query term of one or two characters, lowercased whole, must be a
`.gram` term; a longer one must have each of its trigrams in `.tri`, in a row (a phrase). Either
way it is an exact, case-insensitive substring match, the same as the SQLite trigram index and its
LIKE fallback. No plugins are needed. (osmem, the test server, indexes all n-grams of a value at
one position, so there the "in a row" part is not checked; see tests/test_opensearch_index.py.)

Refresh policy. Writes use `refresh=false`. `add_assets` refreshes the tasks index when it is
done (the shards are planned from it straight away). A read that goes through search (not
get/mget, which are real-time) refreshes its index first when this instance has written to it
since its last refresh -- so one instance always reads its own writes -- or when asked with
`consistent=True`. `counts()` defaults to `consistent=True`, because it decides a job's final
status from writes made by other processes; everything else defaults to near-real-time.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection
from opensearchpy.exceptions import NotFoundError, RequestError, TransportError

from spotbot.adapters.opensearch.reuse import ReuseIndexMixin
from spotbot.domain import RECORDED_STATUSES, AssetRef, Job, JobCounts, TagRecord, Task, TaskStatus, task_id, utc_now
from spotbot.ports import SearchHit, SearchQuery, TaskOutcome

MiB = 1024 * 1024
DEFAULT_BULK_BYTES = 5 * MiB
MAX_BULK_BYTES = 10 * MiB  # http.max_content_length of the smallest Amazon OpenSearch Service instances
ALL_STATUSES = tuple(TaskStatus)
_PREFIX_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,200}$")
_BULK_FILTER_PATH = "took,errors,items.*._index,items.*._id,items.*.status,items.*.error"

_NGRAM_ANALYSIS = {
    "tokenizer": {
        "spotbot_gram12": {"type": "ngram", "min_gram": 1, "max_gram": 2},
        "spotbot_gram3": {"type": "ngram", "min_gram": 3, "max_gram": 3},
    },
    "analyzer": {
        "spotbot_gram12": {"type": "custom", "tokenizer": "spotbot_gram12", "filter": ["lowercase"]},
        "spotbot_gram3": {"type": "custom", "tokenizer": "spotbot_gram3", "filter": ["lowercase"]},
        # a short query term as one lowercased token: an exact look-up among the 1- and 2-grams
        "spotbot_lowercase": {"type": "custom", "tokenizer": "keyword", "filter": ["lowercase"]},
    },
}

TASK_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "job_id": {"type": "keyword"},
        "asset": {"type": "keyword"},
        "etag": {"type": "keyword"},
        "shard": {"type": "integer"},
        "status": {"type": "keyword"},
        "attempts": {"type": "integer"},
        "error": {"type": "text", "index": False},
        "updated_at": {"type": "date"},
    },
}

TAG_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "job_id": {"type": "keyword"},
        "bot": {"type": "keyword"},
        "model_version": {"type": "keyword"},
        "asset": {"type": "keyword"},
        "etag": {"type": "keyword"},
        # bots add their own fields to tags (OCR text, boxes): kept in _source, not mapped
        "tags": {
            "type": "object",
            "dynamic": False,
            "properties": {"label": {"type": "keyword"}, "score": {"type": "float"}},
        },
        "text": {"type": "text", "index": False},  # searched through search_text
        "created_at": {"type": "date"},
        "reused_from": {"type": "keyword"},
        "search_text": {
            "type": "text",
            "analyzer": "cjk",
            "fields": {
                "gram": {"type": "text", "analyzer": "spotbot_gram12"},
                "tri": {"type": "text", "analyzer": "spotbot_gram3"},
            },
        },
    },
}

JOB_MAPPINGS: dict[str, Any] = {
    "dynamic": False,  # new Job fields are kept in _source without a mapping change
    "properties": {
        "job_id": {"type": "keyword"},
        "bot": {"type": "keyword"},
        "source": {"type": "keyword", "ignore_above": 2048},
        "output": {"type": "keyword", "ignore_above": 2048},
        "status": {"type": "keyword"},
        "workers": {"type": "integer"},
        "created_at": {"type": "date"},
        "finished_at": {"type": "date"},
        "execution_arn": {"type": "keyword"},
        "endpoint_name": {"type": "keyword"},
        "model_version": {"type": "keyword"},
    },
}

BOT_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "name": {"type": "keyword"},
        "file_types": {"type": "keyword"},
        "input_kind": {"type": "keyword"},
        "runtime": {"type": "keyword"},  # e.g. "batch", "sagemaker"
        "image_uri": {"type": "keyword"},
        "image_uris": {"type": "object", "dynamic": False},  # e.g. {"cpu": ..., "gpu": ...}
        "model_artifact": {"type": "keyword"},  # s3://.../model.tar.gz
        "model_version": {"type": "keyword"},
        "updated_at": {"type": "date"},
    },
}


class BulkError(RuntimeError):
    """Some documents of a bulk request were not written; `failures` names each one."""

    def __init__(self, failures: list[dict[str, Any]], note: str = "") -> None:
        self.failures = failures
        shown = "; ".join(
            f"{f['index']}/{f['id']}: {f['status']} {f['type']}: {f['reason']}" for f in failures[:5]
        )
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"bulk write failed for {len(failures)} document(s){note}: {shown}{more}")


class BulkWriter:
    """Collects index actions as NDJSON and sends them in bulk requests of at most max_bytes.

    A request answered 429 is retried whole; items answered 429 are retried alone; both with
    exponential backoff and jitter, up to max_retries times. Any other item error raises BulkError.
    An action larger than max_bytes on its own is sent alone.
    """

    def __init__(
        self,
        client: OpenSearch,
        max_bytes: int = DEFAULT_BULK_BYTES,
        *,
        max_retries: int = 8,
        retry_base_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        check_bulk_bytes(max_bytes)
        self.client = client
        self.max_bytes = max_bytes
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.indices: set[str] = set()  # every index written to
        self._actions: list[bytes] = []
        self._size = 0

    def index(self, index: str, doc_id: str, doc: dict[str, Any]) -> None:
        action = (
            json.dumps({"index": {"_index": index, "_id": doc_id}}, ensure_ascii=False, separators=(",", ":"))
            + "\n"
            + json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
            + "\n"
        ).encode()
        if self._actions and self._size + len(action) > self.max_bytes:
            self.flush()
        self._actions.append(action)
        self._size += len(action)
        self.indices.add(index)

    def flush(self) -> None:
        actions, self._actions, self._size = self._actions, [], 0
        if actions:
            self._send(actions)

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()

    def _send(self, actions: list[bytes]) -> None:
        pending = actions
        attempt = 0
        while True:
            try:
                response = self.client.bulk(body=b"".join(pending), refresh="false", filter_path=_BULK_FILTER_PATH)
            except TransportError as e:
                if e.status_code != 429:
                    raise
                if attempt >= self.max_retries:
                    failures = [
                        {**_target(action), "status": 429, "type": str(e.error), "reason": "the whole request was rejected"}
                        for action in pending
                    ]
                    raise BulkError(failures, note=f" after {attempt} retries") from e
                self._backoff(attempt)
                attempt += 1
                continue
            if not response.get("errors"):
                return
            rejected: list[bytes] = []
            rejected_failures: list[dict[str, Any]] = []
            failures: list[dict[str, Any]] = []
            for action, item in zip(pending, response.get("items", []), strict=True):
                (result,) = item.values()
                status = int(result.get("status", 0))
                if status < 300:
                    continue
                error = result.get("error") or {}
                failure = {
                    "index": result.get("_index"),
                    "id": result.get("_id"),
                    "status": status,
                    "type": error.get("type", "error") if isinstance(error, dict) else "error",
                    "reason": error.get("reason", "") if isinstance(error, dict) else str(error),
                }
                if status == 429:
                    rejected.append(action)
                    rejected_failures.append(failure)
                else:
                    failures.append(failure)
            if failures:
                raise BulkError(failures)
            if not rejected:
                return
            if attempt >= self.max_retries:
                raise BulkError(rejected_failures, note=f" after {attempt} retries")
            self._backoff(attempt)
            attempt += 1
            pending = rejected

    def _backoff(self, attempt: int) -> None:
        delay = min(self.retry_max_s, self.retry_base_s * 2**attempt)
        time.sleep(random.uniform(delay / 2, delay))


def _target(action: bytes) -> dict[str, Any]:
    meta = json.loads(action.split(b"\n", 1)[0])["index"]
    return {"index": meta["_index"], "id": meta["_id"]}


def check_bulk_bytes(max_bytes: int) -> int:
    if not 1 <= max_bytes <= MAX_BULK_BYTES:
        raise ValueError(f"bulk byte budget must be 1 to {MAX_BULK_BYTES} bytes (10 MiB), got {max_bytes}")
    return max_bytes


class OpenSearchTagIndex(ReuseIndexMixin):
    """TagIndex on OpenSearch. The constructor makes no request; call ensure_indices() once."""

    def __init__(
        self,
        client: OpenSearch,
        prefix: str = "spotbot",
        *,
        bulk_bytes: int = DEFAULT_BULK_BYTES,
        max_retries: int = 8,
        retry_base_s: float = 0.5,
        retry_max_s: float = 30.0,
        page_size: int = 1000,
        owns_client: bool = False,
    ) -> None:
        if not _PREFIX_PATTERN.match(prefix):
            raise ValueError(f"index prefix {prefix!r} is not valid: use lowercase letters, digits, '-', '_' or '.'")
        if not 1 <= page_size <= 10_000:
            raise ValueError(f"page size must be 1 to 10000, got {page_size}")
        self.client = client
        self.prefix = prefix
        self.bulk_bytes = check_bulk_bytes(bulk_bytes)
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.page_size = page_size
        self.tasks_index = f"{prefix}-tasks"
        self.tags_index = f"{prefix}-tags"
        self.jobs_index = f"{prefix}-jobs"
        self.bots_index = f"{prefix}-bots"
        self._owns_client = owns_client
        self._dirty: set[str] = set()  # indices this instance wrote to since it last refreshed them
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        endpoint: str,
        region: str | None = None,
        *,
        sigv4: bool = True,
        prefix: str = "spotbot",
        service: str = "es",
        timeout: float = 30.0,
        client_options: dict[str, Any] | None = None,
        **index_options: Any,
    ) -> OpenSearchTagIndex:
        """A client for an endpoint URL (`https://search-....es.amazonaws.com`, or a bare host for https).

        With sigv4 (the default) requests are signed with the credentials of the default boto3
        session (env, profile, container or instance role) for `region` (default: the session's).
        sigv4=False sends unsigned requests, e.g. to a local test server over plain http.
        """
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OpenSearch endpoint {endpoint!r} is not an http(s) URL")
        use_ssl = parts.scheme == "https"
        host: dict[str, Any] = {"host": parts.hostname, "port": parts.port or (443 if use_ssl else 80)}
        if parts.path.strip("/"):
            host["url_prefix"] = parts.path.rstrip("/")
        auth = None
        if sigv4:
            import boto3  # imported here: only signed clients need it

            session = boto3.Session()
            credentials = session.get_credentials()
            if credentials is None:
                raise ValueError("no AWS credentials found to sign OpenSearch requests (SigV4)")
            region = region or session.region_name
            if not region:
                raise ValueError("an AWS region is needed to sign OpenSearch requests (SigV4): pass region")
            auth = AWSV4SignerAuth(credentials, region, service)  # a requests auth: RequestsHttpConnection
        client = OpenSearch(
            hosts=[host],
            http_auth=auth,
            use_ssl=use_ssl,
            verify_certs=True,
            connection_class=RequestsHttpConnection,
            timeout=timeout,
            **(client_options or {}),
        )
        return cls(client, prefix, owns_client=True, **index_options)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # indices

    def index_definitions(self) -> dict[str, dict[str, Any]]:
        """Settings and mappings of each index, by index name."""
        one_shard = {"number_of_shards": 1}
        return {
            self.tasks_index: {"settings": dict(one_shard), "mappings": TASK_MAPPINGS},
            self.tags_index: {"settings": {"analysis": _NGRAM_ANALYSIS}, "mappings": TAG_MAPPINGS},
            self.jobs_index: {"settings": dict(one_shard), "mappings": JOB_MAPPINGS},
            self.bots_index: {"settings": dict(one_shard), "mappings": BOT_MAPPINGS},
            **self.reuse_index_definition(),
        }

    def ensure_indices(self) -> None:
        """Puts an index template per index and creates the missing indices; adds new fields to existing ones."""
        for name, definition in self.index_definitions().items():
            self.client.indices.put_index_template(
                name=name, body={"index_patterns": [name], "priority": 100, "template": definition}
            )
            if self.client.indices.exists(index=name):
                self.client.indices.put_mapping(index=name, body=definition["mappings"])
                continue
            try:
                self.client.indices.create(index=name, body=definition)
            except RequestError as e:
                if e.error != "resource_already_exists_exception":
                    raise

    def refresh(self, *indices: str) -> None:
        """Makes every write to these indices (default: all four) visible to search."""
        names = list(indices) or list(self.index_definitions())
        self.client.indices.refresh(index=",".join(names))
        with self._lock:
            self._dirty.difference_update(names)

    def _before_search(self, index: str, consistent: bool) -> None:
        with self._lock:
            needed = consistent or index in self._dirty
        if needed:
            self.refresh(index)

    def _bulk(self) -> BulkWriter:
        return BulkWriter(
            self.client,
            self.bulk_bytes,
            max_retries=self.max_retries,
            retry_base_s=self.retry_base_s,
            retry_max_s=self.retry_max_s,
        )

    def _wrote(self, *indices: str) -> None:
        with self._lock:
            self._dirty.update(indices)

    def _write_all(self, docs: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        writer = self._bulk()
        try:
            for index, doc_id, doc in docs:
                writer.index(index, doc_id, doc)
            writer.flush()
        finally:
            self._wrote(*writer.indices)

    def _scan(
        self,
        index: str,
        query: dict[str, Any],
        sort: list[dict[str, Any]],
        *,
        source: Any = True,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every hit of a query, in pages with search_after; the sort must be unique per document."""
        page_size = page_size or self.page_size
        after: list[Any] | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            body: dict[str, Any] = {
                "query": query,
                "sort": sort,
                "size": size,
                "_source": source,
                "track_total_hits": False,
            }
            if after is not None:
                body["search_after"] = after
            hits = self.client.search(index=index, body=body)["hits"]["hits"]
            yield from hits
            if len(hits) < size:
                return
            after = hits[-1]["sort"]
            if remaining is not None:
                remaining -= len(hits)

    def _mget(self, index: str, ids: list[str], source: Any = True) -> Iterator[dict[str, Any]]:
        """The documents found among ids (real-time, no refresh needed), in chunks."""
        for start in range(0, len(ids), self.page_size):
            chunk = ids[start : start + self.page_size]
            response = self.client.mget(
                index=index, body={"docs": [{"_id": doc_id, "_source": source} for doc_id in chunk]}
            )
            for doc in response["docs"]:
                if doc.get("error"):
                    raise RuntimeError(f"reading {index}/{doc.get('_id')} failed: {doc['error']}")
                if doc.get("found"):
                    yield doc

    # jobs

    def save_job(self, job: Job) -> None:
        self.client.index(index=self.jobs_index, id=job.job_id, body=job.model_dump(mode="json"), refresh="false")
        self._wrote(self.jobs_index)

    def get_job(self, job_id: str) -> Job | None:
        source = self._get_source(self.jobs_index, job_id)
        return Job.model_validate(source) if source is not None else None

    def list_jobs(self, limit: int = 50, *, consistent: bool = False) -> list[Job]:
        self._before_search(self.jobs_index, consistent)
        hits = self._scan(
            self.jobs_index,
            {"match_all": {}},
            [{"created_at": "desc"}, {"job_id": "asc"}],
            limit=limit,
        )
        return [Job.model_validate(hit["_source"]) for hit in hits]

    def _get_source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        try:
            response = self.client.get(index=index, id=doc_id)
        except NotFoundError:
            return None
        return response["_source"] if response.get("found") else None

    # tasks

    def shards_with_work(
        self, job_id: str, statuses: tuple[TaskStatus, ...], *, consistent: bool = False
    ) -> list[int]:
        self._before_search(self.tasks_index, consistent)
        buckets = self._composite_buckets(self.tasks_index, _task_query(job_id, statuses), "shard")
        return [int(key) for key, _ in buckets]

    def tasks_in_shard(
        self, job_id: str, shard: int, statuses: tuple[TaskStatus, ...] = ALL_STATUSES, *, consistent: bool = False
    ) -> list[Task]:
        self._before_search(self.tasks_index, consistent)
        query = _task_query(job_id, statuses, {"term": {"shard": shard}})
        return [Task.model_validate(hit["_source"]) for hit in self._scan(self.tasks_index, query, [{"asset": "asc"}])]

    def done_assets(self, job_id: str, assets: Iterable[str]) -> set[str]:
        ids = {task_id(job_id, asset): asset for asset in assets}
        return {
            ids[doc["_id"]]
            for doc in self._mget(self.tasks_index, list(ids), source=["status"])
            if doc["_source"].get("status") in RECORDED_STATUSES
        }

    def record_outcomes(self, records: list[TagRecord], outcomes: list[TaskOutcome], job_id: str) -> None:
        """Writes the tag records, then the tasks with their new status (attempts + 1); outcomes of unknown tasks are ignored."""
        now = utc_now()
        ids = list(dict.fromkeys(task_id(job_id, o.asset) for o in outcomes))
        tasks = {doc["_id"]: Task.model_validate(doc["_source"]) for doc in self._mget(self.tasks_index, ids)}
        for outcome in outcomes:
            doc_id = task_id(job_id, outcome.asset)
            if doc_id in tasks:
                task = tasks[doc_id]
                tasks[doc_id] = task.model_copy(
                    update={
                        "status": outcome.status,
                        "error": outcome.error,
                        "attempts": task.attempts + 1,
                        "updated_at": now,
                    }
                )

        def docs() -> Iterator[tuple[str, str, dict[str, Any]]]:
            for record in records:
                yield self.tags_index, task_id(record.job_id, record.asset), _tag_doc(record)
            for doc_id, task in tasks.items():
                yield self.tasks_index, doc_id, task.model_dump(mode="json")

        self._write_all(docs())
        self._write_all(self.reuse_docs(records))  # after the tasks: an entry names a finished record

    def counts(self, job_id: str, *, consistent: bool = True) -> JobCounts:
        self._before_search(self.tasks_index, consistent)
        response = self.client.search(
            index=self.tasks_index,
            body={
                "size": 0,
                "track_total_hits": False,
                "query": {"term": {"job_id": job_id}},
                "aggs": {"statuses": {"terms": {"field": "status", "size": 100}}},
            },
        )
        buckets = response["aggregations"]["statuses"]["buckets"]
        return JobCounts.from_statuses({bucket["key"]: bucket["doc_count"] for bucket in buckets})

    def failed_tasks(self, job_id: str, limit: int = 100, *, consistent: bool = False) -> list[Task]:
        self._before_search(self.tasks_index, consistent)
        query = _task_query(job_id, (TaskStatus.FAILED,))
        hits = self._scan(self.tasks_index, query, [{"asset": "asc"}], limit=limit)
        return [Task.model_validate(hit["_source"]) for hit in hits]

    # tags

    def tag_records(self, job_id: str, *, consistent: bool = False) -> Iterator[TagRecord]:
        """Every record of the job, by asset, paged with search_after (no 10,000 limit)."""
        self._before_search(self.tags_index, consistent)
        for hit in self._scan(
            self.tags_index,
            {"bool": {"filter": [{"term": {"job_id": job_id}}]}},
            [{"asset": "asc"}],
            source={"excludes": ["search_text"]},
        ):
            yield TagRecord.model_validate(hit["_source"])

    def search(self, query: SearchQuery, *, consistent: bool = False) -> list[SearchHit]:
        return self.search_page(query, consistent=consistent)[0]

    def search_page(
        self, query: SearchQuery, search_after: list[Any] | None = None, *, consistent: bool = False
    ) -> tuple[list[SearchHit], list[Any] | None]:
        """One page of query.limit hits, newest first; pass the returned cursor for the next (None: no more)."""
        if query.limit < 1:
            return [], None
        self._before_search(self.tags_index, consistent)
        terms = (query.text or "").split()
        body: dict[str, Any] = {
            "query": _tag_query(terms, bot=query.bot, label=query.label, job_id=query.job_id),
            "sort": [{"created_at": "desc"}, {"asset": "asc"}, {"job_id": "asc"}],
            "size": query.limit + 1,
            "_source": {"excludes": ["search_text"]},
            "track_total_hits": False,
        }
        if search_after is not None:
            body["search_after"] = search_after
        raw = self.client.search(index=self.tags_index, body=body)["hits"]["hits"]
        page = raw[: query.limit]
        hits = []
        for hit in page:
            record = TagRecord.model_validate(hit["_source"])
            hits.append(SearchHit(record=record, snippet=_snippet(record, terms)))
        return hits, (page[-1]["sort"] if len(raw) > query.limit else None)

    def label_counts(self, job_id: str | None = None, bot: str | None = None, *, consistent: bool = False) -> dict[str, int]:
        """How many tag records carry each label (a record with a label twice counts once), most first."""
        self._before_search(self.tags_index, consistent)
        query = _tag_query([], bot=bot, label=None, job_id=job_id)
        counts = dict(self._composite_buckets(self.tags_index, query, "tags.label"))
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def _composite_buckets(self, index: str, query: dict[str, Any], field: str) -> list[tuple[Any, int]]:
        """Every (value, doc count) of a field, paged with a composite aggregation: exact, with no size limit."""
        buckets: list[tuple[Any, int]] = []
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": 1000, "sources": [{"value": {"terms": {"field": field}}}]}
            if after is not None:
                composite["after"] = after
            response = self.client.search(
                index=index,
                body={"size": 0, "track_total_hits": False, "query": query, "aggs": {"values": {"composite": composite}}},
            )
            agg = response["aggregations"]["values"]
            buckets.extend((bucket["key"]["value"], bucket["doc_count"]) for bucket in agg["buckets"])
            after = agg.get("after_key")
            if not agg["buckets"] or after is None:
                return buckets

    # bots

    def save_bot(self, doc: dict[str, Any]) -> None:
        """Registers (or replaces) a bot: `name` plus file_types, image URIs, model artifact S3 URI, runtime."""
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("a bot document needs a non-empty string 'name'")
        self.client.index(index=self.bots_index, id=name, body=doc, refresh="false")
        self._wrote(self.bots_index)

    def get_bot(self, name: str) -> dict[str, Any] | None:
        return self._get_source(self.bots_index, name)

    def list_bots(self, *, consistent: bool = False) -> list[dict[str, Any]]:
        self._before_search(self.bots_index, consistent)
        return [hit["_source"] for hit in self._scan(self.bots_index, {"match_all": {}}, [{"name": "asc"}])]

    def delete_bot(self, name: str) -> bool:
        """Removes a bot; False when there was none."""
        try:
            self.client.delete(index=self.bots_index, id=name, refresh="false")
        except NotFoundError:
            return False
        self._wrote(self.bots_index)
        return True

    # tasks whose shards the caller plans (the cloud scanner, a batch at a time)

    def max_shard(self, job_id: str, *, consistent: bool = True) -> int | None:
        """The highest shard number among the job's tasks; None when it has none. One aggregation."""
        self._before_search(self.tasks_index, consistent)
        response = self.client.search(
            index=self.tasks_index,
            body={
                "size": 0,
                "track_total_hits": False,
                "query": {"term": {"job_id": job_id}},
                "aggs": {"max_shard": {"max": {"field": "shard"}}},
            },
        )
        value = response["aggregations"]["max_shard"]["value"]
        return None if value is None else int(value)

    def tasks_by_asset(self, job_id: str, assets: Iterable[str]) -> dict[str, Task]:
        """The job's existing tasks for these assets, by asset: a real-time multi-get, no refresh needed."""
        ids = {task_id(job_id, asset): asset for asset in assets}
        return {ids[doc["_id"]]: Task.model_validate(doc["_source"]) for doc in self._mget(self.tasks_index, list(ids))}

    def add_tasks(self, tasks: Iterable[Task]) -> int:
        """Writes each task as given (PENDING, planned by spotbot.domain.planning), replacing the asset's task."""
        written = 0

        def docs() -> Iterator[tuple[str, str, dict[str, Any]]]:
            nonlocal written
            for task in tasks:
                written += 1
                yield self.tasks_index, task.id, task.model_dump(mode="json")

        self._write_all(docs())
        return written


def _task_query(job_id: str, statuses: tuple[TaskStatus, ...], *more: dict[str, Any]) -> dict[str, Any]:
    return {
        "bool": {
            "filter": [
                {"term": {"job_id": job_id}},
                {"terms": {"status": [TaskStatus(s).value for s in statuses]}},
                *more,
            ]
        }
    }


def _tag_query(terms: list[str], *, bot: str | None, label: str | None, job_id: str | None) -> dict[str, Any]:
    filters: list[dict[str, Any]] = []
    for term in terms:  # every word must be a substring, case-insensitive
        if len(term) < 3:
            filters.append({"match": {"search_text.gram": {"query": term, "analyzer": "spotbot_lowercase"}}})
            continue
        # each trigram of the term, exactly (a term query on one lowercased token), and the trigrams
        # in a row (the phrase). The phrase alone is exact on OpenSearch, whose ngram tokenizer gives
        # every gram its own position; the term queries keep the query strict on engines that do not.
        for gram in dict.fromkeys(term[i : i + 3] for i in range(len(term) - 2)):
            filters.append({"match": {"search_text.tri": {"query": gram, "analyzer": "spotbot_lowercase"}}})
        filters.append({"match_phrase": {"search_text.tri": term}})
    if bot:
        filters.append({"term": {"bot": bot}})
    if job_id:
        filters.append({"term": {"job_id": job_id}})
    if label:
        filters.append({"term": {"tags.label": label}})
    return {"bool": {"filter": filters}} if filters else {"match_all": {}}


def _tag_doc(record: TagRecord) -> dict[str, Any]:
    doc = record.model_dump(mode="json")
    doc["search_text"] = record.searchable_text()
    return doc


def _snippet(record: TagRecord, terms: list[str], width: int = 60) -> str:
    return record.snippet(terms, width)
