"""AssetStorage: the work bucket (shard manifests, job state, the model store) and the output bucket.

Both are encrypted (SSE-S3), TLS-only, private, and log their accesses to a third bucket. Work files
under `jobs/` expire; the model store under `models/` does not. The work bucket (models) and the output
bucket (results) are versioned, and their noncurrent versions expire after NONCURRENT_DAYS. Buckets outlive the stack
(RemovalPolicy.RETAIN): they hold results and models; the README's tear-down empties and deletes them.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import nag
from stacks.constants import JOBS_PREFIX, MODELS_PREFIX, OUTPUT_PREFIX

NONCURRENT_DAYS = 30  # an overwritten or deleted model archive or result can be brought back this long


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
            ],
        )
        # S3 -> EventBridge for the model registry: set on the CloudFormation resource, so no custom resource is needed
        self.work_resource.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
        )
        self.output = self._bucket(
            "Output",
            "output/",
            lifecycle_rules=[],
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
            versioned=True,
            lifecycle_rules=[
                *lifecycle_rules,
                s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(2)),
                s3.LifecycleRule(id="expire-noncurrent-versions", noncurrent_version_expiration=Duration.days(NONCURRENT_DAYS),
                                 expired_object_delete_marker=True),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    @property
    def work_resource(self) -> s3.CfnBucket:
        return self.work.node.default_child  # type: ignore[return-value]

    @property
    def models_uri(self) -> str:
        return prefix_uri(self.work, MODELS_PREFIX)

    @property
    def default_output_uri(self) -> str:
        return prefix_uri(self.output, OUTPUT_PREFIX)

    @property
    def readable_sources(self) -> list[s3.IBucket]:
        """Where jobs may read assets: the work bucket and each source bucket."""
        return [self.work, *self.sources]

    # Grants. Object keys are made per job at run time, so each is a prefix wildcard, acknowledged here once.

    def grant_read_sources(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read (and list) any asset under the buckets a job may name as its source."""
        grants = [bucket.grant_read(grantee) for bucket in self.readable_sources]
        self._acknowledge(grantee, "reads the assets of any key under the source buckets a job names (the work "
                          "bucket and source_buckets)", nag.S3_READ_ACTIONS, [f"{b.bucket_arn}/*" for b in self.readable_sources])  # fmt: skip
        return _combined(grants)

    def grant_write_output(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read and put objects under the output bucket: part files (appended on retry) and _job.json."""
        grant = self.output.grant_read(grantee).combine(self.output.grant_put(grantee))
        self._acknowledge(grantee, "writes <output>/<job_id>/ files under the output bucket, keys made per job",
                          (*nag.S3_READ_ACTIONS, *nag.S3_PUT_ACTIONS), [f"{self.output.bucket_arn}/*"])  # fmt: skip
        return grant

    def grant_job_files(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read and write shard manifests and scan state under the work bucket's jobs/."""
        grant = self.work.grant_read_write(grantee, f"{JOBS_PREFIX}*")
        self._acknowledge(grantee, "writes shard manifests and scan state under the work bucket's jobs/",
                          (*nag.S3_READ_ACTIONS, *nag.S3_WRITE_ACTIONS), [f"{self.work.bucket_arn}/{JOBS_PREFIX}*"])  # fmt: skip
        return grant

    def grant_read_models(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the model store (models/<bot>/<version>/model.tar.gz) and list it per bot."""
        grant = self.work.grant_read(grantee, f"{MODELS_PREFIX}*")
        self._acknowledge(grantee, "reads model versions under the model store prefix (models/) only",
                          nag.S3_READ_ACTIONS, [f"{self.work.bucket_arn}/{MODELS_PREFIX}*"])  # fmt: skip
        return grant

    @staticmethod
    def _acknowledge(grantee: iam.IGrantable, what: str, actions: tuple[str, ...], resources: list[str]) -> None:
        reason = f"The role {what}; S3's object actions are the wildcard sets of CDK's bucket grants."
        nag.acknowledge_wildcards(grantee, reason, actions=actions, resources=resources)


def _combined(grants: list[iam.Grant]) -> iam.Grant:
    grant = grants[0]
    for other in grants[1:]:
        grant = grant.combine(other)
    return grant


def prefix_uri(bucket: s3.IBucket, prefix: str) -> str:
    """A prefix as the settings name one (SPOTBOT_MODELS, SPOTBOT_DEFAULT_OUTPUT): s3://<bucket>/<prefix>, no '/' after."""
    return f"s3://{bucket.bucket_name}/{prefix.rstrip('/')}"
