"""Incremental jobs on OpenSearch: a `<prefix>-reuse` index of reusable records, keyed by reuse id.

Once a predicted tag record's task is marked, a small entry is written under
`reuse_id(bot, model_version, asset, etag)` (spotbot.domain.reuse) naming the job that holds it.
A new job finds what it may reuse with two real-time multi-gets per page of assets (the entries,
then those jobs' tag documents) -- no search, no refresh, no query per asset. A tag document whose
etag no longer matches (its job re-tagged a changed asset) is not reused. A reused copy writes no
entry: the entry keeps naming the job that predicted the tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from spotbot.adapters.opensearch.connection import OpenSearchConnection
from spotbot.domain import TagRecord, reuse_id, task_id


def reuse_docs(reuse_index: str, records: Iterable[TagRecord]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Bulk actions (index, id, doc) that make these predicted records reusable."""
    for record in records:
        if record.reused_from is None:
            doc_id = reuse_id(record.bot, record.model_version, record.asset, record.etag)
            yield reuse_index, doc_id, {
                "bot": record.bot,
                "model_version": record.model_version,
                "asset": record.asset,
                "etag": record.etag,
                "job_id": record.job_id,
            }


class ReuseRecords(OpenSearchConnection):
    """The ReuseIndex port: which earlier records may stand for these (asset, etag) pairs."""

    def reusable_records(self, bot: str, model_version: str, assets: Iterable[tuple[str, str]]) -> dict[str, TagRecord]:
        wanted = {reuse_id(bot, model_version, asset, etag): (asset, etag) for asset, etag in assets}
        holders = {
            task_id(doc["_source"]["job_id"], doc["_source"]["asset"]): wanted[doc["_id"]]
            for doc in self._mget(self.reuse_index, list(wanted), source=["job_id", "asset"])
        }
        found: dict[str, TagRecord] = {}
        for doc in self._mget(self.tags_index, list(holders)):
            source = {k: v for k, v in doc["_source"].items() if k != "search_text"}
            record = TagRecord.model_validate(source)
            if (record.asset, record.etag, record.bot, record.model_version) == (*holders[doc["_id"]], bot, model_version):
                found[record.asset] = record
        return found
