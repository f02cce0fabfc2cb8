"""The OpenSearch mappings (spotbot.adapters.opensearch.schema and .reviews), built field by field with `typed`."""

from __future__ import annotations

from spotbot.adapters.opensearch.reviews import REVIEW_MAPPINGS
from spotbot.adapters.opensearch.schema import JOB_MAPPINGS, REUSE_MAPPINGS, TAG_MAPPINGS, TASK_MAPPINGS, URI_CHARS, typed


def test_typed_maps_each_named_field_alike_each_in_its_own_mapping():
    assert typed("keyword", "job_id", "bot") == {"job_id": {"type": "keyword"}, "bot": {"type": "keyword"}}
    assert typed("text", "error", index=False) == {"error": {"type": "text", "index": False}}
    mappings = typed("keyword", "a", "b", ignore_above=9)
    mappings["a"]["ignore_above"] = 1
    assert mappings["b"] == {"type": "keyword", "ignore_above": 9}


def test_uri_fields_are_keywords_as_long_as_an_s3_uri_and_stored_text_is_not_indexed():
    uris = {"type": "keyword", "ignore_above": URI_CHARS}
    assert JOB_MAPPINGS["properties"]["source"] == JOB_MAPPINGS["properties"]["output"] == uris
    assert REUSE_MAPPINGS["properties"]["asset"] == REVIEW_MAPPINGS["properties"]["asset"] == uris
    assert TASK_MAPPINGS["properties"]["error"] == TAG_MAPPINGS["properties"]["text"] == {"type": "text", "index": False}
    assert REVIEW_MAPPINGS["properties"]["before"] == {"type": "object", "enabled": False}
