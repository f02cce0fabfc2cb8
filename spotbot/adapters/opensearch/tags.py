"""Tag records in OpenSearch: search (substring, any script), paging, label counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from spotbot.domain import TagRecord
from spotbot.ports import SearchHit, SearchQuery
from spotbot.adapters.opensearch.connection import OpenSearchConnection


class TagRecords(OpenSearchConnection):
    """Reading and searching tag records."""

    # tags

    def tag_records(self, job_id: str, *, consistent: bool = False) -> Iterator[TagRecord]:
        """Every record of the job, by asset, paged with search_after (no 10,000 limit)."""
        self._before_search(self.tags_index, consistent)
        for hit in self._scan(
            self.tags_index,
            {"bool": {"filter": [{"term": {"job_id": job_id}}]}},
            [{"asset": "asc"}],
            source={"excludes": ["search_text"]},
        ):
            yield TagRecord.model_validate(hit["_source"])

    def search(self, query: SearchQuery, *, consistent: bool = False) -> list[SearchHit]:
        return self.search_page(query, consistent=consistent)[0]

    def search_page(
        self, query: SearchQuery, search_after: list[Any] | None = None, *, consistent: bool = False
    ) -> tuple[list[SearchHit], list[Any] | None]:
        """One page of query.limit hits, newest first; pass the returned cursor for the next (None: no more)."""
        if query.limit < 1:
            return [], None
        self._before_search(self.tags_index, consistent)
        terms = (query.text or "").split()
        body: dict[str, Any] = {
            "query": _tag_query(terms, bot=query.bot, label=query.label, job_id=query.job_id),
            "sort": [{"created_at": "desc"}, {"asset": "asc"}, {"job_id": "asc"}],
            "size": query.limit + 1,
            "_source": {"excludes": ["search_text"]},
            "track_total_hits": False,
        }
        if search_after is not None:
            body["search_after"] = search_after
        raw = self.client.search(index=self.tags_index, body=body)["hits"]["hits"]
        page = raw[: query.limit]
        hits = []
        for hit in page:
            record = TagRecord.model_validate(hit["_source"])
            hits.append(SearchHit(record=record, snippet=_snippet(record, terms)))
        return hits, (page[-1]["sort"] if len(raw) > query.limit else None)

    def label_counts(self, job_id: str | None = None, bot: str | None = None, *, consistent: bool = False) -> dict[str, int]:
        """How many tag records carry each label (a record with a label twice counts once), most first."""
        self._before_search(self.tags_index, consistent)
        query = _tag_query([], bot=bot, label=None, job_id=job_id)
        counts = dict(self._composite_buckets(self.tags_index, query, "tags.label"))
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def _composite_buckets(self, index: str, query: dict[str, Any], field: str) -> list[tuple[Any, int]]:
        """Every (value, doc count) of a field, paged with a composite aggregation: exact, with no size limit."""
        buckets: list[tuple[Any, int]] = []
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": 1000, "sources": [{"value": {"terms": {"field": field}}}]}
            if after is not None:
                composite["after"] = after
            response = self.client.search(
                index=index,
                body={"size": 0, "track_total_hits": False, "query": query, "aggs": {"values": {"composite": composite}}},
            )
            agg = response["aggregations"]["values"]
            buckets.extend((bucket["key"]["value"], bucket["doc_count"]) for bucket in agg["buckets"])
            after = agg.get("after_key")
            if not agg["buckets"] or after is None:
                return buckets

def _tag_query(terms: list[str], *, bot: str | None, label: str | None, job_id: str | None) -> dict[str, Any]:
    filters: list[dict[str, Any]] = []
    for term in terms:  # every word must be a substring, case-insensitive
        if len(term) < 3:
            filters.append({"match": {"search_text.gram": {"query": term, "analyzer": "spotbot_lowercase"}}})
            continue
        # each trigram of the term, exactly (a term query on one lowercased token), and the trigrams
        # in a row (the phrase). The phrase alone is exact on OpenSearch, whose ngram tokenizer gives
        # every gram its own position; the term queries keep the query strict on engines that do not.
        for gram in dict.fromkeys(term[i : i + 3] for i in range(len(term) - 2)):
            filters.append({"match": {"search_text.tri": {"query": gram, "analyzer": "spotbot_lowercase"}}})
        filters.append({"match_phrase": {"search_text.tri": term}})
    if bot:
        filters.append({"term": {"bot": bot}})
    if job_id:
        filters.append({"term": {"job_id": job_id}})
    if label:
        filters.append({"term": {"tags.label": label}})
    return {"bool": {"filter": filters}} if filters else {"match_all": {}}


def tag_doc(record: TagRecord) -> dict[str, Any]:
    doc = record.model_dump(mode="json")
    doc["search_text"] = record.searchable_text()
    return doc


def _snippet(record: TagRecord, terms: list[str], width: int = 60) -> str:
    return record.snippet(terms, width)
