"""The bot runtime that runs the model behind a SageMaker real-time endpoint (or a local `bots.serve`).

`SageMakerRuntime(endpoint_name, bot_spec)` implements BotRuntime: the worker hands it decoded
assets, it sends them with `sagemaker-runtime` InvokeEndpoint in the wire format of spotbot/adapters/sagemaker/wire.py
and returns the tags. The endpoint must serve the same bot (`python -m bots.serve --bot SPEC`).

- bot_name, input_kind and batch_size come from the bot class (resolve_bot(bot_spec)); the bot's
  code is imported but no model is loaded. model_version starts as the class's
  default_model_version() and is replaced by the `model_version` the endpoint reports in each
  response body, so records name the model that actually tagged them. (The body, not a header:
  SageMaker does not pass a container's own response headers through to the caller.)
- Images: the worker hands decoded RGB PIL images, not the file's bytes, so each is re-encoded:
  PNG (lossless, so the endpoint sees exactly the pixels an in-process bot would, compress level 1
  for speed), or JPEG quality 95 without chroma subsampling when the PNG alone would not fit in
  max_payload_bytes (lossy, so results may differ slightly from in process; photos:
  a 12-megapixel PNG is ~20 MB, over SageMaker's 6 MB limit). An item given as bytes (an encoded
  file) is sent as it is. Texts go as JSON strings; bytes bots' items as they are.
- A batch whose request would exceed max_payload_bytes is split over several invocations. An item
  that does not fit even alone fails before anything is sent.
- Throttling (ThrottlingException, ModelNotReadyException, HTTP 429) and unavailability (503,
  connection errors) are retried up to max_attempts in all, with exponential backoff and full
  jitter. botocore's own retries are switched off on the client built here, so max_attempts is the
  real count; a client you pass in keeps its own retry config (set total_max_attempts=1 on it).
- Other endpoint failures (other ClientErrors such as ModelError or ValidationError, read
  timeouts, a response that is not a predictions document) raise EndpointError; an instance the
  endpoint could not tag raises BotInvocationError (see predict). Both are RuntimeErrors.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, EndpointConnectionError

from spotbot.adapters.sagemaker import wire
from spotbot.services.bots import resolve_bot
from spotbot.domain import Tag
from spotbot.ports import RuntimeUnavailableError

SAGEMAKER_MAX_PAYLOAD = 6_000_000  # bytes: SageMaker real-time InvokeEndpoint request limit
DEFAULT_MAX_PAYLOAD = 5_500_000  # below SAGEMAKER_MAX_PAYLOAD: room for the JSON envelope and headers
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "ModelNotReadyException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
RETRYABLE_STATUS = frozenset({429, 503})


class BotInvocationError(RuntimeError):
    """The endpoint could not tag one or more instances of a batch; the message names why."""


class EndpointError(RuntimeUnavailableError):
    """The endpoint call failed as a whole (not found, throttled past max_attempts, bad response)."""


class SageMakerRuntime:
    def __init__(
        self,
        endpoint_name: str,
        bot_spec: str,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        batch_size: int | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        max_attempts: int = 6,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        bot_class = resolve_bot(bot_spec)
        self.endpoint_name = endpoint_name
        self.bot_name: str = bot_class.name
        self.input_kind: str = bot_class.input_kind
        self.reads_text_layer: bool = bot_class.reads_text_layer  # text-layer pages never reach the endpoint
        self.batch_size: int = batch_size or bot_class.batch_size
        try:
            self.model_version: str = bot_class.default_model_version()
        except Exception:  # noqa: BLE001 - e.g. the model's package is not installed on this client
            self.model_version = "unknown"
        self.content_type = wire.request_content_type(self.input_kind)
        self.max_payload_bytes = max_payload_bytes
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self._client = client if client is not None else _make_client(endpoint_url, region)

    # BotRuntime

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        """Tags per item, in order.

        Raises BotInvocationError when the endpoint reports an error for ANY instance, even though
        it tagged the others. That is on purpose: the worker's _predict_batch, when predict raises,
        calls predict again with each asset alone, so the error lands on the asset that caused it
        and the rest get tagged (at the cost of invoking them again). BotRuntime has no way to
        return per-asset errors today.
        """
        if not batch:
            return []
        items = [self._encode(item) for item in batch]  # raises before anything is sent if one cannot fit
        results: list[list[Tag]] = []
        for start, end in self._chunks([len(item) for item in items]):
            results.extend(self._invoke_chunk(items[start:end], first=start, alone=len(batch) == 1))
        return results

    # encoding and splitting

    def _item_limit(self) -> int:
        overhead = wire.JSON_OVERHEAD if self.content_type == wire.JSON else wire.BINARY_OVERHEAD + wire.BINARY_ITEM_OVERHEAD
        return self.max_payload_bytes - overhead

    def _encode(self, item: Any) -> bytes:
        """One item as it goes on the wire: a JSON string for texts, file bytes for the binary batch."""
        limit = self._item_limit()
        if self.input_kind == "text":
            if not isinstance(item, str):
                raise BotInvocationError(f"text bot {self.bot_name} was handed a {type(item).__name__}, not str")
            encoded = wire.encode_text_instance(item)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            encoded = bytes(item)
        elif self.input_kind == "image":
            encoded = _encode_image(item, limit)
        else:
            raise BotInvocationError(f"bytes bot {self.bot_name} was handed a {type(item).__name__}, not bytes")
        if len(encoded) > limit:
            raise BotInvocationError(
                f"asset is {len(encoded):,} bytes on the wire, above the endpoint payload limit of "
                f"{self.max_payload_bytes:,} bytes (SageMaker real-time caps requests at 6 MB)"
            )
        return encoded

    def _chunks(self, sizes: list[int]) -> list[tuple[int, int]]:
        """[start, end) ranges of items whose request fits in max_payload_bytes, in order."""
        size_of = wire.json_request_size if self.content_type == wire.JSON else wire.binary_request_size
        chunks, start = [], 0
        for end in range(1, len(sizes) + 1):
            if end - start > 1 and size_of(sizes[start:end]) > self.max_payload_bytes:
                chunks.append((start, end - 1))
                start = end - 1
        chunks.append((start, len(sizes)))
        return chunks

    def _body(self, items: list[bytes]) -> bytes:
        return wire.join_json_instances(items) if self.content_type == wire.JSON else wire.encode_binary_batch(items)

    # invoking

    def _invoke_chunk(self, items: list[bytes], first: int, alone: bool) -> list[list[Tag]]:
        payload = self._invoke(self._body(items))
        try:
            predictions = wire.decode_predictions(payload, expected=len(items))
        except wire.WireError as error:
            raise EndpointError(f"endpoint {self.endpoint_name}: {error}") from None
        if predictions.model_version:
            self.model_version = predictions.model_version
        errors = [(first + i, e.message) for i, e in enumerate(predictions.entries) if isinstance(e, wire.InstanceError)]
        if errors:
            if alone:
                raise BotInvocationError(errors[0][1])  # the asset's own error, as the worker records it
            listed = "; ".join(f"#{i}: {message}" for i, message in errors)
            raise BotInvocationError(f"{len(errors)} of {len(items)} assets failed at the endpoint: {listed}")
        return [entry for entry in predictions.entries if not isinstance(entry, wire.InstanceError)]

    def _invoke(self, body: bytes) -> bytes:
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._client.invoke_endpoint(
                    EndpointName=self.endpoint_name,
                    ContentType=self.content_type,
                    Accept=wire.JSON,
                    Body=body,
                )
                return response["Body"].read()
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                message = error.response.get("Error", {}).get("Message", "") or str(error)
                retryable = code in RETRYABLE_CODES or status in RETRYABLE_STATUS
                failure = f"endpoint {self.endpoint_name}: {code or status}: {message}"
            except (EndpointConnectionError, ConnectionClosedError) as error:
                retryable, failure = True, f"endpoint {self.endpoint_name}: {error}"
            except BotoCoreError as error:  # read timeout, no credentials, ...: not retried here
                raise EndpointError(f"endpoint {self.endpoint_name}: {type(error).__name__}: {error}") from error
            if not retryable:
                raise EndpointError(failure)
            if attempt == self.max_attempts:
                raise EndpointError(f"{failure} (gave up after {attempt} attempts)")
            self._sleep(random.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))))
        raise AssertionError("unreachable")


def _encode_image(image: Any, limit: int) -> bytes:
    """PNG (lossless); JPEG quality 95 when the PNG is over limit bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    if buffer.tell() <= limit:
        return buffer.getvalue()
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def _make_client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},  # SageMakerRuntime retries itself
        connect_timeout=10,
        read_timeout=70,  # SageMaker gives a container 60 s to answer an invocation
    )
    return boto3.client("sagemaker-runtime", region_name=region, endpoint_url=endpoint_url, config=config)
