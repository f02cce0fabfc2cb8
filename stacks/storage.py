"""AssetStorage: the work bucket (shard manifests, job state, the model store) and the output bucket.

Both are encrypted (SSE-S3), TLS-only, private, and log their accesses to a third bucket. Work files
under `jobs/` expire; the model store under `models/` does not. Buckets outlive the stack
(RemovalPolicy.RETAIN): they hold results and models; the README's tear-down empties and deletes them.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

JOBS_PREFIX = "jobs/"  # shard manifests: jobs/<id>/shards/<n>.jsonl (spotbot.scanning)
MODELS_PREFIX = "models/"  # the model store: models/<bot>/<version>/model.tar.gz (spotbot.models)
OUTPUT_PREFIX = "tags"  # default output of cloud jobs: s3://<output bucket>/tags/<job_id>/


class AssetStorage(Construct):
    """The stack's buckets, and the buckets of assets to tag that already exist (`source_buckets`)."""

    def __init__(
        self, scope: Construct, id: str, *, work_file_days: int = 14, source_bucket_names: tuple[str, ...] = ()
    ) -> None:
        super().__init__(scope, id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption S3 server access logging can write to
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.work = self._bucket(
            "Work",
            "work/",
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-job-work-files", prefix=JOBS_PREFIX, expiration=Duration.days(work_file_days)),
                s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(2)),
            ],
        )
        # S3 -> EventBridge for the model registry: set on the CloudFormation resource, so no custom resource is needed
        self.work_resource.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
        )
        self.output = self._bucket(
            "Output",
            "output/",
            lifecycle_rules=[
                s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(2))
            ],
        )
        self.sources: list[s3.IBucket] = [
            s3.Bucket.from_bucket_name(self, f"Source{n}", name) for n, name in enumerate(source_bucket_names)
        ]

    def _bucket(self, id: str, log_prefix: str, lifecycle_rules: list[s3.LifecycleRule]) -> s3.Bucket:
        return s3.Bucket(
            self,
            id,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=lifecycle_rules,
            removal_policy=RemovalPolicy.RETAIN,
        )

    @property
    def work_resource(self) -> s3.CfnBucket:
        return self.work.node.default_child  # type: ignore[return-value]

    @property
    def models_uri(self) -> str:
        return f"s3://{self.work.bucket_name}/{MODELS_PREFIX.rstrip('/')}"

    @property
    def default_output_uri(self) -> str:
        return f"s3://{self.output.bucket_name}/{OUTPUT_PREFIX}"

    @property
    def readable_sources(self) -> list[s3.IBucket]:
        """Where jobs may read assets: the work bucket and each source bucket."""
        return [self.work, *self.sources]
