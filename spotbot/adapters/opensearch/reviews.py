"""Review decisions in OpenSearch: their own index, `<prefix>-reviews`, beside the tag index it reads records from.

Each decision is its own document (id: review_id), written with refresh=true so the next request, from
any Lambda container, sees it: "the last decision wins" needs every decision visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opensearchpy.exceptions import RequestError

from spotbot.adapters.opensearch.index import OpenSearchTagIndex
from spotbot.adapters.opensearch.schema import URI_CHARS, typed
from spotbot.domain import TagRecord
from spotbot.domain.reviews import Review

REVIEW_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        **typed("keyword", "review_id", "record_id", "job_id", "bot", "model_version", "action", "reviewer", "reason"),
        **typed("integer", "tag_index"),
        **typed("date", "decided_at"),
        **typed("keyword", "asset", ignore_above=URI_CHARS),
        **typed("object", "before", "after", enabled=False),  # a tag as the bot wrote it, and as decided: kept, not searched
    },
}
PAGE = 200


class OpenSearchReviewStore:
    def __init__(self, index: OpenSearchTagIndex) -> None:
        self.index = index
        self.client = index.client
        self.reviews_index = f"{index.prefix}-reviews"

    def ensure_index(self) -> None:
        """Creates the reviews index if missing; adds new fields to an existing one. Idempotent."""
        definition = {"settings": {"number_of_shards": 1}, "mappings": REVIEW_MAPPINGS}
        if self.client.indices.exists(index=self.reviews_index):
            self.client.indices.put_mapping(index=self.reviews_index, body=REVIEW_MAPPINGS)
            return
        try:
            self.client.indices.create(index=self.reviews_index, body=definition)
        except RequestError as error:
            if error.error != "resource_already_exists_exception":
                raise

    def close(self) -> None:
        self.index.close()

    def save_review(self, review: Review) -> None:
        self.client.index(index=self.reviews_index, id=review.review_id, body=review.model_dump(mode="json"), refresh=True)

    def reviews(self, bot: str | None = None, record_id: str | None = None) -> list[Review]:
        filters = [{"term": {field: value}} for field, value in (("bot", bot), ("record_id", record_id)) if value is not None]
        hits = self.index._scan(
            self.reviews_index, {"bool": {"filter": filters}}, [{"decided_at": "asc"}, {"review_id": "asc"}]
        )
        return [Review.model_validate(hit["_source"]) for hit in hits]

    def record(self, record_id: str) -> TagRecord | None:
        doc = self.index._get_source(self.index.tags_index, record_id)  # tag documents are keyed task_id(job, asset)
        if doc is None:
            return None
        doc.pop("search_text", None)
        return TagRecord.model_validate(doc)

    def low_scoring(self, bot: str, below: float) -> Iterator[TagRecord]:
        query = {"bool": {"filter": [{"term": {"bot": bot}}, {"range": {"tags.score": {"lt": below}}}]}}
        hits = self.index._scan(
            self.index.tags_index, query, [{"asset": "asc"}, {"job_id": "asc"}],
            source={"excludes": ["search_text"]}, page_size=PAGE,
        )
        for hit in hits:
            yield TagRecord.model_validate(hit["_source"])

    def sample(self, bot: str, n: int, seed: int) -> list[TagRecord]:
        body = {
            "query": {
                "function_score": {
                    "query": {"bool": {"filter": [{"term": {"bot": bot}}]}},
                    "random_score": {"seed": seed, "field": "_seq_no"},
                    "boost_mode": "replace",
                }
            },
            "size": n,
            "_source": {"excludes": ["search_text"]},
        }
        hits = self.client.search(index=self.index.tags_index, body=body)["hits"]["hits"]
        return [TagRecord.model_validate(hit["_source"]) for hit in hits]
