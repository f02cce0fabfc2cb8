"""The SageMaker serving container (bots.serve) as a real process, and SageMakerRuntime driving it with real boto3."""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from spotbot.entrypoints.serving import default_model_dir
from spotbot.adapters.sagemaker import wire
from spotbot.adapters.local.in_process import InProcessRuntime
from spotbot.adapters.local.assets import LocalAssetStore
from spotbot.adapters.local.output import LocalOutputStore
from spotbot.adapters.sagemaker.runtime import BotInvocationError, EndpointError, SageMakerRuntime
from spotbot.adapters.sqlite.index import SQLiteTagIndex
from spotbot.services.decoding import DecodeLimits, decode_image, decode_text
from spotbot.domain import Job, TaskStatus
from spotbot.ports import ShardWork
from spotbot.settings import Settings
from spotbot.adapters.wiring import open_model_registry
from spotbot.services.shard import tag_shard
from spotbot.services.planning import add_assets
from tests.conftest import CURRENT_SENTIMENT, REPO, SAMPLES, read_parts

FUSSY = "tests.support_bots:FussyBot"  # LengthBot, but raises on any batch holding "boom"
LIMITS = DecodeLimits(max_asset_bytes=2**26, max_image_pixels=50_000_000, max_text_bytes=2**20)
SERVER_MAX_PIXELS = 2_000_000  # the scene-text server's own limit, below the client's default


# the serving process


@dataclass
class Served:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines() if line.startswith("{")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTBOT_", "SAGEMAKER_"))}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


def start_server(log: Path, *args: str, port: int | None = None, **env: str) -> Served:
    """Runs `python -m bots.serve ARGS` and waits until /ping answers 200."""
    port = port or free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bots.serve", *args, *(["--port", str(port)] if "--port" not in args else [])],
            cwd=REPO, env=serve_env(**env), stdout=out, stderr=subprocess.STDOUT,
        )
    served = Served(process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"bots.serve exited {process.returncode}:\n{log.read_text()}")
        try:
            if request(served, "GET", "/ping")[0] == 200:
                return served
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"bots.serve did not answer /ping within 60 s:\n{log.read_text()}")


def stop_server(served: Served) -> None:
    """SIGTERM: the server must stop cleanly, exit 0."""
    served.process.send_signal(signal.SIGTERM)
    try:
        assert served.process.wait(timeout=15) == 0, served.log.read_text()
    finally:
        if served.process.poll() is None:
            served.process.kill()


def request(
    served: Served, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        all_headers = dict(headers or {})
        if content_type:
            all_headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory):
    served = start_server(tmp_path_factory.mktemp("fast") / "serve.log", "--bot", FUSSY, "--max-body-bytes", "1000000", "--host", "127.0.0.1")
    yield served
    stop_server(served)


@pytest.fixture(scope="module")
def sentiment_server(tmp_path_factory):
    served = start_server(tmp_path_factory.mktemp("sentiment") / "serve.log", "--bot", "sentiment", "--host", "127.0.0.1")
    yield served
    stop_server(served)


@pytest.fixture(scope="module")
def scene_text_server(tmp_path_factory):
    served = start_server(
        tmp_path_factory.mktemp("scene-text") / "serve.log", "--bot", "scene-text", "--host", "127.0.0.1",
        SPOTBOT_MAX_IMAGE_PIXELS=str(SERVER_MAX_PIXELS),
    )
    yield served
    stop_server(served)


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch, tmp_path):
    """Dummy credentials for clients SageMakerRuntime builds itself; no ~/.aws, no real AWS."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def sm_client(url: str):
    """A real boto3 sagemaker-runtime client pointed at a local process, with botocore's retries off."""
    return boto3.client(
        "sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


class CountingClient:
    """Wraps a boto3 client and records every invoke_endpoint call it passes on."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self._client.invoke_endpoint(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def sample_image(name: str) -> Image.Image:
    return decode_image((SAMPLES / "scene-text" / name).read_bytes(), LIMITS)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# the HTTP contract


def test_ping_routes_and_request_errors(fast_server):
    status, ping = request(fast_server, "GET", "/ping")
    assert status == 200 and ping["bot"] == "length" and ping["model_version"] == "length-1"

    texts = json.dumps({"instances": ["short", 5, "a text well over twenty characters", " \n "]}).encode()
    status, body = request(fast_server, "POST", "/invocations", texts, "application/json; charset=utf-8")
    assert status == 200 and body["model_version"] == "length-1"
    short, number, long, blank = body["predictions"]
    assert short == {"tags": [{"label": "short", "score": 1.0, "chars": 5}]}
    assert long["tags"][0]["label"] == "long"
    assert number == {"error": "instance must be a string, not int"}  # a bad instance fails alone
    assert blank == {"error": "text file holds only white space"}

    status, body = request(fast_server, "POST", "/invocations", b'{"instances": ["unclosed', "application/json")
    assert status == 400 and body["error"].startswith("body is not valid JSON") and body["code"] == "ValidationError"
    status, body = request(fast_server, "POST", "/invocations", b'{"texts": []}', "application/json")
    assert status == 400 and '"instances"' in body["error"]
    status, body = request(fast_server, "POST", "/invocations", b'{"instances": "abc"}', "application/json")
    assert status == 400 and "must be a list" in body["error"]
    status, body = request(fast_server, "POST", "/invocations", b"a,b\n", "text/csv")
    assert status == 415 and "'text/csv' is not accepted" in body["error"] and "send application/json" in body["error"]
    status, body = request(fast_server, "POST", "/invocations", wire.encode_binary_batch([b"hi"]), wire.IMAGE_BATCH)
    assert status == 415  # a text bot takes JSON only
    status, body = request(fast_server, "POST", "/invocations", b"{}", None)
    assert status == 415 and "(none)" in body["error"]
    status, body = request(fast_server, "POST", "/invocations", texts, "application/json", {"Accept": "text/csv"})
    assert status == 406
    assert request(fast_server, "GET", "/invocations")[0] == 405
    assert request(fast_server, "GET", "/nope")[0] == 404
    assert request(fast_server, "POST", "/ping", b"{}", "application/json")[0] == 404

    # over --max-body-bytes: refused from Content-Length, before the body is read
    conn = http.client.HTTPConnection("127.0.0.1", fast_server.port, timeout=30)
    conn.putrequest("POST", "/invocations")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", "1000001")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and "above the 1000000-byte limit" in json.loads(response.read())["error"]
    conn.close()


def test_boto3_reaches_the_server_on_the_endpoints_path(fast_server):
    """botocore posts InvokeEndpoint to /endpoints/{EndpointName}/invocations, which the server also routes."""
    model = sm_client(fast_server.url).meta.service_model.operation_model("InvokeEndpoint")
    assert model.http == {"method": "POST", "requestUri": "/endpoints/{EndpointName}/invocations"}

    client = sm_client(fast_server.url)
    response = client.invoke_endpoint(
        EndpointName="my-endpoint", ContentType="application/json", Accept="application/json",
        Body=wire.join_json_instances([wire.encode_text_instance("hello")]),
    )
    assert json.loads(response["Body"].read())["predictions"] == [{"tags": [{"label": "short", "score": 1.0, "chars": 5}]}]
    assert response["ContentType"] == "application/json"
    # our error bodies carry "code" and "message", so botocore raises a meaningful ClientError
    with pytest.raises(ClientError) as raised:
        client.invoke_endpoint(EndpointName="my-endpoint", ContentType="text/csv", Body=b"a,b")
    assert raised.value.response["Error"]["Code"] == "UnsupportedMediaType"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 415
    assert "not accepted" in raised.value.response["Error"]["Message"]

    lines = [line for line in fast_server.log_lines() if line.get("path") == "/endpoints/my-endpoint/invocations"]
    assert [(line["method"], line["status"], line["items"]) for line in lines] == [("POST", 200, 1), ("POST", 415, 0)]
    assert all(isinstance(line["ms"], float) for line in lines)


def test_image_requests_binary_and_base64(scene_text_server):
    blank = png_bytes(Image.new("RGB", (64, 32), "white"))
    corrupt = b"\xff\xd8\xff\xe0 definitely not a jpeg"
    status, body = request(scene_text_server, "POST", "/invocations", wire.encode_binary_batch([blank, corrupt, b""]), wire.IMAGE_BATCH)
    assert status == 200
    ok, bad, empty = body["predictions"]
    assert ok == {"tags": []} and "error" in bad and empty == {"error": "empty file (0 bytes)"}

    instances = [{"b64": "not base64!"}, "a string", {"b64": __import__("base64").b64encode(blank).decode()}]
    status, body = request(scene_text_server, "POST", "/invocations", json.dumps({"instances": instances}).encode(), "application/json")
    assert status == 200
    assert "not valid base64" in body["predictions"][0]["error"]
    assert '{"b64"' in body["predictions"][1]["error"]
    assert body["predictions"][2] == {"tags": []}

    truncated = wire.encode_binary_batch([blank, blank])[:-10]
    status, body = request(scene_text_server, "POST", "/invocations", truncated, wire.IMAGE_BATCH)
    assert status == 400 and "says 2 items but item 1 is truncated" in body["error"]
    extra = wire.encode_binary_batch([blank]) + b"junk"
    status, body = request(scene_text_server, "POST", "/invocations", extra, wire.IMAGE_BATCH)
    assert status == 400 and "4 bytes follow the last one" in body["error"]


# SageMakerRuntime against the real process


def test_sentiment_through_the_endpoint_matches_in_process(sentiment_server):
    runtime = SageMakerRuntime("spotbot-sentiment", "sentiment", client=sm_client(sentiment_server.url))
    current = open_model_registry(Settings())[0].current("sentiment")  # what the server loaded too
    local = InProcessRuntime.load("sentiment", current.path)
    assert (runtime.bot_name, runtime.input_kind, runtime.batch_size) == ("sentiment", "text", 32)
    texts = [decode_text((SAMPLES / "reviews" / name).read_bytes(), LIMITS) for name in ("review-01.txt", "review-02.txt")]
    remote = runtime.predict(texts)
    assert remote == local.predict(texts)
    assert [tags[0].label for tags in remote] == ["positive", "negative"]
    assert runtime.model_version == local.model_version == CURRENT_SENTIMENT
    assert runtime.predict([]) == []


def test_scene_text_through_the_endpoint_matches_in_process(scene_text_server, expected):
    runtime = SageMakerRuntime("spotbot-scene-text", "scene-text", client=sm_client(scene_text_server.url))
    local = InProcessRuntime.load("scene-text")
    images = [sample_image("poster.png"), sample_image("shop-sign.png")]
    remote = runtime.predict(images)  # sent as PNG: the endpoint sees exactly these pixels
    in_process = local.predict(images)
    assert [[t.text for t in tags] for tags in remote] == [[t.text for t in tags] for tags in in_process]
    assert [t.text.replace(" ", "") for t in remote[0]] == expected["scene-text"]["scene-text/poster.png"]
    for got, want in zip(remote, in_process, strict=True):
        for a, b in zip(got, want, strict=True):
            assert a.box == b.box and a.score == pytest.approx(b.score, abs=1e-3)
    assert runtime.model_version == local.model_version


def test_a_corrupt_image_raises_and_fails_alone(scene_text_server):
    runtime = SageMakerRuntime("spotbot-scene-text", "scene-text", client=sm_client(scene_text_server.url))
    blank = Image.new("RGB", (64, 32), "white")
    corrupt = b"\xff\xd8\xff\xe0 definitely not a jpeg"  # original file bytes are sent as they are
    with pytest.raises(BotInvocationError, match=r"1 of 3 assets failed at the endpoint: #1: "):
        runtime.predict([blank, corrupt, blank])
    # what the worker does next: each asset alone; only the corrupt one raises, with the endpoint's words
    assert runtime.predict([blank]) == [[]]
    with pytest.raises(BotInvocationError) as raised:
        runtime.predict([corrupt])
    assert not str(raised.value).startswith("1 of") and "image" in str(raised.value)


def run_shard(tmp_path: Path, source: Path, bot: str, runtime: SageMakerRuntime) -> tuple[Any, SQLiteTagIndex, Path]:
    """tag_shard over a local folder with the local index and output, and the given runtime."""
    settings = Settings(home=tmp_path / "home", workers=1)
    index = SQLiteTagIndex(settings.index_path)
    store, out = LocalAssetStore(source), tmp_path / "out"
    index.save_job(Job(job_id="remote", bot=bot, source=store.source, output=str(out), workers=1))
    add_assets(index, "remote", list(store.scan(runtime_file_types(bot))), shard_size=1000)
    work = ShardWork(job_id="remote", shard=0, bot=bot, source=store.source, output=str(out))
    result = tag_shard(work, index=index, store=store, output=LocalOutputStore(str(out)), runtime=runtime, settings=settings)
    return result, index, out / "remote"


def runtime_file_types(bot: str) -> tuple[str, ...]:
    from spotbot.bot import resolve_bot

    return resolve_bot(bot).file_types


def test_tag_shard_over_the_endpoint_fails_only_the_bad_texts(fast_server, tmp_path):
    source = tmp_path / "texts"
    source.mkdir()
    for i in range(7):
        (source / f"review-{i}.txt").write_text("好" * (5 + 5 * i), encoding="utf-8")
    (source / "review-3-boom.txt").write_text("boom", encoding="utf-8")  # the served bot raises on it
    (source / "empty.txt").write_bytes(b"")  # fails in the worker, never sent
    client = CountingClient(sm_client(fast_server.url))
    runtime = SageMakerRuntime("spotbot-length", FUSSY, client=client)
    assert runtime.model_version == "builtin"  # the class default, until the endpoint says otherwise

    result, index, job_dir = run_shard(tmp_path, source, FUSSY, runtime)
    try:
        assert (result.done, result.failed) == (7, 2)
        errors = {Path(t.asset).name: t.error for t in index.failed_tasks("remote")}
        assert errors == {
            "empty.txt": "empty file (0 bytes)",
            "review-3-boom.txt": "bot error: BotInvocationError: ValueError: cannot take this text",
        }
        records = read_parts(job_dir)
        assert len(records) == 7 and {r["model_version"] for r in records} == {"length-1"}
        local = InProcessRuntime.load("tests.support_bots:LengthBot")
        for record in records:
            assert record["tags"] == [t.model_dump(mode="json") for t in local.predict([record["text"]])[0]]
        assert index.counts("remote").done == 7
        # 8 texts sent in batches of 4: one clean batch, one with "boom" that raised, then its 4 texts alone
        assert len(client.calls) == 2 + 4
        assert all(call["ContentType"] == "application/json" and call["Accept"] == "application/json" for call in client.calls)
    finally:
        index.close()


def test_tag_shard_over_the_endpoint_with_images(scene_text_server, tmp_path, expected):
    source = tmp_path / "images"
    source.mkdir()
    shutil.copy(SAMPLES / "scene-text" / "poster.png", source / "poster.png")
    shutil.copy(SAMPLES / "scene-text" / "shop-sign.png", source / "shop-sign.png")
    (source / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")  # fails in the worker
    Image.new("L", (1500, 1500), 255).save(source / "big-blank.png")  # passes the worker, over the server's limit
    runtime = SageMakerRuntime("spotbot-scene-text", "scene-text", client=sm_client(scene_text_server.url))

    result, index, job_dir = run_shard(tmp_path, source, "scene-text", runtime)
    try:
        assert (result.done, result.failed) == (2, 2)
        errors = {Path(t.asset).name: t.error for t in index.failed_tasks("remote")}
        assert errors.keys() == {"corrupt.jpg", "big-blank.png"}
        assert "image" in errors["corrupt.jpg"] and not errors["corrupt.jpg"].startswith("bot error")
        assert errors["big-blank.png"].startswith("bot error: BotInvocationError: image is 1500x1500")
        assert "above max_image_pixels" in errors["big-blank.png"]
        texts = {Path(r["asset"]).name: [t["text"].replace(" ", "") for t in r["tags"]] for r in read_parts(job_dir)}
        assert texts == {
            "poster.png": expected["scene-text"]["scene-text/poster.png"],
            "shop-sign.png": expected["scene-text"]["scene-text/shop-sign.png"],
        }
        statuses = {Path(t.asset).name: t.status for t in index.tasks_in_shard("remote", 0)}
        assert statuses["poster.png"] is TaskStatus.DONE
    finally:
        index.close()


def test_a_batch_is_split_to_fit_the_payload_limit(fast_server):
    texts = [f"{i}" + "好" * 300 for i in range(10)]  # ~900 bytes each as JSON
    whole = CountingClient(sm_client(fast_server.url))
    expected_tags = SageMakerRuntime("e", FUSSY, client=whole).predict(texts)
    assert len(whole.calls) == 1

    split = CountingClient(sm_client(fast_server.url))
    runtime = SageMakerRuntime("e", FUSSY, client=split, max_payload_bytes=2500)
    assert runtime.predict(texts) == expected_tags
    sizes = [len(call["Body"]) for call in split.calls]
    assert len(sizes) == 5 and max(sizes) <= 2500, sizes  # two texts a request

    with pytest.raises(BotInvocationError, match="above the endpoint payload limit of 2,500 bytes"):
        runtime.predict(["好" * 1000])
    assert len(split.calls) == 5  # nothing was sent for it


def test_images_go_as_png_or_as_jpeg_when_png_is_too_large(scene_text_server):
    rng = np.random.default_rng(0)
    gradient = np.tile(np.linspace(0, 255, 600), (600, 1))[:, :, None] + rng.normal(0, 3, (600, 600, 3))
    noisy = Image.fromarray(gradient.clip(0, 255).astype("uint8"))  # PNG ~0.6 MB, JPEG q95 well under 300 kB
    client = CountingClient(sm_client(scene_text_server.url))
    SageMakerRuntime("e", "scene-text", client=client).predict([noisy])
    SageMakerRuntime("e", "scene-text", client=client, max_payload_bytes=300_000).predict([noisy, noisy])
    png_call, jpeg_call = client.calls
    assert png_call["ContentType"] == wire.IMAGE_BATCH
    assert wire.decode_binary_batch(png_call["Body"])[0].startswith(b"\x89PNG")
    items = wire.decode_binary_batch(jpeg_call["Body"])
    assert len(items) == 2 and all(item.startswith(b"\xff\xd8") for item in items) and len(jpeg_call["Body"]) <= 300_000


# retries


class FlakyProxy:
    """A local HTTP server that answers with the given errors first, then passes requests on to upstream."""

    def __init__(self, upstream: Served, failures: list[tuple[int, str]]) -> None:
        self.failures = list(failures)
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.requests += 1
                if proxy.failures:
                    status, code = proxy.failures.pop(0)
                    payload = json.dumps({"message": f"{code} from the flaky proxy"}).encode()
                    headers = {"x-amzn-ErrorType": code, "Content-Type": "application/json"}
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=30)
                    conn.request("POST", self.path, body=body, headers={"Content-Type": self.headers["Content-Type"]})
                    response = conn.getresponse()
                    status, payload = response.status, response.read()
                    headers = {"Content-Type": response.getheader("Content-Type")}
                    conn.close()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    "status, code", [(429, "ThrottlingException"), (429, "ModelNotReadyException"), (503, "ServiceUnavailable")]
)
def test_throttling_is_retried_with_backoff(fast_server, status, code):
    delays: list[float] = []
    with FlakyProxy(fast_server, [(status, code)] * 3) as proxy:
        # the runtime builds its own boto3 client here: its botocore retries must be off (one request per attempt)
        runtime = SageMakerRuntime(
            "e", FUSSY, endpoint_url=proxy.url, region="us-east-1", max_attempts=4, backoff_base_s=0.01, sleep=delays.append
        )
        assert runtime.predict(["hello"]) == [[runtime_tag("hello")]]
        assert proxy.requests == 4
    assert len(delays) == 3 and all(0 <= d <= 0.01 * 2**i for i, d in enumerate(delays))


def test_retries_give_up_after_max_attempts_and_other_errors_are_not_retried(fast_server):
    with FlakyProxy(fast_server, [(429, "ThrottlingException")] * 5) as proxy:
        runtime = SageMakerRuntime("e", FUSSY, endpoint_url=proxy.url, region="us-east-1", max_attempts=3, backoff_base_s=0.001)
        with pytest.raises(EndpointError, match=r"ThrottlingException: .* \(gave up after 3 attempts\)"):
            runtime.predict(["hello"])
        assert proxy.requests == 3
    with FlakyProxy(fast_server, [(400, "ValidationError")]) as proxy:
        runtime = SageMakerRuntime("e", FUSSY, endpoint_url=proxy.url, region="us-east-1", backoff_base_s=0.001)
        with pytest.raises(EndpointError, match="ValidationError"):
            runtime.predict(["hello"])
        assert proxy.requests == 1


def runtime_tag(text: str):
    return InProcessRuntime.load("tests.support_bots:LengthBot").predict([text])[0][0]


# the SageMaker way of starting, and stopping


def test_started_the_sagemaker_way_and_stopped_gracefully(tmp_path):
    port = free_port()
    served = start_server(
        tmp_path / "serve.log", "serve", "--host", "127.0.0.1", port=port,
        SPOTBOT_BOT="tests.support_bots:SlowLengthBot", SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_MODEL_SERVER_WORKERS="4",
    )
    try:
        answers: list[tuple[int, Any]] = []
        texts = json.dumps({"instances": [f"text {i}" for i in range(50)]}).encode()  # 50 x 20 ms in the model
        slow = threading.Thread(target=lambda: answers.append(request(served, "POST", "/invocations", texts, "application/json")))
        slow.start()
        time.sleep(0.4)
        served.process.send_signal(signal.SIGTERM)  # while that request is in flight
        slow.join(timeout=15)
        assert served.process.wait(timeout=15) == 0
    finally:
        if served.process.poll() is None:
            served.process.kill()
    status, body = answers[0]
    assert status == 200 and len(body["predictions"]) == 50  # the in-flight request was finished
    events = [line.get("event") for line in served.log_lines()]
    assert events[0] == "listening" and events[-1] == "stopped"
    with pytest.raises(OSError):
        request(served, "GET", "/ping")


def test_a_bot_that_cannot_load_never_listens(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "bots.serve", "--bot", "tests.support_bots:BrokenLoadBot", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=REPO, env=serve_env(), capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 1 and "model weights missing" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "bots.serve", "--bot", "nope"], cwd=REPO, env=serve_env(), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "unknown bot 'nope'" in run.stderr
    run = subprocess.run([sys.executable, "-m", "bots.serve", "serve"], cwd=REPO, env=serve_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "SPOTBOT_BOT" in run.stderr


def test_sagemaker_model_dir_is_used_only_when_it_holds_something(tmp_path):
    assert default_model_dir(tmp_path / "missing") is None
    (tmp_path / "empty").mkdir()
    assert default_model_dir(tmp_path / "empty") is None
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text("{}")
    assert default_model_dir(tmp_path / "model") == tmp_path / "model"
