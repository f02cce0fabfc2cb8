"""EndpointHost on SageMaker real-time endpoints (boto3). Model, endpoint config and endpoint share one name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from spotbot.ports.control_planes import EndpointDefinition


class SageMakerEndpoints:
    def __init__(self, client: Any) -> None:
        self.client = client  # boto3 "sagemaker"

    def describe(self, name: str) -> dict[str, Any] | None:
        try:
            described = self.client.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if _is_missing(error):
                return None
            raise
        answer = {"status": described["EndpointStatus"]}
        if described.get("FailureReason"):
            answer["failure_reason"] = described["FailureReason"]
        return answer

    def create(self, definition: EndpointDefinition, role_arn: str) -> None:
        name = definition.name
        tags = [{"Key": key, "Value": value} for key, value in definition.tags.items()]
        container: dict[str, Any] = {"Image": definition.image_uri, "Environment": definition.environment}
        if definition.model_data:
            container["ModelDataUrl"] = definition.model_data
        if not _ignore_missing(self.client.describe_model, ModelName=name):
            _ignore_existing(
                self.client.create_model, ModelName=name, PrimaryContainer=container, ExecutionRoleArn=role_arn, Tags=tags
            )
        if not _ignore_missing(self.client.describe_endpoint_config, EndpointConfigName=name):
            _ignore_existing(
                self.client.create_endpoint_config,
                EndpointConfigName=name,
                ProductionVariants=[
                    {"VariantName": "bot", "ModelName": name, "InstanceType": definition.instance_type, "InitialInstanceCount": 1}
                ],
                Tags=tags,
            )
        # a racing job creating the same endpoint is fine: it is the same content
        _ignore_existing(self.client.create_endpoint, EndpointName=name, EndpointConfigName=name, Tags=tags)

    def delete_endpoint(self, name: str) -> bool:
        return _ignore_missing(self.client.delete_endpoint, EndpointName=name)

    def delete_leftovers(self, name: str) -> None:
        _ignore_missing(self.client.delete_endpoint_config, EndpointConfigName=name)
        _ignore_missing(self.client.delete_model, ModelName=name)


def _ignore_missing(call: Callable[..., Any], **kwargs: Any) -> bool:
    """Calls a describe or a delete; False when there was nothing by that name."""
    try:
        call(**kwargs)
    except ClientError as error:
        if _is_missing(error):
            return False
        raise
    return True


def _ignore_existing(call: Callable[..., Any], **kwargs: Any) -> None:
    try:
        call(**kwargs)
    except ClientError as error:
        if not _already_exists(error):
            raise


def _code_and_message(error: ClientError) -> tuple[str, str]:
    details = error.response.get("Error", {})
    return str(details.get("Code", "")), str(details.get("Message", ""))


def _is_missing(error: ClientError) -> bool:
    code, message = _code_and_message(error)
    return code in ("ValidationException", "ValidationError", "ResourceNotFound") and "could not find" in message.lower()


def _already_exists(error: ClientError) -> bool:
    code, message = _code_and_message(error)
    return code in ("ValidationException", "ValidationError", "ResourceInUse") and "already exist" in message.lower()
