"""BudgetWatch: the budget-watch Lambda (lambdas/budget) on an EventBridge schedule.

Every few minutes it prices each running job that has a max_cost from its Batch attempts and stops
the ones over it the way the job API's cancel does: so it gets the cancel's grants (stop and describe
executions, find and terminate this stack's Batch jobs, release endpoints) and the index.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from stacks.api_handler import JobCancel
from stacks.functions import StepServices

BUDGET_CHECK_MINUTES = 5  # a job may overrun its budget by what it spends in this long


class BudgetWatch(Construct):
    def __init__(self, scope: Construct, id: str, *, services: StepServices, cancel: JobCancel) -> None:
        super().__init__(scope, id)
        self.function = cancel.function(  # stop, never start
            services,
            "budget",
            description="The budget watch: stops running jobs whose measured cost crossed their max_cost",
            timeout=Duration.minutes(2),
            unscoped_actions_reason="batch:ListJobs and batch:DescribeJobs (a job's Batch attempts) accept no resource scope.",
        )
        self.rule = events.Rule(
            self, "Schedule", description="Price the running jobs that have a budget, and stop those over it",
            schedule=events.Schedule.rate(Duration.minutes(BUDGET_CHECK_MINUTES)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],  # the next run is minutes away
        )  # fmt: skip
