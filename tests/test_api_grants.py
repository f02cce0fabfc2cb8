"""What the stack grants jobs and bots (spotbot.services.grants): pure rules, no AWS."""

from __future__ import annotations

import pytest

from spotbot.domain import FieldError, ForbiddenError
from spotbot.services import grants
from spotbot.settings import Settings

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-detector"
STACK = Settings(
    work_bucket="work-bucket",
    source_buckets=["assets", "photos-archive"],
    bot_image_repositories=[REPO],
    serving_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/spotbot-serving:3",
    models="s3://work-bucket/models",
    admin_principal="arn:aws:iam::123456789012:role/admin",
)


@pytest.mark.parametrize("source", ["s3://assets/photos/", "s3://assets", "s3://photos-archive/2024", "s3://work-bucket/assets/x/"])
def test_a_source_in_a_granted_bucket_is_accepted(source):
    grants.check_source(STACK, source)


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("s3://work-bucket/models/", "own state"),
        ("s3://work-bucket/jobs/job-1/shards/", "own state"),
        ("s3://work-bucket/output/job-1/", "own state or output"),
        ("s3://work-bucket/", "only its assets/ area"),
        ("s3://work-bucket/assetsX/", "only its assets/ area"),
        ("s3://someone-elses-bucket/data", "not granted"),
    ],
)
def test_a_source_outside_the_grants_is_refused_naming_the_allowed_buckets(source, says):
    with pytest.raises(FieldError) as refused:
        grants.check_source(STACK, source)
    assert refused.value.field == "body.source" and says in refused.value.message
    assert "s3://assets/, s3://photos-archive/, s3://work-bucket/assets/" in refused.value.message


def test_no_source_bucket_granted_says_which_setting_grants_them():
    with pytest.raises(FieldError, match="SPOTBOT_SOURCE_BUCKETS"):
        grants.check_source(Settings(), "s3://assets/a")


def test_outputs_stay_in_the_output_bucket_outside_the_stacks_own_areas():
    grants.check_output(STACK, "s3://work-bucket/output")
    grants.check_output(STACK, "s3://work-bucket/output/team-a")
    for output, field_says in (
        ("s3://results/tags", "output bucket s3://work-bucket/"),
        ("s3://work-bucket/models/sentiment", "own state"),
        ("s3://work-bucket/jobs", "own state"),
        ("s3://work-bucket/assets/x", "own state or assets"),
    ):
        with pytest.raises(FieldError, match=field_says) as refused:
            grants.check_output(STACK, output)
        assert refused.value.field == "body.output"


def test_a_bot_runs_only_granted_images_model_data_and_instance_types():
    good = {"image_uri": f"{REPO}:1.0", "model_data": "s3://work-bucket/models/my-detector/1/model.tar.gz",
            "instance_type": "ml.g5.xlarge"}
    grants.check_registration(STACK, good)
    grants.check_registration(STACK, good | {"image_uri": f"{REPO}@sha256:{'a' * 64}"})
    grants.check_registration(STACK, good | {"image_uri": STACK.serving_image_uri})  # the stack's own repository
    for change, field in (
        ({"image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/other:1"}, "body.image_uri"),
        ({"image_uri": f"{REPO}-evil:1"}, "body.image_uri"),
        ({"model_data": "s3://elsewhere/model.tar.gz"}, "body.model_data"),
        ({"model_data": "s3://work-bucket/modelsX/model.tar.gz"}, "body.model_data"),
        ({"instance_type": "ml.p4d.24xlarge"}, "body.instance_type"),
    ):
        with pytest.raises(FieldError) as refused:
            grants.check_registration(STACK, good | change)
        assert refused.value.field == field, change


def test_only_the_maker_or_the_admin_may_change_a_job():
    maker = "arn:aws:iam::123456789012:user/alice"
    grants.check_owner(STACK, "job j", maker, maker)
    grants.check_owner(STACK, "job j", maker, STACK.admin_principal)
    grants.check_owner(STACK, "job j", None, STACK.admin_principal)
    grants.check_owner(STACK, "job j", None, None)  # no identities at all: a service called directly
    for principal, owner in (("arn:aws:iam::123456789012:user/bob", maker), (None, maker), (maker, None)):
        with pytest.raises(ForbiddenError):
            grants.check_owner(STACK, "job j", owner, principal)
