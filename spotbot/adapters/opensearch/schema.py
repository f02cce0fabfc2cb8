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

TASK_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "job_id": {"type": "keyword"},
        "asset": {"type": "keyword"},
        "etag": {"type": "keyword"},
        "shard": {"type": "integer"},
        "status": {"type": "keyword"},
        "attempts": {"type": "integer"},
        "error": {"type": "text", "index": False},
        "updated_at": {"type": "date"},
    },
}

TAG_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "job_id": {"type": "keyword"},
        "bot": {"type": "keyword"},
        "model_version": {"type": "keyword"},
        "asset": {"type": "keyword"},
        "etag": {"type": "keyword"},
        # bots add their own fields to tags (OCR text, boxes): kept in _source, not mapped
        "tags": {
            "type": "object",
            "dynamic": False,
            "properties": {"label": {"type": "keyword"}, "score": {"type": "float"}},
        },
        "text": {"type": "text", "index": False},  # searched through search_text
        "encoding": {"type": "keyword"},  # a text asset's encoding (TagRecord.encoding)
        "created_at": {"type": "date"},
        "reused_from": {"type": "keyword"},  # the job whose record an incremental job copied
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
        "job_id": {"type": "keyword"},
        "bot": {"type": "keyword"},
        "source": {"type": "keyword", "ignore_above": 2048},
        "output": {"type": "keyword", "ignore_above": 2048},
        "status": {"type": "keyword"},
        "workers": {"type": "integer"},
        "created_at": {"type": "date"},
        "finished_at": {"type": "date"},
        "execution_arn": {"type": "keyword"},
        "endpoint_name": {"type": "keyword"},
        "model_version": {"type": "keyword"},
    },
}

BOT_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "name": {"type": "keyword"},
        "file_types": {"type": "keyword"},
        "input_kind": {"type": "keyword"},
        "runtime": {"type": "keyword"},  # e.g. "batch", "sagemaker"
        "image_uri": {"type": "keyword"},
        "image_uris": {"type": "object", "dynamic": False},  # e.g. {"cpu": ..., "gpu": ...}
        "model_artifact": {"type": "keyword"},  # s3://.../model.tar.gz
        "model_version": {"type": "keyword"},
        "updated_at": {"type": "date"},
    },
}


# one entry per reusable record, by reuse id (spotbot.domain.reuse): see reuse.py
REUSE_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "bot": {"type": "keyword"},
        "model_version": {"type": "keyword"},
        "asset": {"type": "keyword", "ignore_above": 2048},
        "etag": {"type": "keyword"},
        "job_id": {"type": "keyword"},
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
