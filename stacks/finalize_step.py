"""FinalizeStep: the "Finalize the job" Lambda (lambdas/finalize): counts outcomes, writes _job.json."""

from __future__ import annotations

from aws_cdk import Duration
from constructs import Construct

from spotbot.settings import environment_for
from stacks.compute import SpotCompute
from stacks.functions import StepServices


class FinalizeStep(Construct):
    def __init__(self, scope: Construct, id: str, *, services: StepServices, compute: SpotCompute) -> None:
        super().__init__(scope, id)
        self.function = services.function(
            "finalize",
            description="Finalize the job: count outcomes, price the Batch attempts, write _job.json, set the status",
            timeout=Duration.minutes(5),
            # the job's measured cost comes from its Batch jobs' attempts on the queue
            environment=environment_for(batch_job_queue=compute.job_queue.job_queue_arn),
            unscoped_actions_reason="batch:ListJobs and batch:DescribeJobs (a job's Batch attempts) accept no resource scope.",
        )
        services.storage.grant_write_output(self.function)
        compute.grant_find_jobs(self.function)
