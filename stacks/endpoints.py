"""BotEndpoints: what SageMaker endpoints for bots need; the endpoint Lambda does their lifecycle.

- The serving image of the built-in bots (bots/Dockerfile: GET /ping, POST /invocations on 8080),
  an ECR image asset, given to the endpoint Lambda as SPOTBOT_SERVING_IMAGE_URI.
- The SageMaker execution role endpoints run as: pulls the serving image (and the images of your
  own bots, from `bot_image_repositories`), reads model archives under the work bucket's models/,
  writes the endpoints' logs and metrics.
- `grant_manage(grantee)`: what the endpoint Lambda (spotbot.services.endpoints) calls, on the resources it names
  (`spotbot-*` models, endpoint configs and endpoints), and passing the execution role to SageMaker.
  CreateEndpointConfig is held to the instance types in `instance_types` (sagemaker:InstanceTypes).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import nag
from stacks.bundling import repository_image
from stacks.constants import DEFAULT_ENDPOINT_INSTANCE_TYPE, ENDPOINT_NAME_PREFIX, MODELS_PREFIX, SERVING_DOCKERFILE

LIFECYCLE_ACTIONS = (
    "sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel",
    "sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig",
    "sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint",
    "sagemaker:AddTags",  # the Create calls tag what they make (spotbot:bot)
)  # fmt: skip
RELEASE_ACTIONS = tuple(action for action in LIFECYCLE_ACTIONS if action.split(":")[1].startswith(("Describe", "Delete")))


class BotEndpoints(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        models_bucket: s3.IBucket,
        models_prefix: str = MODELS_PREFIX,
        bot_image_repositories: tuple[str, ...] = (),
        instance_types: tuple[str, ...] = (DEFAULT_ENDPOINT_INSTANCE_TYPE,),
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.instance_types = instance_types
        self.serving_image = repository_image(self, "ServingImage", dockerfile=SERVING_DOCKERFILE)
        self.execution_role = iam.Role(
            self,
            "SageMakerRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="What bot endpoints run as: pull bot images, read model archives, write logs and metrics",
        )
        self.serving_image.repository.grant_pull(self.execution_role)
        self.bot_repository_uris: list[str] = []  # what the job API lets a registered bot's image come from
        for n, name in enumerate(bot_image_repositories):
            repository = ecr.Repository.from_repository_name(self, f"BotRepository{n}", name)
            repository.grant_pull(self.execution_role)
            self.bot_repository_uris.append(repository.repository_uri)
        models_bucket.grant_read(self.execution_role, f"{models_prefix}*")
        endpoint_logs = stack.format_arn(
            service="logs", resource="log-group", resource_name="/aws/sagemaker/Endpoints/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )  # fmt: skip
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[endpoint_logs],
            )
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints", "aws/sagemaker/Endpoints"]}},
            )
        )
        nag.acknowledge(
            self.execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData accept no resource scope "
            "(the metrics are held to SageMaker's endpoint namespace by a condition).",
        )
        nag.acknowledge_wildcards(
            self.execution_role,
            "Model archives are read from the model store prefix only (models/<bot>/<version>/model.tar.gz); "
            "S3's read actions are CDK's grant_read set.",
            actions=nag.S3_READ_ACTIONS,
            resources=[f"{models_bucket.bucket_arn}/{models_prefix}*"],
        )
        nag.acknowledge_wildcards(
            self.execution_role,
            "Each endpoint writes to its own log group /aws/sagemaker/Endpoints/<endpoint name>, named at run time.",
            resources=[endpoint_logs],
        )
        self._resources = [
            stack.format_arn(service="sagemaker", resource=kind, resource_name=f"{ENDPOINT_NAME_PREFIX}*")
            for kind in ("model", "endpoint-config", "endpoint")
        ]

    @property
    def serving_image_uri(self) -> str:
        return self.serving_image.image_uri

    def grant_manage(self, grantee: iam.IGrantable) -> iam.Grant:
        """Create, describe and delete spotbot's SageMaker models, endpoint configs and endpoints."""
        grant = iam.Grant.add_to_principal(grantee=grantee, actions=list(LIFECYCLE_ACTIONS), resource_arns=self._resources)
        grant = grant.combine(
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["sagemaker:CreateEndpointConfig"],
                resource_arns=[self._resources[1]],
                conditions={"ForAllValues:StringEquals": {"sagemaker:InstanceTypes": list(self.instance_types)}},
            )
        )
        grant = grant.combine(self.execution_role.grant_pass_role(grantee))
        nag.acknowledge_wildcards(
            grantee,
            "spotbot names every SageMaker model, endpoint config and endpoint spotbot-<bot>-<digest> at run time "
            "(spotbot.services.endpoints); the grant covers that prefix only.",
            resources=self._resources,
        )
        return grant

    def grant_release(self, grantee: iam.IGrantable) -> iam.Grant:
        """Describe and delete spotbot's endpoints, configs and models (the job API's cancel releases them)."""
        nag.acknowledge_wildcards(
            grantee,
            "Cancel releases the job's endpoint, named spotbot-<bot>-<digest> at run time; the grant covers that prefix.",
            resources=self._resources,
        )
        return iam.Grant.add_to_principal(grantee=grantee, actions=list(RELEASE_ACTIONS), resource_arns=self._resources)

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """InvokeEndpoint on spotbot's endpoints (the Spot workers of bots served from an endpoint)."""
        endpoints = self._resources[2]
        nag.acknowledge_wildcards(
            grantee,
            "Workers call the endpoint their job started, named spotbot-<bot>-<digest> at run time.",
            resources=[endpoints],
        )
        return iam.Grant.add_to_principal(grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=[endpoints])
