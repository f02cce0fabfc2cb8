"""The "Finalize" step: parse the state input, call spotbot.services.finalize, hand back its output.

Input `{"job_id", "output", "error": null | {"Error", "Cause"}}` (the error a Catch caught, on the
failure path); output `{"job_id", "status", "counts", "summary", "error"}`.
"""

import functools
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from spotbot.services.finalize import FinalizeRequest, finalize_job
from spotbot.settings import Settings
from spotbot.adapters.wiring import open_cloud_index, open_output_store

logger = Logger(service="spotbot-finalize")
copy_config_to_registered_loggers(source_logger=logger, include={"spotbot"})  # spotbot's lines as JSON too


@functools.lru_cache(maxsize=4)
def _connect(settings_json: str) -> tuple[Settings, Any]:
    """The index, built once per container (keyed by the settings it comes from)."""
    settings = Settings.model_validate_json(settings_json)
    return settings, open_cloud_index(settings)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = FinalizeRequest.model_validate(event)
    logger.append_keys(job_id=request.job_id)
    settings, index = _connect(Settings().model_dump_json())
    finalized = finalize_job(index, request, lambda output: open_output_store(output, settings))
    return finalized.as_output()
