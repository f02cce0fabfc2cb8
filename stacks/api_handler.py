"""JobApiHandler: the job API's Lambda (lambdas/api): submit, watch and cancel jobs, search, register bots.

It starts and stops executions of the state machine, finds and terminates this stack's Batch jobs
on cancel, and reads, writes and deletes job, tag and bot documents. What a cancel takes (its settings
and grants) is JobCancel: the budget watch stops jobs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from spotbot.settings import environment_for
from stacks.compute import SpotCompute
from stacks.constants import API_INTEGRATION_SECONDS
from stacks.endpoints import BotEndpoints
from stacks.functions import StepServices
from stacks.workflow import TaggingWorkflow, grant_describe_executions


@dataclass(frozen=True)
class JobCancel:
    """What stopping a job takes (DELETE /jobs/{id}, the budget watch): stop its execution, terminate its
    Batch jobs, release its endpoint."""

    compute: SpotCompute
    workflow: TaggingWorkflow
    endpoints: BotEndpoints
    builtin_bot_runtime: str  # which endpoint the job's bot ran behind, when the job did not record one

    def function(
        self, services: StepServices, name: str, *, environment: dict[str, str] | None = None, **options: Any
    ) -> lambda_.Function:
        """A step's Lambda (StepServices.function) that stops jobs: cancel's settings beside its own, and its grants."""
        function = services.function(name, environment={**self.environment(), **(environment or {})}, **options)
        self.grant(function)
        return function

    def environment(self) -> dict[str, str]:
        return environment_for(
            state_machine_arn=self.workflow.state_machine.state_machine_arn,
            batch_job_queue=self.compute.job_queue.job_queue_arn,
            builtin_bot_runtime=self.builtin_bot_runtime,
            serving_image_uri=self.endpoints.serving_image_uri,
        )

    def grant(self, function: lambda_.Function) -> None:
        """Describe and stop executions (never start), find and terminate Batch jobs, release endpoints."""
        grant_describe_executions(function, Stack.of(function), "states:StopExecution")
        self.compute.grant_list_and_terminate(function)
        self.endpoints.grant_release(function)  # cancel runs no Catch: it releases the job's endpoint itself


class JobApiHandler(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        services: StepServices,
        cancel: JobCancel,
        source_buckets: tuple[str, ...] = (),
        admin_principal: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        storage, endpoints = services.storage, cancel.endpoints
        self.function = cancel.function(
            services,
            "api",
            delete_from_index=True,  # unregistering a bot deletes its document
            description="The job API: submit, watch and cancel jobs, search tags, register bots",
            timeout=Duration.seconds(API_INTEGRATION_SECONDS),
            environment=environment_for(
                job_definitions=cancel.compute.job_definition_arns,
                default_output=storage.default_output_uri,
                # what jobs and bot registrations may name (spotbot.services.grants)
                source_buckets=list(source_buckets),
                bot_image_repositories=endpoints.bot_repository_uris,
                endpoint_instance_types=list(endpoints.instance_types),
                admin_principal=admin_principal,
            ),
            unscoped_actions_reason="batch:ListJobs and batch:DescribeJobs (cancel finds a job's Batch jobs) accept no resource scope.",
        )
        cancel.workflow.state_machine.grant_start_execution(self.function)
        storage.grant_read_models(self.function)  # the model version an endpoint would serve
