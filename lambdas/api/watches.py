"""The /watches routes of the job API (issue 12): subscribe a prefix, see its figures, unsubscribe.

A Powertools Router, included by lambdas/api/handler.py; the work is spotbot.services.cloud_watches'.
Errors become the API's own 400/404 answers: InvalidRequest names the field, and the domain's
NotFoundError is the handler's 404.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from lambdas.api.settings import ApiSettingsDep, api_settings
from lambdas.api.shapes import errors, json_answer
from spotbot.domain import JOB_ID_PATTERN, BadInputError
from spotbot.domain.watches import Watch
from spotbot.services import cloud_watches as service
from spotbot.services.bots import UnknownBotError
from spotbot.services.cloud_requests import InvalidRequest
from spotbot.services import grants
from spotbot.services.grants import default_output

router = Router()


@functools.cache
def watch_services() -> tuple[Any, Any, Any]:
    """(registry, queue, index), built once per container from the API's settings; tests override it."""
    from spotbot.adapters.watch_wiring import watch_adapters
    from spotbot.adapters.wiring import open_cloud_index

    settings = api_settings()
    registry, queue = watch_adapters(settings)
    return registry, queue, open_cloud_index(settings)


Services = Annotated[tuple, Depends(watch_services)]
WatchId = Annotated[str, Path(pattern=JOB_ID_PATTERN.pattern, description="The watch_id POST /watches answered")]


def _answer(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@router.post(
    "/watches",
    summary="Watch a prefix: tag each object created under it",
    responses={201: json_answer(Watch, "Watching (the same source and bot: the same watch)"), **errors(400)},
)
def create_watch(request: Annotated[service.WatchRequest, Body()], services: Services, settings: ApiSettingsDep):
    registry, _, _ = services
    grants.check_source(settings, request.source)  # the consumer may read only the buckets the stack grants
    try:
        watch = service.register_watch(request, registry, default_output(settings) or "")
    except UnknownBotError as error:
        raise InvalidRequest("body.bot", str(error)) from None
    except BadInputError as error:
        raise InvalidRequest("body.source", str(error)) from None
    return _answer(201, watch.model_dump(mode="json") | {"status_url": f"/watches/{watch.watch_id}"})


@router.get(
    "/watches/<watch_id>",
    summary="A watch: counts, lag (age of the oldest event) and dead letters",
    responses={200: json_answer(service.WatchStatus, "The watch and its figures"), **errors(400, 404)},
)
def get_watch(watch_id: WatchId, services: Services):
    registry, queue, index = services
    return _answer(200, service.watch_status(watch_id, registry, index, queue).model_dump(mode="json"))


@router.delete(
    "/watches/<watch_id>",
    summary="Stop watching: new objects are no longer tagged",
    responses={204: {"description": "Unsubscribed"}, **errors(400, 404)},
)
def delete_watch(watch_id: WatchId, services: Services):
    registry, _, _ = services
    service.unregister_watch(watch_id, registry)
    return Response(status_code=204)
