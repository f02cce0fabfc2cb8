"""The API's methods follow the handler: a route added to lambdas/api/handler.py is a method on the next synth.

A small stack with only TaggingApi (no cdk-nag, no full app), so this stays fast.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from aws_lambda_powertools.event_handler.openapi.params import Query

from lambdas.api import handler
from stacks.api import TaggingApi
from stacks.config import TaggingConfig


def api_template(**options: Any) -> dict[str, Any]:
    stack = Stack(App(), "ApiOnly")
    function = lambda_.Function(
        stack, "Handler", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler", code=lambda_.Code.from_inline("def handler(event, context): pass")
    )
    TaggingApi(stack, "Api", handler=function, config=TaggingConfig(**options))
    return Template.from_stack(stack).to_json()["Resources"]


def methods(resources: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(HTTP method, path) of every AWS::ApiGateway::Method, the path rebuilt from its resources."""
    paths = {}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::ApiGateway::Resource":
            paths[name] = resource["Properties"]
    def path_of(reference: Any) -> str:
        if "Ref" not in reference:
            return ""
        properties = paths[reference["Ref"]]
        return f"{path_of(properties['ParentId'])}/{properties['PathPart']}"
    return {
        (r["Properties"]["HttpMethod"], path_of(r["Properties"]["ResourceId"])): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGateway::Method"
    }


@pytest.fixture
def extended_handler(monkeypatch: pytest.MonkeyPatch):
    """The handler's resolver with one more route, as an engineer would add it."""
    resolver = copy.deepcopy(handler.app)

    @resolver.get("/jobs/<job_id>/report", summary="A job's report")
    def job_report(job_id: str, fmt: Annotated[str, Query()] = "json"):  # noqa: ARG001
        return {}

    monkeypatch.setattr(handler, "app", resolver)


def test_a_route_added_to_the_handler_is_a_method_of_the_api(extended_handler):
    found = methods(api_template())
    report = found[("GET", "/jobs/{job_id}/report")]
    assert report["RequestParameters"] == {"method.request.path.job_id": True, "method.request.querystring.fmt": False}
    assert report["AuthorizationType"] == "AWS_IAM"
    assert ("POST", "/jobs") in found and ("GET", "/openapi.json") in found


def test_the_methods_are_the_handlers_documented_routes_and_its_document_route():
    document = handler.openapi_document()
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    found = methods(api_template())
    assert set(found) == documented | {("GET", "/openapi.json")}
    assert "RequestModels" in found[("POST", "/jobs")] and "method.request.header.idempotency-key" in found[("POST", "/jobs")]["RequestParameters"]


def test_accounts_that_manage_the_api_gateway_logging_role_can_leave_it_out():
    resources = api_template(api_gateway_account_role=False)
    assert not [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Account"]
    stage = next(r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage")
    assert stage["Properties"]["MethodSettings"][0]["LoggingLevel"] == "ERROR"
