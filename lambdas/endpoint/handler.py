"""The bot endpoint steps: parse the state input, call spotbot.services.endpoints, hand back its output.

Input `{"action": "ensure", "job_id", "bot", "model_version"}` -> `{"runtime", "endpoint_name", "status"}`;
`{"action": "describe", "endpoint_name"}` -> `{"endpoint_name", "status", "failure_reason"?}`;
`{"action": "release", "job_id", "endpoint_name"}` -> `{"released", "in_use_by"}`. The state machine
catches UnknownBotError, ModelError and EndpointRequestError by name, and retries EndpointBusyError.
"""

import functools
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from spotbot.services.endpoints import (
    BotEndpoints,
    DescribeEndpoint,
    EnsureEndpoint,
    ReleaseEndpoint,
    parse_request,
)
from spotbot.settings import Settings

logger = Logger(service="spotbot-endpoint")
copy_config_to_registered_loggers(source_logger=logger, include={"spotbot"})  # spotbot's lines as JSON too


@functools.lru_cache(maxsize=4)
def _connect(settings_json: str) -> BotEndpoints:
    """The SageMaker client and the index, built once per container (keyed by the settings they come from)."""
    return BotEndpoints.connect(
        Settings.model_validate_json(settings_json)
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_request(event)
    logger.append_keys(action=request.action, job_id=getattr(request, "job_id", None))  # describe has none
    endpoints = _connect(Settings().model_dump_json())
    match request:
        case EnsureEndpoint():
            output = endpoints.ensure(request.job_id, request.bot, request.model_version).as_output()
        case DescribeEndpoint():
            output = endpoints.describe(request.endpoint_name)
        case ReleaseEndpoint():
            output = endpoints.release(request.job_id, request.endpoint_name).as_output()
    logger.info("endpoint step done", extra=output)
    return output
