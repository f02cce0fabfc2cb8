"""TaggingStack: the whole system in one `cdk deploy`, wiring the constructs of stacks/ together.

The stack only composes: each construct owns its resources and says what it grants; here the
grants are handed out (reading them off the constructs) and each process gets the SPOTBOT_*
settings it reads (spotbot.settings.Settings, spotbot.endpoints.EndpointSettings). It is
environment-agnostic (no account or region, no lookups), so synthesis needs no credentials.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, Stack, Tags
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks import nag
from stacks.api import TaggingApi
from stacks.compute import SpotCompute
from stacks.config import TaggingConfig
from stacks.endpoints import BotEndpoints
from stacks.functions import SpotbotFunctions
from stacks.network import SpotbotNetwork
from stacks.registry import ModelRegistry
from stacks.search import AssetSearch
from stacks.storage import JOBS_PREFIX, MODELS_PREFIX, AssetStorage
from stacks.workflow import TaggingWorkflow

LAMBDA_HOME = "/tmp/spotbot"  # SPOTBOT_HOME: the model cache; /tmp is a Lambda's only writable place


class TaggingStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: TaggingConfig, **kwargs: object) -> None:
        super().__init__(scope, id, description="Spot Tagging Bot: ML tags for assets in S3, on EC2 Spot", **kwargs)
        Tags.of(self).add("project", "spot-tagging-bot")
        retention = log_retention(config.log_retention_days)

        storage = AssetStorage(
            self, "Storage", work_file_days=config.work_file_days, source_bucket_names=config.source_buckets
        )
        network = SpotbotNetwork(
            self,
            "Network",
            flow_logs_bucket=storage.access_logs,
            vpc_id=config.vpc_id,
            private_subnet_ids=config.vpc_private_subnet_ids,
            availability_zones=config.vpc_availability_zones,
            nat_gateways=config.nat_gateways,
        )
        search = AssetSearch(
            self,
            "Search",
            vpc=network.vpc,
            subnets=network.vpc.private_subnets,
            instance_type=config.opensearch_instance_type,
            instance_count=config.opensearch_instance_count,
            volume_gb=config.opensearch_volume_gb,
            log_retention=retention,
        )
        shared_settings = {
            "SPOTBOT_OPENSEARCH_ENDPOINT": search.endpoint_url,
            "SPOTBOT_REGION": Aws.REGION,
            "SPOTBOT_WORK_BUCKET": storage.work.bucket_name,
            "SPOTBOT_MODELS": storage.models_uri,
        }

        # Spot workers
        compute = SpotCompute(
            self,
            "Compute",
            vpc=network.vpc,
            subnets=network.private_subnets,
            environment=shared_settings,
            bots=config.bots,
            instance_types=config.instance_types,
            max_vcpus=config.max_vcpus,
            spot=config.spot,
            on_demand_max_vcpus=config.on_demand_max_vcpus,
            gpu_instance_family=config.gpu_instance_family,
            gpu_bots=config.gpu_bots,
            worker_vcpus=config.worker_vcpus,
            worker_memory_mib=config.worker_memory_mib,
            attempt_timeout=Duration.minutes(config.worker_attempt_timeout_minutes),
            retry_attempts=config.worker_retry_attempts,
            log_retention=retention,
        )
        endpoints = BotEndpoints(
            self,
            "BotEndpoints",
            models_bucket=storage.work,
            models_prefix=MODELS_PREFIX,
            bot_image_repositories=config.bot_image_repositories,
        )
        worker = compute.job_role
        for source in storage.readable_sources:
            source.grant_read(worker)
        storage.output.grant_read(worker)  # a retried shard appends to its part file
        storage.output.grant_put(worker)
        search.grant_read_write(worker)
        endpoints.grant_invoke(worker)
        nag.acknowledge_wildcards(
            worker,
            "Workers read the assets of any key under the source buckets a job names (the work bucket and "
            "source_buckets), and read and append their part files under the output bucket; "
            "S3's object actions are CDK's grant_read/grant_put sets.",
            actions=(*nag.S3_READ_ACTIONS, *nag.S3_PUT_ACTIONS),
            resources=[f"{bucket.bucket_arn}/*" for bucket in (*storage.readable_sources, storage.output)],
        )

        # Lambdas
        functions = SpotbotFunctions(
            self,
            "Functions",
            vpc=network.vpc,
            subnets=network.private_subnets,
            environment={**shared_settings, "SPOTBOT_HOME": LAMBDA_HOME, "POWERTOOLS_LOG_LEVEL": "INFO",
                         "POWERTOOLS_METRICS_NAMESPACE": "SpotTaggingBot"},  # fmt: skip
            bundle=config.bundle_lambdas,
            log_retention=retention,
        )
        scanner = functions.function(
            "scanner",
            description="Scan assets: list the source into shard manifests and task documents",
            timeout=Duration.minutes(15),
            memory_mib=2048,
            environment={"SPOTBOT_SCAN_TIME_BUDGET_SECONDS": "600"},  # hands on a token well before the 15 minutes
        )
        endpoint = functions.function(
            "endpoint",
            description="Start, check and release a bot's SageMaker endpoint",
            timeout=Duration.minutes(2),
            environment={
                "SPOTBOT_SAGEMAKER_ROLE_ARN": endpoints.execution_role.role_arn,
                "SPOTBOT_SERVING_IMAGE_URI": endpoints.serving_image_uri,
                "SPOTBOT_BUILTIN_BOT_RUNTIME": config.builtin_bot_runtime,
                "SPOTBOT_ENDPOINT_INSTANCE_TYPE": config.endpoint_instance_type,
            },
        )
        finalize = functions.function(
            "finalize",
            description="Finalize the job: count outcomes, write _job.json, set the job status",
            timeout=Duration.minutes(5),
        )
        registry_function = functions.function(
            "registry",
            description="Record a new model version in the store: is it sound, approved, current?",
            timeout=Duration.minutes(5),
            memory_mib=1024,
            in_vpc=False,  # reads S3 only
            ephemeral_storage_mib=2048,  # model archives are extracted under /tmp
        )
        for source in storage.readable_sources:
            source.grant_read(scanner)
        storage.work.grant_read_write(scanner, f"{JOBS_PREFIX}*")
        search.grant_read_write(scanner.role)
        nag.acknowledge_wildcards(
            scanner.role,
            "The scanner lists any prefix of the source buckets a job names, and writes shard manifests and scan "
            "state under the work bucket's jobs/; S3's object actions are CDK's grant_read/grant_read_write sets.",
            actions=(*nag.S3_READ_ACTIONS, *nag.S3_WRITE_ACTIONS),
            resources=[*(f"{bucket.bucket_arn}/*" for bucket in storage.readable_sources),
                       f"{storage.work.bucket_arn}/{JOBS_PREFIX}*"],  # fmt: skip
        )
        storage.work.grant_read(endpoint, f"{MODELS_PREFIX}*")
        search.grant_read(endpoint.role)
        endpoints.grant_manage(endpoint.role)
        nag.acknowledge_wildcards(
            endpoint.role,
            "The endpoint step resolves a bot's model version from the model store prefix (models/) only; "
            "S3's read actions are CDK's grant_read set.",
            actions=nag.S3_READ_ACTIONS,
            resources=[f"{storage.work.bucket_arn}/{MODELS_PREFIX}*"],
        )
        storage.output.grant_read(finalize)
        storage.output.grant_put(finalize)
        search.grant_read_write(finalize.role)
        nag.acknowledge_wildcards(
            finalize.role,
            "Finalize writes <output>/<job_id>/_job.json under the output bucket, keys made per job; "
            "S3's object actions are CDK's grant_read/grant_put sets.",
            actions=(*nag.S3_READ_ACTIONS, *nag.S3_PUT_ACTIONS),
            resources=[f"{storage.output.bucket_arn}/*"],
        )
        search.allow_from(functions.security_group, compute.security_group)

        workflow = TaggingWorkflow(
            self, "Workflow", scanner=scanner, endpoint=endpoint, finalize=finalize, compute=compute,
            log_retention=retention,
        )  # fmt: skip
        api_function = functions.function(
            "api",
            description="The job API: submit, watch and cancel jobs, search tags, register bots",
            timeout=Duration.seconds(29),  # API Gateway's integration limit
            environment={
                "SPOTBOT_STATE_MACHINE_ARN": workflow.state_machine.state_machine_arn,
                "SPOTBOT_BATCH_JOB_QUEUE": compute.job_queue.job_queue_arn,
                "SPOTBOT_JOB_DEFINITIONS": self.to_json_string(compute.job_definition_arns),
                "SPOTBOT_DEFAULT_OUTPUT": storage.default_output_uri,
            },
            unscoped_actions_reason="batch:ListJobs (cancel finds a job's Batch jobs by name) accepts no resource scope.",
        )
        workflow.grant_start_and_stop(api_function.role)
        compute.grant_list_and_terminate(api_function.role)
        search.grant_read_write(api_function.role)
        api = TaggingApi(
            self,
            "Api",
            handler=api_function,
            rate_limit=config.api_rate_limit,
            burst_limit=config.api_burst_limit,
            cognito_user_pool_arn=config.cognito_user_pool_arn,
            log_retention=retention,
        )
        ModelRegistry(self, "ModelRegistry", bucket=storage.work, models_prefix=MODELS_PREFIX, handler=registry_function)

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
