"""The OpenSearch indices' settings and mappings (also put as index templates)."""

from __future__ import annotations

from typing import Any


_NGRAM_ANALYSIS = {
    "tokenizer": {
        "spotbot_gram12": {"type": "ngram", "min_gram": 1, "max_gram": 2},
        "spotbot_gram3": {"type": "ngram", "min_gram": 3, "max_gram": 3},
    },
    "analyzer": {
        "spotbot_gram12": {"type": "custom", "tokenizer": "spotbot_gram12", "filter": ["lowercase"]},
        "spotbot_gram3": {"type": "custom", "tokenizer": "spotbot_gram3", "filter": ["lowercase"]},
        # a short query term as one lowercased token: an exact look-up among the 1- and 2-grams
        "spotbot_lowercase": {"type": "custom", "tokenizer": "keyword", "filter": ["lowercase"]},
    },
}

URI_CHARS = 2048  # s3:// URIs: keywords up to this long are indexed (ignore_above)


def typed(kind: str, *names: str, **options: Any) -> dict[str, dict[str, Any]]:
    """The mappings of fields mapped alike: {"type": kind, **options} each, by name."""
    return {name: {"type": kind, **options} for name in names}


TASK_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        **typed("keyword", "job_id", "asset", "etag", "status"),
        **typed("integer", "shard", "attempts"),
        **typed("date", "updated_at"),
        **typed("text", "error", index=False),
    },
}

TAG_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        # encoding: a text asset's (TagRecord.encoding); reused_from: the job whose record an incremental job copied
        **typed("keyword", "job_id", "bot", "model_version", "asset", "etag", "encoding", "reused_from"),
        **typed("date", "created_at"),
        # bots add their own fields to tags (OCR text, boxes): kept in _source, not mapped
        "tags": {
            "type": "object",
            "dynamic": False,
            "properties": {"label": {"type": "keyword"}, "score": {"type": "float"}},
        },
        **typed("text", "text", index=False),  # searched through search_text
        "search_text": {
            "type": "text",
            "analyzer": "cjk",
            "fields": {
                "gram": {"type": "text", "analyzer": "spotbot_gram12"},
                "tri": {"type": "text", "analyzer": "spotbot_gram3"},
            },
        },
    },
}

JOB_MAPPINGS: dict[str, Any] = {
    "dynamic": False,  # new Job fields are kept in _source without a mapping change
    "properties": {
        **typed("keyword", "job_id", "bot", "status", "execution_arn", "endpoint_name", "model_version"),
        **typed("integer", "workers"),
        **typed("date", "created_at", "finished_at"),
        **typed("keyword", "source", "output", ignore_above=URI_CHARS),
    },
}

BOT_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        # runtime: e.g. "batch", "sagemaker"; model_artifact: s3://.../model.tar.gz
        **typed("keyword", "name", "file_types", "input_kind", "runtime", "image_uri", "model_artifact", "model_version"),
        **typed("date", "updated_at"),
        "image_uris": {"type": "object", "dynamic": False},  # e.g. {"cpu": ..., "gpu": ...}
    },
}


# one entry per reusable record, by reuse id (spotbot.domain.reuse): see reuse.py
REUSE_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        **typed("keyword", "bot", "model_version", "etag", "job_id"),
        **typed("keyword", "asset", ignore_above=URI_CHARS),
    },
}


def index_definitions(tasks: str, tags: str, jobs: str, bots: str, reuse: str) -> dict[str, dict[str, Any]]:
    """Settings and mappings of each index, by index name."""
    one_shard = {"number_of_shards": 1}
    return {
        tasks: {"settings": dict(one_shard), "mappings": TASK_MAPPINGS},
        tags: {"settings": {"analysis": _NGRAM_ANALYSIS}, "mappings": TAG_MAPPINGS},
        jobs: {"settings": dict(one_shard), "mappings": JOB_MAPPINGS},
        bots: {"settings": dict(one_shard), "mappings": BOT_MAPPINGS},
        reuse: {"settings": dict(one_shard), "mappings": REUSE_MAPPINGS},
    }
