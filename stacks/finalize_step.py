"""FinalizeStep: the "Finalize the job" Lambda (lambdas/finalize): counts outcomes, writes _job.json."""

from __future__ import annotations

from aws_cdk import Duration
from constructs import Construct

from stacks.functions import SpotbotFunctions
from stacks.search import AssetSearch
from stacks.storage import AssetStorage


class FinalizeStep(Construct):
    def __init__(
        self, scope: Construct, id: str, *, functions: SpotbotFunctions, storage: AssetStorage, search: AssetSearch
    ) -> None:
        super().__init__(scope, id)
        self.function = functions.function(
            "finalize",
            description="Finalize the job: count outcomes, write _job.json, set the job status",
            timeout=Duration.minutes(5),
        )
        storage.grant_write_output(self.function)
        search.grant_read_write(self.function)
