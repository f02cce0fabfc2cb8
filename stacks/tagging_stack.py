"""TaggingStack: the whole system in one `cdk deploy`, composing the constructs of stacks/.

The stack only composes: each construct owns its resources, its function, its settings and its
grants; here they are handed each other. A construct whose options are context parameters is
handed the TaggingConfig itself and reads its own fields, so each default lives once (stacks/config.py).
The SPOTBOT_* settings come from spotbot.settings'
`environment_for` (field names, not hand-written variable names). The stack is
environment-agnostic (no account or region, no lookups), so synthesis needs no credentials.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, Stack, Tags
from aws_cdk import aws_logs as logs
from constructs import Construct

from spotbot.settings import environment_for
from stacks.api import TaggingApi
from stacks.api_handler import JobApiHandler, JobCancel
from stacks.compute import SpotCompute
from stacks.config import TaggingConfig
from stacks.constants import LAMBDA_HOME, METRICS_NAMESPACE
from stacks.endpoint_step import EndpointStep
from stacks.endpoints import BotEndpoints
from stacks.budget_watch import BudgetWatch
from stacks.finalize_step import FinalizeStep
from stacks.functions import SpotbotFunctions, StepServices
from stacks.network import SpotbotNetwork
from stacks.registry import ModelRegistry
from stacks.scan_step import ScanStep
from stacks.search import AssetSearch
from stacks.storage import AssetStorage
from stacks.watches import AssetWatches
from stacks.workflow import TaggingWorkflow


class TaggingStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: TaggingConfig, **kwargs: object) -> None:
        super().__init__(scope, id, description="Spot Tagging Bot: ML tags for assets in S3, on EC2 Spot", **kwargs)
        Tags.of(self).add("project", "spot-tagging-bot")
        retention = log_retention(config.log_retention_days)

        storage = AssetStorage(
            self, "Storage", work_file_days=config.work_file_days, source_bucket_names=config.source_buckets
        )
        network = SpotbotNetwork(self, "Network", flow_logs_bucket=storage.access_logs, config=config)
        search = AssetSearch(self, "Search", network=network, config=config, log_retention=retention)
        shared_settings = environment_for(
            opensearch_endpoint=search.endpoint_url,
            region=Aws.REGION,
            work_bucket=storage.work.bucket_name,
            models=storage.models_uri,
        )

        compute = SpotCompute(
            self, "Compute", config=config, network=network, environment=shared_settings, log_retention=retention
        )
        endpoints = BotEndpoints(
            self,
            "BotEndpoints",
            models_bucket=storage.work,
            bot_image_repositories=config.bot_image_repositories,
            instance_types=config.allowed_endpoint_instance_types,
        )
        worker = compute.job_role
        storage.grant_read_sources(worker)
        storage.grant_write_output(worker)  # read too: a retried shard appends to its part file
        search.grant_read_write(worker)
        endpoints.grant_invoke(worker)

        functions = SpotbotFunctions(
            self,
            "Functions",
            network=network,
            environment={**shared_settings, **environment_for(home=LAMBDA_HOME),
                         "POWERTOOLS_LOG_LEVEL": "INFO", "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE},  # fmt: skip
            bundle=config.bundle_lambdas,
            log_retention=retention,
        )
        services = StepServices(functions=functions, storage=storage, search=search)
        scan = ScanStep(self, "ScanStep", services=services)
        endpoint = EndpointStep(
            self, "EndpointStep", services=services, endpoints=endpoints,
            builtin_bot_runtime=config.builtin_bot_runtime, endpoint_instance_type=config.endpoint_instance_type,
        )  # fmt: skip
        finalize = FinalizeStep(self, "FinalizeStep", services=services, compute=compute)
        search.allow_from(functions.security_group, compute.security_group)

        workflow = TaggingWorkflow(
            self, "Workflow", scanner=scan.function, endpoint=endpoint.function, finalize=finalize.function,
            compute=compute, timeout=Duration.hours(config.execution_timeout_hours),
            batch_timeout=Duration.hours(config.execution_timeout_hours - 1), endpoint_max_polls=config.endpoint_max_polls,
            log_retention=retention,
        )  # fmt: skip
        cancel = JobCancel(compute=compute, workflow=workflow, endpoints=endpoints, builtin_bot_runtime=config.builtin_bot_runtime)
        handler = JobApiHandler(
            self, "JobApiHandler", services=services, cancel=cancel, source_buckets=config.source_buckets,
            admin_principal=config.admin_principal,
        )  # fmt: skip
        BudgetWatch(self, "BudgetWatch", services=services, cancel=cancel)  # stops jobs over budget as cancel does
        api = TaggingApi(self, "Api", handler=handler.function, config=config, log_retention=retention)
        ModelRegistry(self, "ModelRegistry", functions=functions, storage=storage)
        watches = AssetWatches(
            self, "Watches", functions=functions, storage=storage, search=search, serving_image=endpoints.serving_image,
            source_bucket_names=config.source_buckets, log_retention=retention,
        )  # fmt: skip -- issue 12: continuous tagging
        watches.grant_manage(handler.function)

        self.api, self.workflow, self.search, self.storage, self.compute = api, workflow, search, storage, compute
        CfnOutput(self, "ApiUrl", value=api.url, description="The job API (requests are SigV4-signed: IAM auth)")
        CfnOutput(self, "StateMachineConsoleUrl", value=workflow.console_url, description="Executions, one per job")
        CfnOutput(self, "StateMachineArn", value=workflow.state_machine.state_machine_arn)
        CfnOutput(
            self, "OpenSearchDashboardsUrl", value=search.dashboards_url,
            description="Reachable from inside the VPC only (VPN, bastion or SSM port forwarding)",
        )  # fmt: skip
        CfnOutput(self, "WorkBucketName", value=storage.work.bucket_name, description="Shard manifests, job state, models/")
        CfnOutput(self, "OutputBucketName", value=storage.output.bucket_name, description="Tags as JSON Lines: tags/<job_id>/")
        CfnOutput(self, "AccessLogsBucketName", value=storage.access_logs.bucket_name)
        CfnOutput(self, "ModelStore", value=storage.models_uri, description="spotbot train --models <this>")
        CfnOutput(self, "JobDefinitions", value=self.to_json_string(compute.job_definition_arns))


_RETENTION = {1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
              60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
              365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS",
              1827: "FIVE_YEARS", 3653: "TEN_YEARS"}  # fmt: skip


def log_retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch Logs retention of at least `days` (it takes only certain values)."""
    chosen = next((value for value in sorted(_RETENTION) if value >= days), max(_RETENTION))
    return getattr(logs.RetentionDays, _RETENTION[chosen])
