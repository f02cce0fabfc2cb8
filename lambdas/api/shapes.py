"""The job API's HTTP shapes: answer models, the statuses each route documents, the OpenAPI post-processing.

The request bodies are the service's pydantic models; these are what comes back. The document is the
contract a generated client follows, so every status a route answers is listed here (Powertools' own
422 becomes our 400), and the limits the handler enforces are the ones the models and parameters say.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from spotbot.domain import Job


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


class Execution(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str


class JobDetail(Job):
    """A job with live counts, its label counts and its execution's status."""

    labels: dict[str, int] = {}
    status_url: str
    console_url: str | None = None
    execution: Execution | None = None
    terminated_batch_jobs: list[str] | None = None  # DELETE only


class JobPage(BaseModel):
    items: list[Job]
    next: str | None


class TagPage(BaseModel):
    items: list[dict[str, Any]]
    next: str | None


class BotAnswer(BaseModel):
    """A bot as GET /bots shows it: built in (no image) or registered (its registration and who made it)."""

    model_config = ConfigDict(extra="allow")
    name: str
    file_types: list[str]
    runtime: str
    builtin: bool


def json_answer(model: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"model": model}}}


def json_answers(model: Any, descriptions: dict[int, str]) -> dict[int, Any]:
    """One answer model under several statuses, each with its own description."""
    return {status: json_answer(model, description) for status, description in descriptions.items()}


ERRORS: dict[int, dict[str, Any]] = {
    400: json_answer(ErrorAnswer, "The request is not valid; `fields` names each field at fault"),
    403: json_answer(ErrorAnswer, "Only the principal that made it (or the admin) may change it"),
    404: json_answer(ErrorAnswer, "No such job or bot"),
    409: json_answer(ErrorAnswer, "Conflicts with what exists"),
    415: json_answer(ErrorAnswer, "The body is not JSON (Content-Type: application/json)"),
}


def errors(*codes: int) -> dict[int, Any]:
    return {code: ERRORS[code] for code in codes}


def finish_document(document: dict[str, Any]) -> dict[str, Any]:
    """Powertools' document with our 400 in place of its 422, and 405 on every path for the other methods."""
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}}
    for operation in (op for path in document.get("paths", {}).values() for op in path.values()):
        responses = operation.setdefault("responses", {})
        if responses.pop("422", None) is not None:
            responses.setdefault("400", {"description": ERRORS[400]["description"], "content": error_ref})
        for status, answer in responses.items():
            if status.startswith(("4", "5")) and "content" not in answer:
                answer["content"] = error_ref
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document
