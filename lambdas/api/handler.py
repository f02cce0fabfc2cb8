"""The job API behind API Gateway (REST API, Lambda proxy integration): routes and HTTP shapes only.

Validation is Powertools' (`enable_validation=True`, pydantic models from spotbot.services.cloud_jobs), the work is
spotbot.services.cloud_jobs', and errors are JSON that name the field at fault. The index and AWS clients are built
once per container by `cloud_jobs()`, a Powertools dependency: tests swap it with
`app.dependency_overrides[cloud_jobs] = lambda: their_cloud_jobs`.
"""

import functools
import json
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Depends, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from lambdas.api import watches
from spotbot.services import cloud_jobs as service
from spotbot.domain import Job
from spotbot.services.cloud_jobs import BotRegistration, CloudJobs, JobSubmission
from spotbot.ports import SearchQuery
from spotbot.settings import Settings

SERVICE = "spotbot-api"
logger = Logger(service=SERVICE, name="%(name)s")  # each line says which logger wrote it (spotbot.services.cloud_jobs, ...)
metrics = Metrics(namespace="SpotTaggingBot", service=SERVICE)
tracer = Tracer(service=SERVICE)  # no-ops outside Lambda or without X-Ray
app = APIGatewayRestResolver(enable_validation=True)
app.include_router(watches.router)  # issue 12: POST/GET/DELETE /watches
copy_config_to_registered_loggers(source_logger=logger, include={"spotbot"})  # spotbot's own lines as JSON, with the job id


@functools.cache
def cloud_jobs() -> CloudJobs:
    """The index and AWS clients, built on first use and kept for the container's life."""
    return CloudJobs.connect(Settings())


Jobs = Annotated[CloudJobs, Depends(cloud_jobs)]


# HTTP shapes (for the OpenAPI document; the bodies come from spotbot.services.cloud_jobs)


class FieldError(BaseModel):
    field: str
    message: str


class ErrorAnswer(BaseModel):
    error: str
    fields: list[FieldError] = []


class JobAccepted(BaseModel):
    job_id: str
    status: str
    status_url: str
    execution_arn: str | None
    console_url: str | None


class TagPage(BaseModel):
    items: list[dict[str, Any]]
    next: str | None


def _json(model: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"model": model}}}


ERRORS = {
    400: _json(ErrorAnswer, "The request is not valid; `fields` names each field at fault"),
    404: _json(ErrorAnswer, "No such job or bot"),
    409: _json(ErrorAnswer, "Conflicts with what exists"),
}


def _errors(*codes: int) -> dict[int, Any]:
    return {code: ERRORS[code] for code in codes}


def _answer(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


# jobs


@app.post(
    "/jobs",
    summary="Submit a tagging job",
    responses={
        202: _json(JobAccepted, "Started"),
        200: _json(JobAccepted, "Started before, with this key or job id"),
        **_errors(400, 409),
    },
)
def submit_job(
    submission: Annotated[JobSubmission, Body()],
    jobs: Jobs,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", description="Same key twice, one job")] = None,
):
    job_id = service.job_id_for(submission, idempotency_key)
    logger.append_keys(job_id=job_id)
    submitted = service.submit_job(jobs, submission.model_copy(update={"job_id": job_id}), idempotency_key)
    metrics.add_metric(name="JobsSubmitted" if submitted.created else "JobsResubmitted", unit=MetricUnit.Count, value=1)
    return _answer(202 if submitted.created else 200, service.accepted(submitted.job))


@app.get("/jobs", summary="List jobs, newest first", responses={200: _json(list[Job], "Jobs")})
def list_jobs(jobs: Jobs, limit: Annotated[int, Query(ge=1, le=1000)] = 50):
    return _answer(200, [job.model_dump(mode="json") for job in service.list_jobs(jobs, limit)])


@app.get("/jobs/<job_id>", summary="A job: status, counts, labels, execution status", responses=_errors(404))
def get_job(job_id: Annotated[str, Path()], jobs: Jobs):
    logger.append_keys(job_id=job_id)
    return _answer(200, service.job_detail(jobs, job_id))


@app.delete("/jobs/<job_id>", summary="Cancel a job: stop its execution and Batch jobs", responses=_errors(404, 409))
def cancel_job(job_id: Annotated[str, Path()], jobs: Jobs):
    logger.append_keys(job_id=job_id)
    detail = service.cancel_job(jobs, job_id)
    metrics.add_metric(name="JobsCancelled", unit=MetricUnit.Count, value=1)
    return _answer(200, detail)


# tags


@app.get(
    "/tags", summary="Search tags: full text and filters, newest first", responses={200: _json(TagPage, "One page"), **_errors(400)}
)
def search_tags(
    jobs: Jobs,
    q: Annotated[str | None, Query(max_length=500, description="Words, each a case-insensitive substring")] = None,
    bot: Annotated[str | None, Query()] = None,
    job: Annotated[str | None, Query(description="Only this job's tags")] = None,
    label: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    after: Annotated[str | None, Query(description="The `next` of the previous page")] = None,
):
    if job:
        logger.append_keys(job_id=job)
    query = SearchQuery(text=q, bot=bot, label=label, job_id=job, limit=limit)
    items, cursor = service.search_tags(jobs, query, after)
    return _answer(200, {"items": items, "next": cursor})


# bots


@app.get("/bots", summary="Built-in and registered bots")
def list_bots(jobs: Jobs):
    return _answer(200, service.list_bots(jobs))


@app.get("/bots/<name>", summary="One bot", responses=_errors(404))
def get_bot(name: Annotated[str, Path()], jobs: Jobs):
    return _answer(200, service.get_bot(jobs, name))


@app.post("/bots", summary="Register your own bot", responses={201: _json(BotRegistration, "Registered"), **_errors(400, 409)})
def register_bot(bot: Annotated[BotRegistration, Body()], jobs: Jobs):
    doc, _ = service.register_bot(jobs, bot, replace=False)
    metrics.add_metric(name="BotsRegistered", unit=MetricUnit.Count, value=1)
    return _answer(201, doc)


@app.put(
    "/bots/<name>",
    summary="Register or replace your own bot",
    responses={200: _json(BotRegistration, "Replaced"), 201: _json(BotRegistration, "Registered"), **_errors(400, 409)},
)
def replace_bot(name: Annotated[str, Path()], bot: Annotated[BotRegistration, Body()], jobs: Jobs):
    if bot.name != name:
        raise service.InvalidRequest("body.name", f"is {bot.name!r}, but the path names {name!r}")
    doc, created = service.register_bot(jobs, bot, replace=True)
    return _answer(201 if created else 200, doc)


@app.delete("/bots/<name>", summary="Unregister your own bot", responses=_errors(404, 409))
def delete_bot(name: Annotated[str, Path()], jobs: Jobs):
    service.delete_bot(jobs, name)
    return Response(status_code=204)


@app.get("/openapi.json", include_in_schema=False)
def openapi():
    return _answer(200, openapi_document())


def openapi_document() -> dict[str, Any]:
    """The resolver's OpenAPI document, with our 400 answer in place of Powertools' default 422."""
    document = json.loads(
        app.get_openapi_json_schema(
            title="Spot Tagging Bot API",
            version="1",
            description="Tag assets in S3 with machine learning on Spot capacity, search the tags, bring your own bot. "
            "Requests are signed with SigV4 (IAM auth).",
        )
    )
    for operation in (op for path in document.get("paths", {}).values() for op in path.values()):
        responses = operation.setdefault("responses", {})
        if responses.pop("422", None) is not None:
            responses.setdefault(
                "400",
                {
                    "description": ERRORS[400]["description"],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}},
                },
            )
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


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


@app.exception_handler(service.InvalidRequest)
def _not_possible(error: service.InvalidRequest):
    return _error(400, "validation failed", [{"field": error.field, "message": error.message}])


@app.exception_handler([service.NotFound, NotFoundError])
def _not_found(error: Exception):
    if isinstance(error, service.NotFound):
        return _error(404, str(error))
    return _error(404, f"no route {app.current_event.http_method} {app.current_event.path}")


@app.exception_handler(service.Conflict)
def _conflict(error: service.Conflict):
    return _error(409, str(error))


@app.exception_handler(Exception)
def _unexpected(error: Exception):
    logger.exception("request failed")
    request_id = app.current_event.request_context.request_id
    return _error(500, f"internal error (request {request_id}); the API's logs have the details")


def _error(status: int, message: str, fields: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if fields is not None:
        body["fields"] = fields
    return _answer(status, body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
