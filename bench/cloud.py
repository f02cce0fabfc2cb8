"""Cloud-path benchmarks (not tests): prints figures for the scanner and the OpenSearch writes.

(a) Scanner listing rate against an S3 that answers each request 50 ms late (a threaded proxy on
    127.0.0.1 sleeps, then forwards), compared with a sequential ListObjectsV2 paginator, on a
    folder tree and on one flat folder of the same number of keys. Two servers behind the proxy:
    - moto: moto's server. It spends ~0.3 s of CPU on every 1,000-key page (it walks and sorts the
      whole bucket and serialises each key), in one process, so it is CPU-bound long before the
      50 ms matter; the figures say how much of the run was moto's CPU.
    - stub: a ListObjectsV2 over a sorted key list (bisect; ~1 ms a page), the same keys: the
      request latency dominates, as with S3 itself.
    Both sides use the scanner's S3 client (spotbot.adapters.s3.listing.listing_s3_client, which leaves
    LastModified unparsed); each listing runs --repeat times and the fastest run counts. The client
    is Python: reading a 1,000-key page costs it ~30 ms of CPU, which bounds the speed-up when the
    latency is 50 ms; "CPU busy" says how much of a run each side spent on a CPU.
    For moto also the whole scan step (listing, shard manifests to S3, task documents to osmem).
(c) Task documents loaded the way the scan loads them (add_tasks, refresh off and no replicas) next to
    the bare _bulk rate of the same pre-serialised documents (target: at least 0.8 of it).
(b) Tag writes per second to osmem: OpenSearchTagIndex.record_outcomes in batches (bulk requests:
    the tag record and the task update of each asset) against one index request per tag document
    (the pattern of the original Spot Tagging Bot).

    A third column lists with the lean client (spotbot.adapters.s3.lean_listing: a signed GET, the
    page read by regexes, no botocore model) at --lean-parallelism: the target is 6x the sequential
    paginator on 200,000 keys at 100 ms (`--servers stub --keys 200000 --latency-ms 100 --repeat 1`).

    python bench/cloud.py [--only a|b] [--keys 20000] [--latency-ms 50] [--parallelism 16]
                          [--lean-parallelism 64] [--servers moto,stub] [--repeat 3] [--docs 5000] [--batch 256]
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import logging
import multiprocessing
import os
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
WORK_BUCKET = "work"


def layouts(keys: int) -> dict[str, list[str]]:
    """A folder tree (20 folders x 10 sub-folders) and one flat folder, each of `keys` keys."""
    per_leaf = max(1, keys // 200)
    return {
        "tree": [f"tree/a{i // (per_leaf * 10):02d}/b{(i // per_leaf) % 10}/{i:06d}.jpg" for i in range(keys)],
        "flat": [f"flat/{i:06d}.jpg" for i in range(keys)],
    }


# the servers (in a child process, so their CPU is not the scanner's)


class ListingStub:
    """ListObjectsV2 over a sorted key list: what S3 answers, at the cost of a bisect."""

    def __init__(self, buckets: dict[str, list[str]]) -> None:
        self.buckets = {name: sorted(set(keys)) for name, keys in buckets.items()}

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        bucket = path.strip("/")
        keys = self.buckets.get(bucket)
        if keys is None or query.get("list-type") != "2":
            return 404, b"<Error><Code>NoSuchBucket</Code><Message>stub</Message></Error>"
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter")
        after = query.get("continuation-token") or query.get("start-after") or ""
        max_keys = int(query.get("max-keys", "1000"))
        i = max(bisect.bisect_right(keys, after) if after else 0, bisect.bisect_left(keys, prefix))
        contents: list[str] = []
        prefixes: list[str] = []
        last = ""
        while i < len(keys) and keys[i].startswith(prefix) and len(contents) + len(prefixes) < max_keys:
            key = keys[i]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut < 0:
                contents.append(key)
                last = key
                i += 1
                continue
            folder = key[: cut + 1]
            prefixes.append(folder)
            last = folder
            i = bisect.bisect_left(keys, key[:cut] + chr(ord(delimiter) + 1), i)
        truncated = i < len(keys) and keys[i].startswith(prefix)
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
            f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(contents) + len(prefixes)}</KeyCount>",
            f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        ]
        if truncated:
            parts.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
        parts.extend(
            f"<Contents><Key>{escape(key)}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
            f"<ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>1024</Size>"
            f"<StorageClass>STANDARD</StorageClass></Contents>"
            for key in contents
        )
        parts.extend(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes)
        parts.append("</ListBucketResult>")
        return 200, "".join(parts).encode()


def _proxy(latency_s: float, forward: Any) -> ThreadingHTTPServer:
    """A threaded HTTP/1.1 server that waits latency_s, then answers with forward(method, path, headers, body)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(latency_s)
            status, headers, payload = forward(self.command, self.path, dict(self.headers), body)
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve(kind: str, keys: int, latency_s: float, ready: Any) -> None:
    """The child process: a moto server (or the stub) holding the layouts, behind the latency proxy."""
    os.environ.update(CREDENTIALS)
    buckets = layouts(keys)
    if kind == "stub":
        stub = ListingStub(buckets)

        def forward(method: str, path: str, headers: dict[str, str], body: bytes):
            parts = urlsplit(path)
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            status, payload = stub.answer(parts.path, query)
            return status, [("Content-Type", "application/xml")], payload

    else:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        moto.start()
        host, port = moto.get_host_and_port()
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for bucket, bucket_keys in [*buckets.items(), (WORK_BUCKET, [])]:
            backend.create_bucket(bucket, "us-east-1")
            for key in bucket_keys:
                backend.put_object(bucket, key, b"x" * 16)
        local = threading.local()

        def forward(method: str, path: str, headers: dict[str, str], body: bytes):
            if not hasattr(local, "connection"):
                local.connection = http.client.HTTPConnection(host, port, timeout=120)
            headers = {k: v for k, v in headers.items() if k.lower() != "expect"}
            local.connection.request(method, path, body=body or None, headers=headers)
            response = local.connection.getresponse()
            return response.status, response.getheaders(), response.read()

    proxy = _proxy(latency_s, forward)
    ready.send((proxy.server_address[1], os.getpid()))
    ready.recv()  # until the parent is done


@dataclass(frozen=True)
class Run:
    keys: int
    seconds: float
    server_cpu: float  # share of the run the server process was on a CPU
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.keys / self.seconds


def best_of(repeat: int, listing: Any, pid: int) -> Run:
    """The fastest of `repeat` runs: the machine is shared, and noise only ever slows a run down."""
    runs = []
    for _ in range(repeat):
        server, client, started = cpu_seconds(pid), time.process_time(), time.perf_counter()
        keys = listing()
        seconds = time.perf_counter() - started
        runs.append(Run(keys, seconds, (cpu_seconds(pid) - server) / seconds, (time.process_time() - client) / seconds))
    return min(runs, key=lambda run: run.seconds)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# (a) the scanner


def bench_scanner(keys: int, latency_ms: float, parallelism: int, servers: list[str], repeat: int,
                  lean_parallelism: int = 64) -> dict[str, float]:
    os.environ.update(CREDENTIALS)
    from spotbot.adapters.s3.lean_listing import LeanListingClient
    from spotbot.adapters.s3.listing import list_source, listing_s3_client

    figures: dict[str, float] = {}
    print(f"(a) scanner: {keys:,} keys per layout, {latency_ms:.0f} ms per request, parallelism {parallelism}, best of {repeat}")
    for kind in servers:
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.Process(target=serve, args=(kind, keys, latency_ms / 1000, child), daemon=True)
        process.start()
        port, pid = parent.recv()
        endpoint = f"http://127.0.0.1:{port}"
        s3 = listing_s3_client(endpoint, max_pool_connections=parallelism + 8)  # both sides parse pages alike
        lean_client = LeanListingClient(endpoint, max_pool_connections=lean_parallelism + 8)
        try:
            for layout in ("tree", "flat"):
                source = f"s3://{layout}/{layout}/"

                def sequential() -> int:
                    return sum(
                        len(page.get("Contents", []))
                        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=layout, Prefix=f"{layout}/")
                    )

                def parallel() -> int:
                    found, left = list_source(s3, source, (".jpg",), parallelism)
                    assert not left
                    return len(found)

                def lean() -> int:
                    found, left = list_source(lean_client, source, (".jpg",), lean_parallelism)
                    assert not left
                    return len(found)

                seq = best_of(repeat, sequential, pid)
                par = best_of(repeat, parallel, pid)
                thin = best_of(repeat, lean, pid)
                assert seq.keys == par.keys == thin.keys == keys, (seq.keys, par.keys, thin.keys, keys)
                figures[f"{kind}_{layout}_lean_keys_per_second"] = thin.rate
                print(
                    f"  {kind:4s} {layout:4s}  sequential paginator {seq.rate:7,.0f} keys/s ({seq.seconds:5.2f} s; CPU busy: "
                    f"server {seq.server_cpu:4.0%}, client {seq.client_cpu:4.0%})   parallel scanner {par.rate:7,.0f} keys/s "
                    f"({par.seconds:5.2f} s; CPU busy: server {par.server_cpu:4.0%}, client {par.client_cpu:4.0%})   "
                    f"speed-up {seq.seconds / par.seconds:4.1f}x\n"
                    f"  {kind:4s} {layout:4s}  lean parallel (regex pages, {lean_parallelism} in flight) {thin.rate:7,.0f} keys/s "
                    f"({thin.seconds:5.2f} s; CPU busy: server {thin.server_cpu:4.0%}, client {thin.client_cpu:4.0%})   "
                    f"speed-up {seq.seconds / thin.seconds:4.1f}x over the sequential paginator"
                )
            if kind == "moto":
                bench_scan_step(s3, keys, parallelism)
        finally:
            parent.send("done")
            process.join(timeout=10)
    return figures


def bench_scan_step(s3: Any, keys: int, parallelism: int) -> None:
    """The whole scan step on the moto tree: listing, manifests to the work bucket, tasks to osmem."""
    from osmem_server import OsmemServer

    from spotbot.adapters.opensearch.index import OpenSearchTagIndex
    from spotbot.adapters.s3.scan import ScanRequest, scan_assets
    from spotbot.settings import Settings

    server = OsmemServer.start(japanese=False)
    try:
        index = OpenSearchTagIndex.connect(server.url, sigv4=False)
        index.ensure_indices()
        settings = Settings(work_bucket=WORK_BUCKET, scan_parallelism=parallelism, scan_time_budget_seconds=600)
        request = ScanRequest(job_id="bench-scan", bot="car-model", source="s3://tree/tree/")
        started = time.perf_counter()
        result = scan_assets(request, settings, s3=s3, index=index)
        elapsed = time.perf_counter() - started
        assert result.done and result.assets == keys, result
        print(
            f"  moto tree  whole scan step (listing + {result.shards} manifests + {result.new_tasks:,} tasks to osmem): "
            f"{result.assets / elapsed:,.0f} assets/s ({elapsed:.2f} s)"
        )
        index.close()
    finally:
        server.close()


# (b) tag writes


def bench_tag_writes(docs: int, batch: int) -> None:
    from osmem_server import OsmemServer

    from spotbot.adapters.opensearch.index import OpenSearchTagIndex
    from spotbot.adapters.opensearch.tags import tag_doc
    from spotbot.domain import AssetRef, Tag, TagRecord, TaskStatus, task_id
    from spotbot.ports import TaskOutcome

    def records(job_id: str) -> list[TagRecord]:
        return [
            TagRecord(
                job_id=job_id,
                bot="scene-text",
                model_version="bench",
                asset=f"s3://assets/photos/{i:06d}.jpg",
                etag="0123456789abcdef",
                tags=[
                    Tag(label="text", score=0.97, text=f"欢迎光临 第{i}号", box=[[4, 4], [120, 4], [120, 30], [4, 30]]),
                    Tag(label="text", score=0.91, text="OPEN 24 HOURS", box=[[4, 40], [150, 40], [150, 60], [4, 60]]),
                ],
            )
            for i in range(docs)
        ]

    print(f"(b) tag writes to osmem: {docs:,} tag records")
    server = OsmemServer.start(japanese=False)
    try:
        index = OpenSearchTagIndex.connect(server.url, sigv4=False)
        index.ensure_indices()

        bulk_records = records("bench-bulk")
        index.add_tasks("bench-bulk", [(0, AssetRef(uri=r.asset, etag=r.etag, size=1)) for r in bulk_records])
        started = time.perf_counter()
        for start in range(0, docs, batch):
            chunk = bulk_records[start : start + batch]
            index.record_outcomes(chunk, [TaskOutcome(r.asset, TaskStatus.DONE) for r in chunk], "bench-bulk")
        bulk = time.perf_counter() - started
        assert index.counts("bench-bulk").done == docs

        single_records = records("bench-single")
        started = time.perf_counter()
        for record in single_records:
            index.client.index(index=index.tags_index, id=task_id(record.job_id, record.asset), body=tag_doc(record))
        single = time.perf_counter() - started
        index.refresh()
        assert sum(1 for _ in index.tag_records("bench-single")) == docs

        print(
            f"  bulk writer (record_outcomes, batches of {batch}: multi-get of the tasks, then the tag record and the "
            f"task of each asset in bulk requests): {docs / bulk:8,.0f} records/s ({bulk:.2f} s)"
        )
        print(f"  one index request per tag document:  {docs / single:8,.0f} records/s ({single:.2f} s)")
        print(f"  ratio {single / bulk:.1f}x (the bulk path also writes {docs:,} task updates the other does not)")
        index.close()
    finally:
        server.close()


# (c) task documents: the scan's bulk load against the bare _bulk rate of the same documents


def bench_task_load(docs: int) -> None:
    """add_tasks (BulkWriter, byte-sized requests) in bulk-load mode, against the same NDJSON sent straight to _bulk."""
    import json

    from osmem_server import OsmemServer

    from spotbot.adapters.opensearch.bulk import DEFAULT_BULK_BYTES
    from spotbot.adapters.opensearch.index import OpenSearchTagIndex
    from spotbot.domain import AssetRef, plan_tasks

    assets = [AssetRef(uri=f"s3://assets/photos/{i // 1000:04d}/{i:08d}.jpg", etag=f"{i:032x}", size=1024) for i in range(docs)]
    print(f"(c) task documents to osmem: {docs:,} tasks, bulk requests of {DEFAULT_BULK_BYTES // 2**20} MiB")
    server = OsmemServer.start(japanese=False)
    try:
        rates = {}
        for mode in ("bare", "scan"):
            index = OpenSearchTagIndex.connect(server.url, sigv4=False, prefix=f"bench-{mode}", timeout=300)
            index.ensure_indices()
            tasks = plan_tasks(f"load-{mode}", assets, {}, next_shard=0, shard_size=1000).tasks
            if mode == "bare":  # the floor: pre-serialised NDJSON, no client-side work timed
                lines = [
                    (json.dumps({"index": {"_index": index.tasks_index, "_id": t.id}}) + "\n"
                     + json.dumps(t.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                    for t in tasks
                ]  # fmt: skip
                bodies, body, size = [], [], 0
                for line in lines:
                    if size + len(line) > DEFAULT_BULK_BYTES and body:
                        bodies.append(b"".join(body))
                        body, size = [], 0
                    body.append(line)
                    size += len(line)
                bodies.append(b"".join(body))
                started = time.perf_counter()
                for payload in bodies:
                    index.client.bulk(body=payload, refresh="false", filter_path="errors")
                seconds = time.perf_counter() - started
            else:  # what the scanner does: planned tasks, serialised and sent by add_tasks, refresh off and no replicas
                started = time.perf_counter()
                saved = index.begin_bulk_load()
                index.add_tasks(tasks)
                index.end_bulk_load(saved)
                seconds = time.perf_counter() - started
            index.refresh()
            assert index.client.count(index=index.tasks_index)["count"] == docs
            rates[mode] = docs / seconds
            index.close()
        print(f"  bare _bulk of the same documents: {rates['bare']:9,.0f} docs/s")
        print(f"  scan load (add_tasks, bulk-load mode, incl. serialising): {rates['scan']:9,.0f} docs/s  "
              f"ratio {rates['scan'] / rates['bare']:.2f} of bare")
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("a", "b", "c"))
    parser.add_argument("--tasks", type=int, default=100_000, help="task documents for (c)")
    parser.add_argument("--keys", type=int, default=20_000, help="keys per layout for (a)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="added to every S3 request in (a)")
    parser.add_argument("--parallelism", type=int, default=16, help="concurrent ListObjectsV2 calls in (a)")
    parser.add_argument("--lean-parallelism", type=int, default=64, help="requests in flight of the lean client in (a)")
    parser.add_argument("--servers", default="moto,stub", help="S3 servers for (a): moto, stub or both")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each listing in (a); the fastest counts")
    parser.add_argument("--docs", type=int, default=5_000, help="tag records for (b)")
    parser.add_argument("--batch", type=int, default=256, help="records per record_outcomes call in (b)")
    args = parser.parse_args()
    if args.only in (None, "a"):
        servers = [s.strip() for s in args.servers.split(",") if s.strip()]
        bench_scanner(args.keys, args.latency_ms, args.parallelism, servers, args.repeat, args.lean_parallelism)
    if args.only in (None, "b"):
        bench_tag_writes(args.docs, args.batch)
    if args.only in (None, "c"):
        bench_task_load(args.tasks)


if __name__ == "__main__":
    main()
