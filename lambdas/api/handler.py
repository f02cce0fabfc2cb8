"""The job API behind API Gateway (REST API, Lambda proxy integration): routes only.

Bodies Powertools cannot read are refused first (lambdas.api.guard); validation is Powertools'
(`enable_validation=True`, the pydantic models of spotbot.services.cloud_requests); the answers'
shapes and the OpenAPI document's statuses are lambdas.api.shapes'; the work is spotbot.services'
(submission, cloud_jobs, bot_registry, pages). Every error is JSON naming the field at fault, each
domain error its status: 400, 403, 404, 405, 409, 415, 503. The caller is the request's IAM principal.
The index and AWS clients are built once per container by `cloud_jobs()`, a Powertools dependency:
tests swap it with `app.dependency_overrides[cloud_jobs] = lambda: their_cloud_jobs`. Every router's
settings come from one dependency, lambdas.api.settings' `api_settings()`.
"""

import functools
import json
import re
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Depends, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.api import guard
from lambdas.api.shapes import (
    BotAnswer,
    JobAccepted,
    JobDetail,
    JobPage,
    TagPage,
    errors,
    finish_document,
    json_answer,
    json_answers,
)
from spotbot.adapters.wiring import open_cloud_jobs
from spotbot.domain import JOB_ID_PATTERN, BadInputError, ConflictError, ForbiddenError, UnavailableError
from spotbot.domain import NotFoundError as JobOrBotNotFound
from lambdas.api import estimates, watches
from spotbot.ports import SearchQuery
from spotbot.services import bot_registry, pages
from spotbot.services import cloud_jobs as service
from spotbot.services import submission as submission_flow
from spotbot.services.cloud_jobs import CloudJobs
from spotbot.services.cloud_requests import BOT_NAME_PATTERN, BotRegistration, InvalidRequest, JobSubmission
from lambdas.api.settings import ApiSettings, api_settings  # noqa: F401 -- ApiSettings: the role this Lambda loads

SERVICE = "spotbot-api"
logger = Logger(service=SERVICE, name="%(name)s")  # each line says which logger wrote it (spotbot.services.cloud_jobs, ...)
metrics = Metrics(namespace="SpotTaggingBot", service=SERVICE)
tracer = Tracer(service=SERVICE)  # no-ops outside Lambda or without X-Ray
app = APIGatewayRestResolver(enable_validation=True)
app.include_router(watches.router)  # issue 12: POST/GET/DELETE /watches
app.include_router(estimates.router)  # issue 13: POST /estimates
copy_config_to_registered_loggers(source_logger=logger, include={"spotbot"})  # spotbot's own lines as JSON, with the job id


@functools.cache
def cloud_jobs() -> CloudJobs:
    """The index and AWS clients, built on first use and kept for the container's life."""
    return open_cloud_jobs(api_settings())


Jobs = Annotated[CloudJobs, Depends(cloud_jobs)]


def _answer(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def caller() -> str | None:
    """The IAM principal that signed the request (API Gateway IAM auth): its ARN, else its caller id."""
    context = app.current_event.raw_event.get("requestContext") or {}
    identity = context.get("identity") or {}
    claims = (context.get("authorizer") or {}).get("claims") or {}  # a Cognito user pool's tokens, when the stack uses one
    return identity.get("userArn") or identity.get("caller") or claims.get("sub") or None


SUBMISSION_EXAMPLE = {"source": "s3://my-assets/photos/", "bot": "scene-text", "workers": 4}
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN.pattern, description="1-80 letters, digits, '-', '_'")]
BotName = Annotated[str, Path(pattern=BOT_NAME_PATTERN.pattern, description="1-63 lower-case letters, digits, '-'")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Most items; a page also stops at 2 MiB")]
MaxCost = Annotated[float | None, Query(ge=0, le=1e9, description="A new budget in USD for the job (e.g. after it stopped at its old one)")]
After = Annotated[str | None, Query(max_length=8192, pattern=r"^[A-Za-z0-9_-]+$", description="The `next` of the previous page")]


# jobs


@app.post(
    "/jobs",
    summary="Submit a tagging job",
    responses={**json_answers(JobAccepted, {202: "Started", 200: "Started before, with this key and body"}), **errors(400, 409, 415)},
)
def submit_job(
    submission: Annotated[
        JobSubmission,
        Body(openapi_examples={"photos": {"summary": "Scene text in photos", "value": SUBMISSION_EXAMPLE}}),
    ],
    jobs: Jobs,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=256, description="Same key and body twice, one job")
    ] = None,
):
    principal = caller()
    job_id = submission_flow.job_id_for(submission, idempotency_key, principal)
    logger.append_keys(job_id=job_id)
    request_id = app.current_event.request_context.request_id
    submitted = submission_flow.submit_job(
        jobs, submission, idempotency_key, principal=principal, submission_id=request_id, job_id=job_id
    )
    metrics.add_metric(name="JobsSubmitted" if submitted.created else "JobsResubmitted", unit=MetricUnit.Count, value=1)
    return _answer(202 if submitted.created else 200, service.accepted(submitted.job))


@app.get("/jobs", summary="List jobs, newest first", responses={200: json_answer(JobPage, "One page"), **errors(400)})
def list_jobs(jobs: Jobs, limit: Limit = 50, after: After = None):
    items, cursor = pages.list_jobs(jobs.index, limit, after)
    return _answer(200, {"items": items, "next": cursor})


@app.get(
    "/jobs/<job_id>",
    summary="A job: status, counts, labels, execution status",
    responses={200: json_answer(JobDetail, "The job"), **errors(400, 404)},
)
def get_job(job_id: JobId, jobs: Jobs):
    logger.append_keys(job_id=job_id)
    return _answer(200, service.job_detail(jobs, job_id))


@app.delete(
    "/jobs/<job_id>",
    summary="Cancel a job: stop its execution and Batch jobs",
    responses={200: json_answer(JobDetail, "Cancelled (also when it was already)"), **errors(400, 403, 404, 409)},
)
def cancel_job(job_id: JobId, jobs: Jobs):
    logger.append_keys(job_id=job_id)
    detail = service.cancel_job(jobs, job_id, principal=caller())
    metrics.add_metric(name="JobsCancelled", unit=MetricUnit.Count, value=1)
    return _answer(200, detail)


@app.post(
    "/jobs/<job_id>/resume",
    summary="Resume a PARTIAL, FAILED or CANCELLED job: a new execution tags only what is missing",
    responses={202: json_answer(JobAccepted, "Resumed"), **errors(400, 403, 404, 409)},
)
def resume_job(job_id: JobId, jobs: Jobs, max_cost: MaxCost = None):
    logger.append_keys(job_id=job_id)
    resumed = service.resume_job(jobs, job_id, principal=caller(), max_cost=max_cost)
    metrics.add_metric(name="JobsResumed", unit=MetricUnit.Count, value=1)
    return _answer(202, service.accepted(resumed))


# tags


@app.get(
    "/tags", summary="Search tags: full text and filters, newest first", responses={200: json_answer(TagPage, "One page"), **errors(400)}
)
def search_tags(
    jobs: Jobs,
    q: Annotated[str | None, Query(max_length=500, description="Words, each a case-insensitive substring")] = None,
    bot: Annotated[str | None, Query(max_length=63)] = None,
    job: Annotated[str | None, Query(pattern=JOB_ID_PATTERN.pattern, description="Only this job's tags")] = None,
    label: Annotated[str | None, Query(max_length=500)] = None,
    limit: Limit = 20,
    after: After = None,
):
    if job:
        logger.append_keys(job_id=job)
    query = SearchQuery(text=q, bot=bot, label=label, job_id=job, limit=limit)
    items, cursor = pages.search_tags(jobs.index, query, after)
    return _answer(200, {"items": items, "next": cursor})


# bots


@app.get("/bots", summary="Built-in and registered bots", responses={200: json_answer(list[BotAnswer], "The bots")})
def list_bots(jobs: Jobs):
    return _answer(200, bot_registry.list_bots(jobs.index))


@app.get("/bots/<name>", summary="One bot", responses={200: json_answer(BotAnswer, "The bot"), **errors(400, 404)})
def get_bot(name: BotName, jobs: Jobs):
    return _answer(200, bot_registry.get_bot(jobs.index, name))


@app.post(
    "/bots", summary="Register your own bot", responses={201: json_answer(BotAnswer, "Registered"), **errors(400, 409, 415)}
)
def register_bot(bot: Annotated[BotRegistration, Body()], jobs: Jobs):
    doc, _ = bot_registry.register_bot(jobs.index, bot, replace=False, settings=jobs.settings, principal=caller())
    metrics.add_metric(name="BotsRegistered", unit=MetricUnit.Count, value=1)
    return _answer(201, doc)


@app.put(
    "/bots/<name>",
    summary="Register or replace your own bot",
    responses={**json_answers(BotAnswer, {200: "Replaced", 201: "Registered"}), **errors(400, 403, 409, 415)},
)
def replace_bot(name: BotName, bot: Annotated[BotRegistration, Body()], jobs: Jobs):
    if bot.name != name:
        raise InvalidRequest("body.name", f"is {bot.name!r}, but the path names {name!r}")
    doc, created = bot_registry.register_bot(jobs.index, bot, replace=True, settings=jobs.settings, principal=caller())
    return _answer(201 if created else 200, doc)


@app.delete(
    "/bots/<name>",
    summary="Unregister your own bot",
    responses={204: {"description": "Unregistered"}, **errors(400, 403, 404, 409)},
)
def delete_bot(name: BotName, jobs: Jobs):
    bot_registry.delete_bot(jobs.index, name, settings=jobs.settings, principal=caller())
    return Response(status_code=204)


app.include_router(__import__("lambdas.api.reviews", fromlist=["router"]).router)  # GET/POST /reviews (issue 16)


@app.get("/openapi.json", include_in_schema=False)
def openapi():
    return _answer(200, openapi_document())


def openapi_document() -> dict[str, Any]:
    """The resolver's OpenAPI document, finished by lambdas.api.shapes (our 400, not Powertools' 422)."""
    document = json.loads(
        app.get_openapi_json_schema(
            title="Spot Tagging Bot API",
            version="1",
            description="Tag assets in S3 with machine learning on Spot capacity, search the tags, bring your own bot. "
            "Requests are signed with SigV4 (IAM auth).",
        )
    )
    return finish_document(document)


# errors: JSON, naming the field at fault


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError):
    problems = list(error.errors())
    if any(problem.get("type") == "json_invalid" for problem in problems):
        detail = "; ".join(
            f"{(p.get('ctx') or {}).get('error', p.get('msg', ''))} at character {p['loc'][-1]}"
            for p in problems
            if p.get("type") == "json_invalid"
        )
        return _error(400, "the body is not valid JSON", [{"field": "body", "message": detail}])
    fields = [{"field": _location(problem.get("loc", ())), "message": _message(problem)} for problem in problems]
    return _error(400, "validation failed", fields)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc]
    if parts[:1] == ["header"] and len(parts) > 1:
        parts[1] = parts[1].title()  # idempotency-key -> Idempotency-Key
    return ".".join(parts)


def _message(problem: dict[str, Any]) -> str:
    message = str(problem.get("msg") or problem.get("type") or "invalid")
    return message.removeprefix("Value error, ")


@app.exception_handler([InvalidRequest, BadInputError])
def _bad_input(error: Exception):
    field, message = getattr(error, "field", None), getattr(error, "message", None)
    if isinstance(field, str) and isinstance(message, str):
        return _error(400, "validation failed", [{"field": field, "message": message}])
    return _error(400, str(error))


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_media_type(error: RequestUnsupportedContentType):
    content_type = app.current_event.headers.get("content-type", "")
    message = f"the body must be JSON: Content-Type is {content_type!r}, send application/json"
    return _error(415, message, [{"field": "header.Content-Type", "message": message}])


@app.exception_handler([JobOrBotNotFound, NotFoundError])
def _not_found(error: Exception):
    if not isinstance(error, NotFoundError):
        return _error(404, str(error))
    event = app.current_event
    template, allowed = route_of(event.path)
    if event.http_method.upper() in allowed:  # a route has it, but the router's parameter pattern refused a value
        names = re.findall(r"\{([^/]+)\}", template or "")
        path_fields = [{"field": f"path.{name}", "message": "has characters no name can have"} for name in names]
        return _error(400, "validation failed", path_fields)
    if allowed:
        message = f"{event.http_method} is not a method of {event.path}: use {', '.join(allowed)}"
        return _error(405, message, headers={"Allow": ", ".join(allowed)})
    return _error(404, f"no route {event.http_method} {event.path}")


@app.exception_handler(UnavailableError)
def _unavailable(error: UnavailableError):
    logger.warning("a service the API needs is unavailable", extra={"reason": str(error)})
    return _error(503, str(error), headers={"Retry-After": "5"})


@app.exception_handler(ForbiddenError)
def _forbidden(error: ForbiddenError):
    return _error(403, str(error))


@app.exception_handler(ConflictError)
def _conflict(error: Exception):
    return _error(409, str(error))


@app.exception_handler(Exception)
def _unexpected(error: Exception):
    logger.exception("request failed")
    request_id = app.current_event.request_context.request_id
    return _error(500, f"internal error (request {request_id}); the API's logs have the details")


def _error(
    status: int, message: str, fields: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"error": message}
    if fields is not None:
        body["fields"] = fields
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


@functools.cache
def _route_patterns() -> tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...]:
    """Each documented path as a pattern, with its methods: the one table a 405 is answered from."""
    patterns = []
    for template, operations in openapi_document()["paths"].items():
        regex = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"  # templates are letters, '/' and {names}
        patterns.append((template, re.compile(regex), tuple(sorted(method.upper() for method in operations))))
    return tuple(patterns)


def route_of(path: str) -> tuple[str | None, list[str]]:
    """The documented path template a request path falls under and its methods; (None, []) when none."""
    for template, pattern, methods in _route_patterns():
        if pattern.match(path):
            return template, list(methods)
    return None, []


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        event = guard.checked(event)
    except guard.Refused as refused:
        logger.info("request refused", extra={"status": refused.status, "reason": refused.message})
        answer = {"error": refused.message, "fields": [{"field": refused.field, "message": refused.detail}]}
        return guard.proxy_answer(refused.status, answer)
    return app.resolve(event, context)
