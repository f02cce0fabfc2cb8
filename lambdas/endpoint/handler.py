"""The bot endpoint steps: parse the state input, call spotbot.services.endpoints, hand back its output.

Input `{"action": "ensure", "job_id", "bot", "model_version", "tasks"?}` -> `{"runtime", "endpoint_name", "status"}`
(`tasks`: the scan's task count; 0 starts no endpoint); `{"action": "describe", "endpoint_name"}` ->
`{"endpoint_name", "status", "failure_reason"?}`; `{"action": "release", "job_id", "endpoint_name"?}` ->
`{"released", "in_use_by"}` (no endpoint_name: the one recorded on the job). The state machine
catches UnknownBotError, ModelError and EndpointRequestError by name, and retries EndpointBusyError.
"""

from typing import Any

from spotbot.adapters.wiring import open_bot_endpoints
from spotbot.entrypoints.steps import Step, parse_event, per_container
from spotbot.services.endpoints import (
    REQUEST,
    BotEndpoints,
    DescribeEndpoint,
    EndpointRequestError,
    EnsureEndpoint,
    ReleaseEndpoint,
)
from spotbot.settings import EndpointStepSettings

step = Step("spotbot-endpoint")
logger = step.logger


@per_container(EndpointStepSettings)
def _connect(settings: EndpointStepSettings) -> BotEndpoints:
    """The SageMaker and Step Functions clients and the index, built once per container."""
    return open_bot_endpoints(settings)


@step.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_event(REQUEST, event, step="endpoint", error=EndpointRequestError)
    logger.append_keys(action=request.action, job_id=getattr(request, "job_id", None))  # describe has none
    endpoints = _connect()
    match request:
        case EnsureEndpoint():
            output = endpoints.ensure(request.job_id, request.bot, request.model_version, tasks=request.tasks).as_output()
        case DescribeEndpoint():
            output = endpoints.describe(request.endpoint_name)
        case ReleaseEndpoint():
            output = endpoints.release(request.job_id, request.endpoint_name).as_output()
    logger.info("endpoint step done", extra=output)
    return output
