"""The Lambda custom runtime loop the watch consumer's image runs (spotbot.entrypoints.lambda_runtime)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from spotbot.entrypoints.lambda_runtime import load_handler, serve

EVENTS = [{"n": 2}, {"n": "boom"}]


def double(event: dict[str, Any], context: Any) -> dict[str, Any]:
    assert context.get_remaining_time_in_millis() > 0
    return {"doubled": event["n"] * 2, "request": context.aws_request_id} if isinstance(event["n"], int) else 1 / 0


class _RuntimeApi(BaseHTTPRequestHandler):
    posted: list[tuple[str, Any]] = []
    pending: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        body = json.dumps(self.pending.pop(0)).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", f"req-{len(self.pending)}")
        self.send_header("Lambda-Runtime-Deadline-Ms", "99999999999999")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.posted.append((self.path, json.loads(body)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def runtime_api():
    _RuntimeApi.posted, _RuntimeApi.pending = [], [dict(e) for e in EVENTS]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RuntimeApi)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_each_invocation_posts_its_answer_or_its_error(runtime_api):
    serve(f"{__name__}:double", runtime_api, invocations=2)
    (ok_path, ok), (error_path, error) = _RuntimeApi.posted
    assert ok_path == "/2018-06-01/runtime/invocation/req-1/response" and ok == {"doubled": 4, "request": "req-1"}
    assert error_path == "/2018-06-01/runtime/invocation/req-0/error" and error["errorType"] == "ZeroDivisionError"


def test_a_handler_that_cannot_load_is_an_init_error(runtime_api):
    with pytest.raises(ModuleNotFoundError):
        serve("no_such_module:handler", runtime_api, invocations=1)
    assert [path for path, _ in _RuntimeApi.posted] == ["/2018-06-01/runtime/init/error"]
    with pytest.raises(ValueError, match="module:function"):
        load_handler("spotbot.entrypoints.watch_consumer.handler")


def test_the_consumer_handler_loads_by_the_name_the_image_gives():
    from spotbot.entrypoints.watch_consumer import handler

    assert load_handler("spotbot.entrypoints.watch_consumer:handler") is handler
