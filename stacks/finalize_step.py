"""FinalizeStep: the "Finalize the job" Lambda (lambdas/finalize): counts outcomes, writes _job.json."""

from __future__ import annotations

from aws_cdk import Duration
from constructs import Construct

from stacks.functions import StepServices


class FinalizeStep(Construct):
    def __init__(self, scope: Construct, id: str, *, services: StepServices) -> None:
        super().__init__(scope, id)
        storage, search = services.storage, services.search
        self.function = services.functions.function(
            "finalize",
            description="Finalize the job: count outcomes, write _job.json, set the job status",
            timeout=Duration.minutes(5),
        )
        storage.grant_write_output(self.function)
        search.grant_read_write(self.function)
