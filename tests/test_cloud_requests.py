"""The request bodies of the cloud API (spotbot.services.cloud_requests), validated without the API around them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from spotbot.services.cloud_requests import BotRegistration

DETECTOR = {
    "name": "my-detector",
    "file_types": [".jpg"],
    "runtime": "sagemaker-endpoint",
    "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-detector:1.0",
    "model_data": "s3://work-bucket/models/my-detector/1/model.tar.gz",
    "content_type": "image/jpeg",
}


def test_a_registration_whose_fields_match_their_patterns_is_taken_as_it_is():
    assert BotRegistration(**DETECTOR).model_dump(include={"name", "image_uri", "content_type"}) == {
        name: DETECTOR[name] for name in ("name", "image_uri", "content_type")
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "My Detector", "bot name 'My Detector' is not valid: use 1-63 lower-case letters, digits or '-', not at either end"),
        ("image_uri", "docker.io/library/python:3.12", "'docker.io/library/python:3.12' is not an ECR image URI: use "
         "<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> or ...@sha256:<digest>"),
        ("content_type", "jpeg", "'jpeg' is not a content type, e.g. image/jpeg"),
    ],
)  # fmt: skip
def test_a_field_off_its_pattern_is_refused_by_name_quoting_the_value(field, value, message):
    with pytest.raises(ValidationError) as caught:
        BotRegistration(**{**DETECTOR, field: value})
    [error] = caught.value.errors()
    assert error["loc"] == (field,) and error["msg"] == f"Value error, {message}"
