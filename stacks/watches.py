"""AssetWatches: continuous tagging (issue 12). S3 ObjectCreated -> EventBridge -> SQS (+ DLQ) -> consumer.

One rule sends the Object Created events of the source buckets (which must have "send notifications
to EventBridge" on: they are not this stack's) and of the work bucket's assets/ to one encrypted,
TLS-only queue; the consumer is a
Lambda function running the bots' serving image (the endpoints' image asset, built once) through
spotbot.entrypoints.lambda_runtime, so light bots load in process. It takes batches of up to 10 events (or 30 s), reports partial batch
failures, and dead-letters a message on its third failed receive with the asset and the error; the
redrive policy (5 receives) is only a backstop for crashes and timeouts. Reserved concurrency 1:
each watch's batches get their shard numbers and S3 parts one at a time. Heavy bots (car-model on
GPU) would rather drain the queue from a short Batch job every N messages or minutes: not built yet.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from spotbot.services.grants import ASSETS_PREFIX
from spotbot.settings import environment_for
from stacks import nag
from stacks.functions import SpotbotFunctions
from stacks.search import AssetSearch
from stacks.storage import AssetStorage

CONSUMER_ENTRYPOINT = ["python", "-m", "spotbot.entrypoints.lambda_runtime"]
CONSUMER_HANDLER = "spotbot.entrypoints.watch_consumer:handler"
CONSUMER_TIMEOUT = Duration.minutes(5)
# the work bucket's watchable prefix is the one jobs may read (spotbot.services.grants): one home for the rule
WORK_ASSETS = ASSETS_PREFIX
WATCHES_KEYS = "watches/*"  # spotbot.adapters.s3.watches: watches/<watch_id>.json


class AssetWatches(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        functions: SpotbotFunctions,
        storage: AssetStorage,
        search: AssetSearch,
        serving_image: ecr_assets.DockerImageAsset,
        source_bucket_names: tuple[str, ...],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        self.dead_letters = sqs.Queue(
            self, "DeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=Duration.days(14),
        )  # fmt: skip
        nag.acknowledge(self.dead_letters, "AwsSolutions-SQS3", "This is the dead-letter queue of the watch events.")
        self.queue = sqs.Queue(
            self, "Events", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            visibility_timeout=Duration.minutes(CONSUMER_TIMEOUT.to_minutes() * 6),  # AWS: six times the function's
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=5),
        )  # fmt: skip
        # the work bucket's assets/ (never its own jobs/, output/ or models/ files), and the source buckets
        assets = {"bucket": {"name": [storage.work.bucket_name]}, "object": {"key": [{"prefix": WORK_ASSETS}]}}
        watched = {"$or": [assets, {"bucket": {"name": list(source_bucket_names)}}]} if source_bucket_names else assets
        self.rule = events.Rule(
            self, "ObjectCreated", description="Objects created in the watched buckets, for the watches",
            event_pattern=events.EventPattern(source=["aws.s3"], detail_type=["Object Created"], detail=watched),
            targets=[targets.SqsQueue(self.queue)],
        )  # fmt: skip
        self.settings = environment_for(
            watch_queue_url=self.queue.queue_url, watch_dead_letter_queue_url=self.dead_letters.queue_url
        )
        code = lambda_.DockerImageCode.from_ecr(
            serving_image.repository, tag_or_digest=serving_image.image_tag,
            entrypoint=CONSUMER_ENTRYPOINT, cmd=[CONSUMER_HANDLER],
        )  # fmt: skip
        self.consumer = lambda_.DockerImageFunction(
            self, "Consumer", description="Tags the objects S3 reports created under a watched prefix",
            code=code, architecture=lambda_.Architecture.X86_64, memory_size=3008, timeout=CONSUMER_TIMEOUT,
            reserved_concurrent_executions=1, tracing=lambda_.Tracing.ACTIVE,
            environment={**functions.environment, **self.settings},
            log_group=logs.LogGroup(self, "ConsumerLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY),
            vpc=functions.vpc, vpc_subnets=functions.subnets, security_groups=[functions.security_group],
        )  # fmt: skip
        self.consumer.add_event_source(
            sources.SqsEventSource(
                self.queue, batch_size=10, max_batching_window=Duration.seconds(30), report_batch_item_failures=True
            )
        )
        self.dead_letters.grant_send_messages(self.consumer)
        storage.grant_read_sources(self.consumer)
        storage.grant_write_output(self.consumer)
        storage.grant_read_models(self.consumer)
        storage.work.grant_read(self.consumer, WATCHES_KEYS)
        nag.acknowledge_wildcards(self.consumer, "The consumer reads the watch registrations under the work bucket's "
                                  "watches/; S3's object actions are the wildcard sets of CDK's bucket grants.",
                                  actions=nag.S3_READ_ACTIONS, resources=[storage.work.arn_for_objects(WATCHES_KEYS)])  # fmt: skip
        search.grant_read_write(self.consumer)
        self.storage = storage
        role = self.consumer.role
        assert role is not None
        for policy in ("service-role/AWSLambdaBasicExecutionRole", "service-role/AWSLambdaVPCAccessExecutionRole"):
            nag.acknowledge_managed_policy(role, policy, "AWS's minimal policy for a VPC Lambda's logs and network interfaces.")
        nag.acknowledge(role, "AwsSolutions-IAM5[Resource::*]", "X-Ray tracing: xray:PutTraceSegments accepts no resource scope.")

    def grant_manage(self, api_function: lambda_.Function) -> None:
        """The job API's /watches routes: registrations in the work bucket, the queues' figures, the lag metric."""
        for name, value in self.settings.items():
            api_function.add_environment(name, value)
        self.queue.grant(api_function, "sqs:GetQueueAttributes")
        self.dead_letters.grant(api_function, "sqs:GetQueueAttributes")
        self.storage.work.grant_read_write(api_function, WATCHES_KEYS)
        nag.acknowledge_wildcards(api_function, "The job API writes the watch registrations under the work bucket's "
                                  "watches/; S3's object actions are the wildcard sets of CDK's bucket grants.",
                                  actions=(*nag.S3_READ_ACTIONS, *nag.S3_WRITE_ACTIONS),
                                  resources=[self.storage.work.arn_for_objects(WATCHES_KEYS)])  # fmt: skip
        api_function.add_to_role_policy(
            iam.PolicyStatement(actions=["cloudwatch:GetMetricStatistics"], resources=["*"])
        )  # the lag: CloudWatch metric reads accept no resource scope (acknowledged with the role's X-Ray "*")
