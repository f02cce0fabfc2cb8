"""JobApiHandler: the job API's Lambda (lambdas/api): submit, watch and cancel jobs, search, register bots.

It starts and stops executions of the state machine, finds and terminates this stack's Batch jobs
on cancel, and reads, writes and deletes job, tag and bot documents.
"""

from __future__ import annotations

from aws_cdk import Duration
from constructs import Construct

from spotbot.settings import environment_for
from stacks.compute import SpotCompute
from stacks.constants import API_INTEGRATION_SECONDS
from stacks.endpoints import BotEndpoints
from stacks.functions import StepServices
from stacks.workflow import TaggingWorkflow


class JobApiHandler(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        services: StepServices,
        compute: SpotCompute,
        workflow: TaggingWorkflow,
        endpoints: BotEndpoints,
        builtin_bot_runtime: str,
        source_buckets: tuple[str, ...] = (),
        admin_principal: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        storage, search = services.storage, services.search
        self.function = services.functions.function(
            "api",
            description="The job API: submit, watch and cancel jobs, search tags, register bots",
            timeout=Duration.seconds(API_INTEGRATION_SECONDS),
            environment=environment_for(
                state_machine_arn=workflow.state_machine.state_machine_arn,
                batch_job_queue=compute.job_queue.job_queue_arn,
                job_definitions=compute.job_definition_arns,
                default_output=storage.default_output_uri,
                # cancel releases the job's endpoint: what names it when the job did not record one
                builtin_bot_runtime=builtin_bot_runtime,
                serving_image_uri=endpoints.serving_image_uri,
                # what jobs and bot registrations may name (spotbot.services.grants)
                source_buckets=list(source_buckets),
                bot_image_repositories=endpoints.bot_repository_uris,
                endpoint_instance_types=list(endpoints.instance_types),
                admin_principal=admin_principal,
            ),
            unscoped_actions_reason="batch:ListJobs and batch:DescribeJobs (cancel finds a job's Batch jobs) accept no resource scope.",
        )
        workflow.grant_start_and_stop(self.function)
        compute.grant_list_and_terminate(self.function)
        search.grant_read_write(self.function, delete=True)  # unregistering a bot deletes its document
        endpoints.grant_release(self.function)  # cancel runs no Catch: it releases the job's endpoint itself
        storage.grant_read_models(self.function)  # the model version an endpoint would serve
