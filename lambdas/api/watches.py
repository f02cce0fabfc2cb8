"""The /watches routes of the job API (issue 12): subscribe a prefix, see its figures, unsubscribe.

A Powertools Router, included by lambdas/api/handler.py; the work is spotbot.services.cloud_watches'.
Errors become the API's own 400/404 answers (spotbot.services.cloud_jobs.InvalidRequest, NotFound).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from spotbot.domain import BadInputError, NotFoundError
from spotbot.services import cloud_watches as service
from spotbot.services.bots import UnknownBotError
from spotbot.services.cloud_jobs import InvalidRequest, NotFound, default_output
from spotbot.settings import Settings

router = Router()


@functools.cache
def watch_services() -> tuple[Any, Any, Any, Settings]:
    """(registry, queue, index, settings), built once per container; tests override it."""
    from spotbot.adapters.watch_wiring import watch_adapters
    from spotbot.adapters.wiring import open_cloud_index

    settings = Settings()
    registry, queue = watch_adapters(settings)
    return registry, queue, open_cloud_index(settings), settings


Services = Annotated[tuple, Depends(watch_services)]


def _answer(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@router.post("/watches", summary="Watch a prefix: tag each object created under it")
def create_watch(request: Annotated[service.WatchRequest, Body()], services: Services):
    registry, _, _, settings = services
    try:
        watch = service.register_watch(request, registry, default_output(settings) or "")
    except UnknownBotError as error:
        raise InvalidRequest("body.bot", str(error)) from None
    except BadInputError as error:
        raise InvalidRequest("body.source", str(error)) from None
    return _answer(201, watch.model_dump(mode="json") | {"status_url": f"/watches/{watch.watch_id}"})


@router.get("/watches/<watch_id>", summary="A watch: counts, lag (age of the oldest event) and dead letters")
def get_watch(watch_id: Annotated[str, Path()], services: Services):
    registry, queue, index, _ = services
    try:
        return _answer(200, service.watch_status(watch_id, registry, index, queue).model_dump(mode="json"))
    except NotFoundError as error:
        raise NotFound(str(error)) from None


@router.delete("/watches/<watch_id>", summary="Stop watching: new objects are no longer tagged")
def delete_watch(watch_id: Annotated[str, Path()], services: Services):
    registry, _, _, _ = services
    try:
        service.unregister_watch(watch_id, registry)
    except NotFoundError as error:
        raise NotFound(str(error)) from None
    return Response(status_code=204)
