"""EndpointStep: the bot endpoint Lambda (lambdas/endpoint): start, check and release SageMaker endpoints.

It resolves a bot's model version from the model store, reads the job and bot records, and
manages spotbot's SageMaker resources through BotEndpoints' grant.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from constructs import Construct

from spotbot.settings import environment_for
from stacks.endpoints import BotEndpoints
from stacks.functions import StepServices
from stacks.workflow import grant_describe_executions


class EndpointStep(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        services: StepServices,
        endpoints: BotEndpoints,
        builtin_bot_runtime: str,
        endpoint_instance_type: str,
    ) -> None:
        super().__init__(scope, id)
        self.function = services.function(
            "endpoint",
            description="Start, check and release a bot's SageMaker endpoint",
            timeout=Duration.minutes(2),
            environment=environment_for(
                sagemaker_role_arn=endpoints.execution_role.role_arn,
                serving_image_uri=endpoints.serving_image_uri,
                builtin_bot_runtime=builtin_bot_runtime,
                endpoint_instance_type=endpoint_instance_type,
            ),
        )
        services.storage.grant_read_models(self.function)  # and the index: the job's endpoint is recorded there for release
        endpoints.grant_manage(self.function)
        # "live job" is an execution that is RUNNING: release asks Step Functions, not the index
        grant_describe_executions(self.function, Stack.of(self))
