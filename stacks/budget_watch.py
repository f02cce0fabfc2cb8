"""BudgetWatch: the budget-watch Lambda (lambdas/budget) on an EventBridge schedule.

Every few minutes it prices each running job that has a max_cost from its Batch attempts and stops
the ones over it the way the job API's cancel does: so it gets the cancel's grants (stop and describe
executions, find and terminate this stack's Batch jobs, release endpoints) and the index.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from spotbot.settings import environment_for
from stacks.compute import SpotCompute
from stacks.endpoints import BotEndpoints
from stacks.functions import StepServices
from stacks.workflow import TaggingWorkflow, grant_describe_executions

BUDGET_CHECK_MINUTES = 5  # a job may overrun its budget by what it spends in this long


class BudgetWatch(Construct):
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
    ) -> None:
        super().__init__(scope, id)
        self.function = services.functions.function(
            "budget",
            description="The budget watch: stops running jobs whose measured cost crossed their max_cost",
            timeout=Duration.minutes(2),
            environment=environment_for(
                state_machine_arn=workflow.state_machine.state_machine_arn,
                batch_job_queue=compute.job_queue.job_queue_arn,
                builtin_bot_runtime=builtin_bot_runtime,  # which endpoint a stopped job's bot ran behind
                serving_image_uri=endpoints.serving_image_uri,
            ),
            unscoped_actions_reason="batch:ListJobs and batch:DescribeJobs (a job's Batch attempts) accept no resource scope.",
        )
        grant_describe_executions(self.function, Stack.of(self), "states:StopExecution")  # stop, never start
        compute.grant_list_and_terminate(self.function)
        services.search.grant_read_write(self.function)
        endpoints.grant_release(self.function)
        self.rule = events.Rule(
            self, "Schedule", description="Price the running jobs that have a budget, and stop those over it",
            schedule=events.Schedule.rate(Duration.minutes(BUDGET_CHECK_MINUTES)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],  # the next run is minutes away
        )  # fmt: skip
