"""TaggingWorkflow: the "tag-assets" state machine, exactly as spotbot.workflow.tag_assets_definition writes it.

The definition is the one the moto-backed tests execute; the stack only fills in the ARNs. They go
in as DefinitionSubstitutions (`${ScanAssetsFunction}`...), so the DefinitionString stays the JSON
that tag_assets_definition returned, nulls included (`"ResultPath": null` keeps a Batch step's
output out of the state; CDK's to_json_string would drop None values). With no static job
definition, each execution names its own in `$.job_definition` (the API puts the bot's there).

Every wait is bounded (spotbot.workflow): the execution times out after `timeout`, each Batch step
after `batch_timeout`, the endpoint wait after `endpoint_max_polls` checks.

Logging ALL events with execution data, X-Ray tracing, and the IAM that `lambda:invoke` and
`batch:submitJob.sync` need: invoke the three functions, SubmitJob (tagged) with the stack's job
definitions on its queue, DescribeJobs/TerminateJob (SpotCompute.grant_submit), and the managed
EventBridge rule Step Functions uses to learn that a Batch job ended.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from spotbot.workflow import tag_assets_definition
from stacks import nag
from stacks.compute import SpotCompute

SUBSTITUTIONS = {"scanner": "ScanAssetsFunction", "endpoint": "BotEndpointFunction", "finalize": "FinalizeFunction",
                 "job_queue": "SpotJobQueue"}  # fmt: skip
BATCH_EVENTS_RULE = "StepFunctionsGetEventsForBatchJobsRule"  # managed by Step Functions for .sync Batch steps


def definition_with_placeholders(**options: Any) -> str:
    """tag_assets_definition with `${...}` placeholders for the ARNs: the stack's DefinitionString."""
    return json.dumps(tag_assets_definition(**{arg: f"${{{name}}}" for arg, name in SUBSTITUTIONS.items()}, **options), indent=1)


class TaggingWorkflow(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        scanner: lambda_.IFunction,
        endpoint: lambda_.IFunction,
        finalize: lambda_.IFunction,
        compute: SpotCompute,
        timeout: Duration = Duration.hours(24),
        batch_timeout: Duration = Duration.hours(23),
        endpoint_max_polls: int = 60,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        # vended-logs prefix: keeps the account's CloudWatch Logs resource policy from growing per log group
        self.log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"/aws/vendedlogs/states/{stack.stack_name}-tag-assets",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.options: dict[str, Any] = {
            "timeout_seconds": int(timeout.to_seconds()),
            "batch_timeout_seconds": int(batch_timeout.to_seconds()),
            "endpoint_max_polls": endpoint_max_polls,
            "job_tags": compute.job_tag,
        }
        arns = {"scanner": scanner.function_arn, "endpoint": endpoint.function_arn, "finalize": finalize.function_arn,
                "job_queue": compute.job_queue.job_queue_arn}  # fmt: skip
        self.state_machine = sfn.StateMachine(
            self,
            "TagAssets",
            state_machine_name=state_machine_name(stack),
            comment="Tag assets: scan, tag on Spot with AWS Batch, finalize, release the endpoint",
            definition_body=sfn.DefinitionBody.from_string(definition_with_placeholders(**self.options)),
            definition_substitutions={SUBSTITUTIONS[key]: value for key, value in arns.items()},
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        role = self.state_machine.role
        for function in (scanner, endpoint, finalize):
            function.grant_invoke(role)
        compute.grant_submit(role)  # TerminateJob too: when an execution stops or a Batch step times out
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[stack.format_arn(service="events", resource="rule", resource_name=BATCH_EVENTS_RULE)],
            )
        )
        nag.acknowledge_wildcards(
            role,
            "Invoking a function's versions and aliases (`<arn>:*`) is how Lambda's grant_invoke names one function.",
            resources=[f"{function.function_arn}:*" for function in (scanner, endpoint, finalize)],
        )
        nag.acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "batch:DescribeJobs, X-Ray writes and CloudWatch Logs' vended-log delivery actions (logs:CreateLogDelivery, "
            "logs:GetLogDelivery, ...) accept no resource scope; Step Functions documents them with Resource '*'.",
        )

    def grant_start_and_stop(self, grantee: iam.IGrantable) -> iam.Grant:
        """Start executions, describe and stop them (the job API: submit, status, cancel)."""
        return self.state_machine.grant_start_execution(grantee).combine(
            grant_describe_executions(grantee, Stack.of(self), "states:StopExecution")
        )

    @property
    def console_url(self) -> str:
        return (
            f"https://{Aws.REGION}.console.aws.amazon.com/states/home?region={Aws.REGION}"
            f"#/statemachines/view/{self.state_machine.state_machine_arn}"
        )


def state_machine_name(stack: Stack) -> str:
    """Named from the stack, so a function the definition invokes can be granted its executions without a cycle."""
    return f"{stack.stack_name[:60]}-tag-assets"


def grant_describe_executions(grantee: iam.IGrantable, stack: Stack, *more_actions: str) -> iam.Grant:
    """DescribeExecution (and more_actions) on the executions of this stack's state machine, by its fixed name."""
    executions = stack.format_arn(
        service="states", resource="execution", resource_name=f"{state_machine_name(stack)}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )  # fmt: skip
    nag.acknowledge_wildcards(
        grantee,
        "The executions of this one state machine; each is named after its job at submission.",
        resources=[executions],
    )
    return iam.Grant.add_to_principal(
        grantee=grantee, actions=["states:DescribeExecution", *more_actions], resource_arns=[executions]
    )
