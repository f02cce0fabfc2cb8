"""ScanStep: the "Scan assets" Lambda (lambdas/scanner), its settings and what it may touch.

It lists the sources a job names, writes shard manifests and scan state under the work bucket's
jobs/, and indexes one task per asset; it stops on a time budget well inside Lambda's 15 minutes.
"""

from __future__ import annotations

from aws_cdk import Duration
from constructs import Construct

from spotbot.settings import environment_for
from stacks.constants import SCAN_STEP_MINUTES, SCAN_TIME_BUDGET_SECONDS
from stacks.functions import StepServices


class ScanStep(Construct):
    def __init__(self, scope: Construct, id: str, *, services: StepServices) -> None:
        super().__init__(scope, id)
        self.function = services.function(
            "scanner",
            description="Scan assets: list the source into shard manifests and task documents",
            timeout=Duration.minutes(SCAN_STEP_MINUTES),
            memory_mib=2048,
            environment=environment_for(scan_time_budget_seconds=SCAN_TIME_BUDGET_SECONDS),
        )
        services.storage.grant_read_sources(self.function)
        services.storage.grant_job_files(self.function)
