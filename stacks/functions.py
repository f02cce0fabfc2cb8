"""SpotbotFunctions: the Lambda functions, sharing one code asset, one dependencies layer and one setup.

Every function runs a thin handler from lambdas/ (`lambdas.<name>.handler.handler`) on Python 3.12,
x86_64, with X-Ray tracing, a log group with retention, and the settings every handler reads
(spotbot.settings.Settings: SPOTBOT_*). Functions that talk to OpenSearch run in the VPC's private
subnets behind one security group; the rest run outside it. How the assets are built without
Docker is stacks/bundling.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks import nag
from stacks.bundling import dependencies_code, handlers_code
from stacks.constants import LAMBDA_RUNTIME
from stacks.network import SpotbotNetwork

if TYPE_CHECKING:
    from stacks.search import AssetSearch
    from stacks.storage import AssetStorage

XRAY_REASON = "X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords accept no resource-level scope."


class SpotbotFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        network: SpotbotNetwork,
        environment: dict[str, str],
        bundle: bool = True,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, id)
        self.vpc, self.subnets = network.vpc, network.private_subnets
        self.environment, self.log_retention = dict(environment), log_retention
        self.layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=dependencies_code(install=bundle),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description="spotbot's Lambda dependencies (pyproject.toml pins, without the bots' model runtimes)",
        )
        self.code = handlers_code()
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=self.vpc, description="spotbot Lambdas: out to OpenSearch and AWS APIs",
            allow_all_outbound=True,
        )  # fmt: skip
        self.functions: dict[str, lambda_.Function] = {}

    def function(
        self,
        name: str,
        *,
        description: str,
        timeout: Duration,
        memory_mib: int = 1024,
        environment: dict[str, str] | None = None,
        in_vpc: bool = True,
        ephemeral_storage_mib: int | None = None,
        unscoped_actions_reason: str | None = None,
    ) -> lambda_.Function:
        """The function running lambdas/<name>/handler.py. `unscoped_actions_reason`: why it also needs
        actions on Resource "*" beyond X-Ray's (said here, because one acknowledgement covers them all)."""
        log_group = logs.LogGroup(
            self, f"{name.title()}Logs", retention=self.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        function = lambda_.Function(
            self,
            name.title(),
            description=description,
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=self.code,
            handler=f"lambdas.{name}.handler.handler",
            layers=[self.layer],
            timeout=timeout,
            memory_size=memory_mib,
            ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mib) if ephemeral_storage_mib else None,
            environment={**self.environment, **(environment or {})},
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            vpc=self.vpc if in_vpc else None,
            vpc_subnets=self.subnets if in_vpc else None,
            security_groups=[self.security_group] if in_vpc else None,
        )
        self.functions[name] = function
        role = function.role
        assert role is not None
        nag.acknowledge_managed_policy(
            role,
            "service-role/AWSLambdaBasicExecutionRole",
            "AWS's minimal Lambda logging policy (CreateLogGroup/CreateLogStream/PutLogEvents), kept current by AWS.",
        )
        if in_vpc:
            nag.acknowledge_managed_policy(
                role,
                "service-role/AWSLambdaVPCAccessExecutionRole",
                "AWS's policy for a VPC Lambda's network interfaces; the EC2 ENI actions accept no resource scope.",
            )
        reason = XRAY_REASON if unscoped_actions_reason is None else f"{XRAY_REASON} {unscoped_actions_reason}"
        nag.acknowledge(role, "AwsSolutions-IAM5[Resource::*]", reason)
        nag.acknowledge(
            function,
            "AwsSolutions-L1",
            "Python 3.12 on purpose: pyproject.toml supports 3.11-3.12 (rapidocr-onnxruntime has no newer wheels) "
            "and the dependencies layer is built for 3.12.",
        )
        return function


@dataclass(frozen=True)
class StepServices:
    """What every step's Lambda is made by (the shared function setup) and works on (buckets, index)."""

    functions: SpotbotFunctions
    storage: AssetStorage
    search: AssetSearch

    def function(self, name: str, *, delete_from_index: bool = False, **options: Any) -> lambda_.Function:
        """A step's Lambda (SpotbotFunctions.function takes the options), granted the tag index: every step
        reads and writes jobs and tasks; `delete_from_index`: documents and indices too (the job API)."""
        function = self.functions.function(name, **options)
        self.search.grant_read_write(function, delete=delete_from_index)
        return function
