"""A Lambda custom runtime loop, so an image built for something else (the bots' serving image) can run a handler.

The Lambda Runtime API (AWS_LAMBDA_RUNTIME_API) hands out one invocation at a time: GET the next
event, POST the handler's answer or its error. `python -m spotbot.entrypoints.lambda_runtime
module:function` runs that loop; the function stack sets it as the image's entry point.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable
from typing import Any

VERSION = "2018-06-01"


class InvocationContext:
    """The part of Lambda's context object handlers here use."""

    def __init__(self, request_id: str, deadline_ms: int, function_name: str) -> None:
        self.aws_request_id, self._deadline_ms, self.function_name = request_id, deadline_ms, function_name

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def load_handler(spec: str) -> Callable[[Any, Any], Any]:
    """`package.module:function`, as the image's CMD names it."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"handler {spec!r} is not module:function")
    return getattr(importlib.import_module(module), name)


def _post(url: str, payload: Any, headers: dict[str, str] | None = None) -> None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers=headers or {})
    urllib.request.urlopen(request, timeout=30).close()


def _error(error: BaseException) -> dict[str, Any]:
    return {"errorMessage": str(error), "errorType": type(error).__name__,
            "stackTrace": traceback.format_exception(error)}  # fmt: skip


def serve(spec: str, api: str, *, invocations: int | None = None) -> None:
    """Runs the loop: forever, or for `invocations` events (tests)."""
    base = f"http://{api}/{VERSION}/runtime"
    try:
        handler = load_handler(spec)
    except Exception as error:  # noqa: BLE001 - reported to Lambda as an init error, then the process ends
        _post(f"{base}/init/error", _error(error), {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
        raise
    served = 0
    while invocations is None or served < invocations:
        with urllib.request.urlopen(f"{base}/invocation/next", timeout=None) as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline_ms = int(response.headers.get("Lambda-Runtime-Deadline-Ms", "0"))
            event = json.loads(response.read() or b"null")
        context = InvocationContext(request_id, deadline_ms, os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""))
        try:
            answer = handler(event, context)
        except Exception as error:  # noqa: BLE001 - the invocation fails, the runtime goes on
            _post(f"{base}/invocation/{request_id}/error", _error(error), {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
        else:
            _post(f"{base}/invocation/{request_id}/response", answer)
        served += 1


if __name__ == "__main__":  # pragma: no cover - the image's entry point
    serve(sys.argv[1], os.environ["AWS_LAMBDA_RUNTIME_API"])
