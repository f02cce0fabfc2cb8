"""TaggingApi: the REST API in front of lambdas/api (Lambda proxy integration).

Every method requires IAM (SigV4) authorization, or a Cognito user pool's tokens when one is given.
API Gateway validates what it can before the Lambda runs: declared path, query and header
parameters, and request bodies against models converted from the schemas the handler validates
with. Its own errors come back in the handler's error shape (`{"error", "fields"?}`). The stage
writes JSON access logs and execution logs (errors), traces with X-Ray and throttles at
`rate_limit`/`burst_limit`.

The routes are read at synthesis from the handler's OpenAPI document (lambdas/api/handler.py:
the Powertools resolver's), so a route added to the handler is a method of the API on the next
deploy. Execution logging needs the account's API Gateway CloudWatch Logs role: with
`account_role` the stack provisions it (AWS::ApiGateway::Account, kept on stack deletion because
it is account-wide); turn it off where the account already manages that setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from lambdas.api.handler import openapi_document
from stacks import nag
from stacks.config import TaggingConfig

STAGE = "v1"
# The handler serves its document at this path and keeps that route out of the document itself
DOCUMENT_ROUTE = ("GET", "/openapi.json")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    body: str | None = None  # the request body's schema name in the document's components


def routes_of(document: dict[str, Any]) -> list[Route]:
    """The API's methods, read off an OpenAPI document (paths are already `{name}`-templated)."""
    routes = [Route(*DOCUMENT_ROUTE)]
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            parameters = operation.get("parameters", [])
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            routes.append(
                Route(
                    method.upper(),
                    path,
                    query=tuple(p["name"] for p in parameters if p["in"] == "query"),
                    headers=tuple(p["name"] for p in parameters if p["in"] == "header"),
                    body=schema["$ref"].rsplit("/", 1)[1] if "$ref" in schema else None,
                )
            )
    return routes
# API Gateway's own 4xx/5xx answers, in the handler's error shape
ERROR_TEMPLATE = '{"error": $context.error.messageString}'
BODY_ERROR_TEMPLATE = (
    '{"error": "validation failed", "fields": [{"field": "body", '
    '"message": "does not match the request schema: GET /openapi.json describes it"}]}'
)


class TaggingApi(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        handler: lambda_.IFunction,
        config: TaggingConfig,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        """The API `config` asks for: its api_rate_limit, api_burst_limit, cognito_user_pool_arn, api_gateway_account_role."""
        super().__init__(scope, id)
        cognito_user_pool_arn, account_role = config.cognito_user_pool_arn, config.api_gateway_account_role
        document = openapi_document()
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        if cognito_user_pool_arn:
            pool = cognito.UserPool.from_user_pool_arn(self, "UserPool", cognito_user_pool_arn)
            method_options = apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.COGNITO,
                authorizer=apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[pool]),
            )
        else:
            method_options = apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM)
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="Spot Tagging Bot: submit and watch tagging jobs, search tags, register bots",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=account_role,  # AWS::ApiGateway::Account and its role: what execution logs need
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if account_role else None,  # account-wide: kept
            default_method_options=method_options,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True,
                ),  # fmt: skip
                throttling_rate_limit=config.api_rate_limit,
                throttling_burst_limit=config.api_burst_limit,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies stay out of the logs
            ),
        )
        self.validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        for response_type in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.rest_api.add_gateway_response(
                response_type.response_type, type=response_type, templates={"application/json": ERROR_TEMPLATE}
            )
        self.rest_api.add_gateway_response(
            "BAD_REQUEST_BODY", type=apigw.ResponseType.BAD_REQUEST_BODY, status_code="400",
            templates={"application/json": BODY_ERROR_TEMPLATE},
        )  # fmt: skip

        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        models: dict[str, apigw.Model] = {}
        schemas = document.get("components", {}).get("schemas", {})
        self.routes = routes_of(document)
        for route in self.routes:
            resource = self.rest_api.root.resource_for_path(route.path)
            parameters = {f"method.request.path.{name}": True for name in _path_parameters(route.path)}
            parameters |= {f"method.request.querystring.{name}": False for name in route.query}
            parameters |= {f"method.request.header.{name}": False for name in route.headers}
            request_models = None
            if route.body is not None:
                name = route.body
                if name not in models:
                    models[name] = self.rest_api.add_model(
                        name, content_type="application/json", model_name=name,
                        schema=api_gateway_schema(name, schemas[name]),
                    )  # fmt: skip
                request_models = {"application/json": models[name]}
            resource.add_method(
                route.method,
                integration,
                request_parameters=parameters or None,
                request_models=request_models,
                request_validator=self.validator,
            )

        nag.acknowledge(
            self.rest_api,
            "AwsSolutions-APIG3",
            "Every method needs a SigV4 signature (or a Cognito token) and the stage throttles; "
            "attach a WAFv2 web ACL to the stage if the API faces untrusted callers (it bills per request).",
        )
        if account_role:
            nag.acknowledge_managed_policy(
                self.rest_api,
                "service-role/AmazonAPIGatewayPushToCloudWatchLogs",
                "The policy AWS documents for API Gateway's account-wide CloudWatch Logs role (execution logs).",
            )
        if not cognito_user_pool_arn:
            nag.acknowledge(
                self.rest_api,
                "AwsSolutions-COG4",
                "The API authorizes with IAM (SigV4) by default; set cognito_user_pool_arn for Cognito tokens.",
            )

    @property
    def url(self) -> str:
        return self.rest_api.url


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


# OpenAPI 3.1 schemas (JSON Schema 2020-12, from pydantic) -> API Gateway models (JSON Schema draft 4)

_KEYWORDS = {"minLength": "min_length", "maxLength": "max_length", "minimum": "minimum", "maximum": "maximum",
             "minItems": "min_items", "maxItems": "max_items", "enum": "enum", "description": "description"}  # fmt: skip
_TYPES = {
    "string": apigw.JsonSchemaType.STRING,
    "integer": apigw.JsonSchemaType.INTEGER,
    "number": apigw.JsonSchemaType.NUMBER,
    "boolean": apigw.JsonSchemaType.BOOLEAN,
    "array": apigw.JsonSchemaType.ARRAY,
    "object": apigw.JsonSchemaType.OBJECT,
    "null": apigw.JsonSchemaType.NULL,
}


def api_gateway_schema(name: str, schema: dict[str, Any]) -> apigw.JsonSchema:
    """An OpenAPI (JSON Schema 2020-12) object schema as a draft-4 API Gateway model: types, required, bounds, enums."""
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4,
        title=schema.get("title", name),
        type=apigw.JsonSchemaType.OBJECT,
        properties={name: _property(prop) for name, prop in schema["properties"].items()},
        required=schema.get("required"),
        additional_properties=schema.get("additionalProperties", True),
    )


def _property(prop: dict[str, Any]) -> apigw.JsonSchema:
    options = prop.get("anyOf", [prop])
    if any("$ref" in option for option in options):
        raise ValueError(f"nested models are not converted: {prop}")
    kinds = [option["type"] for option in options if "type" in option]
    kwargs: dict[str, Any] = {}
    for option in options:
        for keyword, argument in _KEYWORDS.items():
            if keyword in option:
                kwargs[argument] = option[keyword]
        if "items" in option:
            kwargs["items"] = _property(option["items"])
    if "description" in prop:
        kwargs["description"] = prop["description"]
    types = [_TYPES[kind] for kind in kinds]
    return apigw.JsonSchema(type=types[0] if len(types) == 1 else types, **kwargs)
