"""Checks on the raw proxy event that Powertools' validation runs too late (or too trustingly) to make.

Powertools parses the body before any middleware of ours runs, and some bodies make it raise what
its own error handling does not catch (a multipart type without a boundary, JSON nested until the
parser recurses out, a base64 body that is not base64 or not UTF-8). So the Lambda entry point runs
`refusal(event)` first: it answers such a request with a 4xx naming what was wrong, or returns None
and the event (its body decoded to text) goes on to the resolver.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

MAX_JSON_DEPTH = 32  # the deepest a valid body nests is 3 (a bot's file_types list inside the body)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_MEDIA_TYPE = re.compile(r"^application/(?:[a-z0-9.+-]+\+)?json$")


class Refused(Exception):
    """A request refused before routing: the status and the JSON answer's error and field."""

    def __init__(self, status: int, message: str, field: str = "body", detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.detail = detail or message


def proxy_answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A REST API proxy integration result, shaped as Powertools shapes its own."""
    all_headers = {"Content-Type": ["application/json"]} | {name: [value] for name, value in (headers or {}).items()}
    return {"statusCode": status, "multiValueHeaders": all_headers, "body": json.dumps(body), "isBase64Encoded": False}


def header(event: dict[str, Any], name: str) -> str | None:
    """A request header, case-insensitively (API Gateway keeps the client's spelling)."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def checked(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its body as checked text; raises Refused for a body no route can read."""
    if (event.get("httpMethod") or "").upper() not in BODY_METHODS:
        return event
    raw = event.get("body")
    content_type = header(event, "Content-Type")
    if raw in (None, "") and not content_type:
        return event  # no body at all: the route says whether it needs one
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if not JSON_MEDIA_TYPE.match(media_type):
        raise Refused(
            415,
            f"the body must be JSON: Content-Type is {content_type!r}, send application/json",
            field="header.Content-Type",
        )
    text = _text(raw or "", bool(event.get("isBase64Encoded")))
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise Refused(400, "the body is not valid JSON", detail=f"it nests {depth} levels deep; at most {MAX_JSON_DEPTH}")
    return event | {"body": text, "isBase64Encoded": False}


def _text(raw: str, is_base64: bool) -> str:
    if is_base64:
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as error:
            raise Refused(400, "the body is not valid base64", detail=f"the request says it is base64-encoded: {error}") from None
    else:
        data = raw.encode("utf-8", "surrogatepass")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(400, "the body is not UTF-8 text", detail=f"byte {error.start} is not UTF-8; JSON bodies are UTF-8") from None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in a JSON text, without parsing it (brackets inside strings do not count)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
