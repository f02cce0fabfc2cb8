"""The SageMaker inference container: any bot behind `GET /ping` and `POST /invocations`.

    python -m bots.serve --bot NAME [--port 8080] [--model-dir DIR] [--threads N] [--host 0.0.0.0]

NAME is a built-in bot ("scene-text") or module:Class, as for `spotbot tag`. The bot is loaded
before the server listens, so /ping answers (200) only once the model is ready. The wire format
is in spotbot/adapters/sagemaker/wire.py.

SageMaker contract:
- SageMaker starts the container as `<entrypoint> serve`: a leading `serve` argument is accepted
  and ignored. The bot then comes from SPOTBOT_BOT when --bot is not given.
- The port is --port, else SAGEMAKER_BIND_TO_PORT, else 8080.
- The model dir is --model-dir, else /opt/ml/model when it exists and is not empty (where SageMaker
  unpacks ModelDataUrl), else the current version in the model store (SPOTBOT_MODELS, then the
  packaged versions), else the bot's own default. Bots that take no model dir
  (scene-text) must then be deployed without model data.
- SAGEMAKER_MODEL_SERVER_WORKERS is ignored: one process serves, with a thread per connection;
  decoding runs in parallel, model calls are serialised by a lock (the bot uses --threads
  intra-op threads itself). Run more instances, not more workers, to scale.
- SageMaker calls POST /invocations. POST /endpoints/<name>/invocations is accepted too: it is the
  path boto3's `sagemaker-runtime` invoke_endpoint posts to, so a real boto3 client (and
  SageMakerRuntime) can talk to this process directly in tests and development.
- Request bodies over --max-body-bytes (env SPOTBOT_SERVE_MAX_BODY_BYTES, default 100 MiB) get 413.
  SageMaker real-time endpoints cap request payloads at 6 MB before they reach the container anyway;
  the larger cap matters for local use and batch transform.
- SIGTERM (and SIGINT) stop accepting requests, let in-flight ones finish (up to 30 s), and exit 0.

Decoding limits (max image pixels, max text bytes, text encodings) are the SPOTBOT_* settings,
read once at start-up. One JSON line per request goes to stderr: method, path, status, items, ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from spotbot.adapters.sagemaker import wire
from spotbot.ports.bot import Bot
from spotbot.services.bots import UnknownBotError, resolve_bot
from spotbot.services.decoding import AssetError, DecodeLimits, decode_asset, decode_text
from spotbot.domain import Tag
from spotbot.settings import Settings
from spotbot.adapters.wiring import open_model_registry
from spotbot.services.predicting import BotFailure, predict_each
from spotbot.services.shard import limits_from

SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
DEFAULT_MAX_BODY_BYTES = 100 * 2**20
DRAIN_SECONDS = 30.0
_INVOCATIONS = re.compile(r"^/(?:endpoints/[^/]+/)?invocations/?$")

log = logging.getLogger("spotbot.serve")


def default_model_dir(candidate: Path = SAGEMAKER_MODEL_DIR) -> Path | None:
    """SageMaker's model dir when it holds something, else None (the bot's packaged model)."""
    try:
        return candidate if candidate.is_dir() and any(candidate.iterdir()) else None
    except OSError:
        return None


@dataclass
class Reply:
    status: int
    body: bytes
    items: int = 0
    close: bool = False


class InferenceService:
    """Decodes a request, runs the bot under a lock, encodes the response. No HTTP here."""

    def __init__(self, bot: Bot, limits: DecodeLimits) -> None:
        self.bot = bot
        self.limits = limits
        # text arrives already decoded to str: re-encode it as UTF-8 and check it the way the worker does
        self.text_limits = DecodeLimits(limits.max_asset_bytes, limits.max_image_pixels, limits.max_text_bytes, ("utf-8",))
        self.accepted = wire.accepted_content_types(bot.input_kind)
        self._lock = threading.Lock()

    def invoke(self, content_type: str | None, body: bytes) -> Reply:
        kind = wire.media_type(content_type)
        if kind not in self.accepted:
            return _error(
                415,
                f"content type {kind or '(none)'!r} is not accepted by the {self.bot.input_kind} bot "
                f"{self.bot.name!r}; send {' or '.join(self.accepted)}",
                "UnsupportedMediaType",
            )
        try:
            if kind == wire.JSON:
                instances = wire.decode_json_instances(body)
                decoded = [self._decode_json_instance(item) for item in instances]
            else:
                decoded = [self._decode_bytes(item) for item in wire.decode_binary_batch(body)]
        except wire.WireError as error:
            return _error(400, str(error), "ValidationError")
        entries: list[list[Tag] | wire.InstanceError | None] = [
            d if isinstance(d, wire.InstanceError) else None for d in decoded
        ]
        ready = [(i, d) for i, d in enumerate(decoded) if not isinstance(d, wire.InstanceError)]
        for (i, _), result in zip(ready, self._predict([d for _, d in ready]), strict=True):
            entries[i] = result
        body = wire.encode_predictions(entries, self.bot.model_version)  # type: ignore[arg-type]
        return Reply(200, body, items=len(decoded))

    def _decode_json_instance(self, instance: Any) -> Any:
        try:
            if self.bot.input_kind == "text":
                if not isinstance(instance, str):
                    raise AssetError(f"instance must be a string, not {type(instance).__name__}")
                try:
                    data = instance.encode("utf-8")
                except UnicodeEncodeError as error:
                    raise AssetError(f"text is not valid Unicode: {error.reason} at offset {error.start}") from None
                return decode_text(data, self.text_limits)
            return self._decode_bytes(wire.b64_instance_bytes(instance))
        except (AssetError, ValueError) as error:
            return wire.InstanceError(str(error))

    def _decode_bytes(self, data: bytes) -> Any:
        try:
            return decode_asset(data, self.bot.input_kind, self.limits)  # type: ignore[arg-type]
        except AssetError as error:
            return wire.InstanceError(str(error))

    def _predict(self, batch: list[Any]) -> list[list[Tag] | wire.InstanceError]:
        """Tags per instance; if the bot fails on the batch, each instance is tried alone (as the worker does)."""
        return [
            wire.InstanceError(tags.error) if isinstance(tags, BotFailure) else tags
            for tags in predict_each(self._predict_locked, batch, bot_name=self.bot.name)
        ]

    def _predict_locked(self, batch: list[Any]) -> list[Any]:
        with self._lock:
            return self.bot.predict(batch)


def _error(status: int, message: str, code: str, close: bool = False) -> Reply:
    return Reply(status, wire.error_body(message, code), close=close)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold up exit; in-flight requests are drained
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: InferenceService, max_body_bytes: int) -> None:
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.in_flight = 0
        self.idle = threading.Condition()
        super().__init__(address, _Handler)

    def drain(self, timeout: float) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.in_flight == 0, timeout=timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: boto3 and the SageMaker front end reuse connections
    server_version = "spotbot-serve"
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._post)

    def _get(self) -> Reply:
        path = urlsplit(self.path).path
        if path == "/ping":
            service = self.server.service
            body = {"status": "healthy", "bot": service.bot.name, "model_version": service.bot.model_version}
            return Reply(200, json.dumps(body).encode())
        if _INVOCATIONS.match(path):
            return _error(405, "invocations take POST", "MethodNotAllowed")
        return _error(404, f"no route {path}: use GET /ping or POST /invocations", "NotFound")

    def _post(self) -> Reply:
        path = urlsplit(self.path).path
        if not _INVOCATIONS.match(path):
            return _error(404, f"no route {path}: use POST /invocations", "NotFound", close=True)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _error(411, "chunked bodies are not accepted: send Content-Length", "LengthRequired", close=True)
        try:
            length = int(self.headers.get("Content-Length", ""))
            if length < 0:
                raise ValueError
        except ValueError:
            return _error(411, "a Content-Length header is required", "LengthRequired", close=True)
        if length > self.server.max_body_bytes:
            return _error(
                413,
                f"request body is {length} bytes, above the {self.server.max_body_bytes}-byte limit "
                "(SPOTBOT_SERVE_MAX_BODY_BYTES); send smaller batches",
                "PayloadTooLarge",
                close=True,
            )
        accept = wire.media_type(self.headers.get("Accept"))
        if accept not in ("", "*/*", "application/*", wire.JSON):
            return _error(406, f"responses are {wire.JSON}, not {accept!r}", "NotAcceptable", close=True)
        body = self.rfile.read(length)
        if len(body) != length:
            return _error(400, f"body ended after {len(body)} of {length} bytes", "ValidationError", close=True)
        return self.server.service.invoke(self.headers.get("Content-Type"), body)

    def _handle(self, route: Any) -> None:
        started = time.perf_counter()
        with self.server.idle:
            self.server.in_flight += 1
        reply = Reply(500, b"")
        try:
            try:
                reply = route()
            except Exception as error:  # noqa: BLE001 - a server bug answers 500, the process stays up
                log.exception("request failed")
                reply = _error(500, f"internal error: {type(error).__name__}: {error}", "InternalFailure", close=True)
            self.send_response(reply.status)
            self.send_header("Content-Type", wire.JSON)
            self.send_header("Content-Length", str(len(reply.body)))
            if reply.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(reply.body)
        finally:
            with self.server.idle:
                self.server.in_flight -= 1
                self.server.idle.notify_all()
            line = {
                "method": self.command,
                "path": urlsplit(self.path).path,
                "status": reply.status,
                "items": reply.items,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
            log.info(json.dumps(line))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - our own JSON line replaces it
        pass


def make_server(service: InferenceService, host: str, port: int, max_body_bytes: int) -> _Server:
    return _Server((host, port), service, max_body_bytes)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bots.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["serve"], help="ignored: SageMaker starts the container with 'serve'")
    parser.add_argument("--bot", default=os.environ.get("SPOTBOT_BOT"), help="built-in bot or module:Class (env SPOTBOT_BOT)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument(
        "--port", type=int, default=_env_int("SAGEMAKER_BIND_TO_PORT", 8080), help="default SAGEMAKER_BIND_TO_PORT or 8080"
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="default /opt/ml/model when not empty, else the bot's own")
    parser.add_argument("--threads", type=int, default=None, help="threads the model may use")
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=_env_int("SPOTBOT_SERVE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        help="larger requests get 413 (env SPOTBOT_SERVE_MAX_BODY_BYTES, default 100 MiB)",
    )
    args = parser.parse_args(argv)
    if not args.bot:
        parser.error("give the bot with --bot NAME or the SPOTBOT_BOT environment variable")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parse_args(argv)
    try:
        bot_class = resolve_bot(args.bot)
    except UnknownBotError as error:
        log.error(json.dumps({"event": "error", "error": str(error)}))
        return 2
    model_dir = args.model_dir if args.model_dir is not None else default_model_dir()
    started = time.perf_counter()
    bot = bot_class()
    try:
        if model_dir is None:  # the same version a local job or an in-container worker would take
            current = open_model_registry(Settings())[0].current(bot_class.name)
            model_dir = current.path if current else None
        bot.load(model_dir, threads=args.threads)
    except Exception as error:  # noqa: BLE001 - say why and exit: SageMaker marks the endpoint failed
        log.error(json.dumps({"event": "error", "error": f"cannot load bot {args.bot}: {type(error).__name__}: {error}"}))
        return 1
    service = InferenceService(bot, limits_from(Settings()))
    server = make_server(service, args.host, args.port, args.max_body_bytes)

    def stop(signum: int, _frame: Any) -> None:
        # shutdown() waits for serve_forever to return, so it cannot run on the thread serving
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        json.dumps(
            {
                "event": "listening",
                "bot": bot.name,
                "model_version": bot.model_version,
                "model_dir": str(model_dir) if model_dir else None,
                "host": args.host,
                "port": server.server_address[1],
                "load_ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        drained = server.drain(DRAIN_SECONDS)
        server.server_close()
        log.info(json.dumps({"event": "stopped", "drained": drained}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
