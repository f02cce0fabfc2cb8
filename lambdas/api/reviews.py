"""The review routes of the job API: a team reviews tags against the OpenSearch index, as `spotbot ui` does locally.

    GET  /reviews?bot=car-model[&limit=&threshold=]  the review queue and the reviewed accuracy
    GET  /reviews/export?bot=car-model               the bot's decisions as training-manifest lines
    GET  /reviews/{id}                               a tag record (id: task_id(job_id, asset)) and its decisions
    POST /reviews/{id}                               one decision; the caller's IAM identity is the reviewer

Included in lambdas/api/handler.py with `app.include_router(router)`; the service is a dependency, so tests
swap it with `app.dependency_overrides[review_service]`.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import Field

from lambdas.api.settings import api_settings
from lambdas.api.shapes import errors, json_answer
from spotbot.domain import BadInputError, NotFoundError
from spotbot.domain.reviews import MAX_REVIEWER_CHARS, Decision
from spotbot.services.cloud_requests import InvalidRequest
from spotbot.services.reviews import ReviewService

router = Router()
RECORD_ID = re.compile(r"^[0-9a-f]{32}$")


@functools.cache
def review_service() -> ReviewService:
    """The OpenSearch review store, built on first use and kept for the container's life."""
    from spotbot.adapters.opensearch.reviews import OpenSearchReviewStore
    from spotbot.adapters.wiring import open_cloud_index

    store = OpenSearchReviewStore(open_cloud_index(api_settings()))
    store.ensure_index()
    return ReviewService(store)


Reviews = Annotated[ReviewService, Depends(review_service)]


class ReviewDecision(Decision):
    reviewer: str | None = Field(
        default=None, max_length=MAX_REVIEWER_CHARS, description="Used only when the request carries no IAM identity"
    )


def _answer(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _checked_id(record_id: str) -> str:
    if not RECORD_ID.match(record_id):
        raise NotFoundError(f"no tag record {record_id!r}: ids are 32 hex digits (the `id` GET /reviews gives)")
    return record_id


@router.get(
    "/reviews",
    summary="The review queue of a bot's low-confidence tags (with a random sample), and accuracy",
    responses={200: json_answer(dict[str, Any], "The queue and the reviewed accuracy"), **errors(400)},
)
def review_queue(
    reviews: Reviews,
    bot: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
):
    items = [item.as_json() for item in reviews.queue(bot, limit, threshold)] if bot else []
    accuracy = [row.as_json() for row in reviews.accuracy()]
    return _answer(200, {"bot": bot, "threshold": reviews.threshold(bot, threshold) if bot else None,
                         "items": items, "accuracy": accuracy})


@router.get(
    "/reviews/export",
    summary="A bot's accepted and corrected tags as Ground Truth manifest lines",
    responses={200: json_answer(dict[str, Any], "The manifest lines"), **errors(400)},
)
def review_export(reviews: Reviews, bot: Annotated[str, Query(min_length=1, max_length=100)]):
    try:
        lines = reviews.manifest(bot)
    except NotFoundError:
        lines = []
    return _answer(200, {"bot": bot, "lines": lines})


@router.get(
    "/reviews/<record_id>",
    summary="A tag record and every decision on it, oldest first",
    responses={200: json_answer(dict[str, Any], "The record and its decisions"), **errors(400, 404)},
)
def review_history(record_id: Annotated[str, Path()], reviews: Reviews):
    record = reviews.store.record(_checked_id(record_id))
    if record is None:
        raise NotFoundError(f"no tag record {record_id!r} in the index")
    history = [review.model_dump(mode="json") for review in reviews.history(record_id)]
    return _answer(200, {"id": record_id, "record": record.model_dump(mode="json", exclude_none=True), "history": history})


@router.post(
    "/reviews/<record_id>",
    summary="Decide on one tag: accept, correct, fix_text or reject",
    responses={201: json_answer(dict[str, Any], "The decision, stored"), **errors(400, 404, 415)},
)
def review_decide(record_id: Annotated[str, Path()], decision: Annotated[ReviewDecision, Body()], reviews: Reviews):
    reviewer = _caller(router.current_event) or decision.reviewer
    if not reviewer:
        raise InvalidRequest("body.reviewer", "is needed when the request is not signed by an IAM identity")
    try:
        review = reviews.decide(_checked_id(record_id), decision, reviewer)
    except BadInputError as error:
        raise InvalidRequest("body", str(error)) from None
    return _answer(201, review.model_dump(mode="json"))


def _caller(event: Any) -> str | None:
    """The IAM identity API Gateway verified (IAM auth): who decided, not who the body says."""
    identity = event.request_context.identity
    return identity.user_arn or identity.caller or None
