"""The OpenSearch client of the tag index: connecting (SigV4 or not), the indices, refresh, paging."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Self
from urllib.parse import urlsplit

from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection
from opensearchpy.exceptions import RequestError

from spotbot.adapters.opensearch.bulk import DEFAULT_BULK_BYTES, BulkWriter, check_bulk_bytes
from spotbot.adapters.opensearch.schema import index_definitions


_PREFIX_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,200}$")


class OpenSearchConnection:
    """The client, the index names, refresh tracking and paged reads the record modules share."""

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
        self.reuse_index = f"{prefix}-reuse"  # incremental jobs: see reuse.py
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
    ) -> Self:
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
        return index_definitions(self.tasks_index, self.tags_index, self.jobs_index, self.bots_index, self.reuse_index)

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

    def begin_bulk_load(self) -> dict[str, Any]:
        """Refresh off and no replicas on the tasks index while a scan loads it; the settings to restore after.

        Readers stay correct: planning reads tasks with a real-time multi-get, and searches refresh first.
        """
        found = self.client.indices.get_settings(index=self.tasks_index)
        current = next(iter(found.values()), {}).get("settings", {}).get("index", {})
        saved = {"refresh_interval": current.get("refresh_interval", "1s"),
                 "number_of_replicas": int(current.get("number_of_replicas", 1))}  # fmt: skip
        if current.get("refresh_interval") == "-1":  # another scan is loading, or one failed mid-way: restore the defaults
            saved = {"refresh_interval": "1s", "number_of_replicas": 1}
        self.client.indices.put_settings(index=self.tasks_index, body={"index": {"refresh_interval": "-1", "number_of_replicas": 0}})
        return saved

    def end_bulk_load(self, saved: dict[str, Any]) -> None:
        """Puts back what begin_bulk_load changed, and makes the loaded tasks visible to search."""
        if saved:
            self.client.indices.put_settings(index=self.tasks_index, body={"index": saved})
        self.refresh(self.tasks_index)

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
