"""ModelRegistry: a new model archive in the store is recorded as it lands.

The registry itself needs no update: every job resolves its bot's current version by listing the
model store (spotbot.services.models.ModelRegistry over s3://<work bucket>/models). What this adds is the
record: the work bucket sends its object events to EventBridge, and a rule on
`models/<bot>/<version>/model.tar.gz` runs lambdas/registry, which checks the new version (sound
archive? approval rule passed?) and logs it with the bot's current version, so a rejected upload is
visible the moment it lands rather than at the next job.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from stacks.constants import MODELS_PREFIX
from stacks.functions import SpotbotFunctions
from stacks.storage import AssetStorage

ARCHIVE_PATTERN = "*/*/model.tar.gz"  # <bot>/<version>/model.tar.gz under the models prefix (spotbot.services.models)


class ModelRegistry(Construct):
    def __init__(self, scope: Construct, id: str, *, functions: SpotbotFunctions, storage: AssetStorage) -> None:
        super().__init__(scope, id)
        bucket, models_prefix = storage.work, MODELS_PREFIX
        self.function = handler = functions.function(
            "registry",
            description="Record a new model version in the store: is it sound, approved, current?",
            timeout=Duration.minutes(5),
            memory_mib=1024,
            in_vpc=False,  # reads S3 only
            ephemeral_storage_mib=2048,  # model archives are extracted under /tmp
        )
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
        storage.grant_read_models(handler)
