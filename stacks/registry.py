"""ModelRegistry: a new model archive in the store is recorded as it lands.

The registry itself needs no update: every job resolves its bot's current version by listing the
model store (spotbot.models.ModelRegistry over s3://<work bucket>/models). What this adds is the
record: the work bucket sends its object events to EventBridge, and a rule on
`models/<bot>/<version>/model.tar.gz` runs lambdas/registry, which checks the new version (sound
archive? approval rule passed?) and logs it with the bot's current version, so a rejected upload is
visible the moment it lands rather than at the next job.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import nag

ARCHIVE_PATTERN = "*/*/model.tar.gz"  # <bot>/<version>/model.tar.gz under the models prefix (spotbot.models)


class ModelRegistry(Construct):
    def __init__(
        self, scope: Construct, id: str, *, bucket: s3.IBucket, models_prefix: str, handler: lambda_.IFunction
    ) -> None:
        super().__init__(scope, id)
        self.rule = events.Rule(
            self,
            "NewModelVersion",
            description="A model archive written to the model store",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {"key": events.Match.wildcard(f"{models_prefix}{ARCHIVE_PATTERN}")},
                },
            ),
            targets=[targets.LambdaFunction(handler, retry_attempts=4, max_event_age=Duration.hours(2))],
        )
        bucket.grant_read(handler, f"{models_prefix}*")
        assert handler.role is not None
        nag.acknowledge_wildcards(
            handler.role,
            "The registry reads the model store prefix only (models/<bot>/<version>/model.tar.gz, listed per bot); "
            "S3's read actions are CDK's grant_read set.",
            actions=nag.S3_READ_ACTIONS,
            resources=[f"{bucket.bucket_arn}/{models_prefix}*"],
        )
