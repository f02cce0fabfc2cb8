"""Tasks in OpenSearch: one document per asset per job, written whole; outcomes with their tag records."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from spotbot.domain import RECORDED_STATUSES, JobCounts, TagRecord, Task, TaskStatus, task_id, utc_now
from spotbot.ports import TaskOutcome

from spotbot.adapters.opensearch.connection import OpenSearchConnection
from spotbot.adapters.opensearch.reuse import reuse_docs
from spotbot.adapters.opensearch.tags import tag_doc


ALL_STATUSES = tuple(TaskStatus)


class TaskRecords(OpenSearchConnection):
    """Tasks, their shards and counts, and recording outcomes."""

    # tasks

    def shards_with_work(
        self, job_id: str, statuses: tuple[TaskStatus, ...], *, consistent: bool = False
    ) -> list[int]:
        self._before_search(self.tasks_index, consistent)
        buckets = self._composite_buckets(self.tasks_index, _task_query(job_id, statuses), "shard")
        return [int(key) for key, _ in buckets]

    def tasks_in_shard(
        self, job_id: str, shard: int, statuses: tuple[TaskStatus, ...] = ALL_STATUSES, *, consistent: bool = False
    ) -> list[Task]:
        self._before_search(self.tasks_index, consistent)
        query = _task_query(job_id, statuses, {"term": {"shard": shard}})
        return [Task.model_validate(hit["_source"]) for hit in self._scan(self.tasks_index, query, [{"asset": "asc"}])]

    def done_assets(self, job_id: str, assets: Iterable[str]) -> set[str]:
        ids = {task_id(job_id, asset): asset for asset in assets}
        return {
            ids[doc["_id"]]
            for doc in self._mget(self.tasks_index, list(ids), source=["status"])
            if doc["_source"].get("status") in RECORDED_STATUSES  # SKIPPED: reused, with its record
        }

    def record_outcomes(self, records: list[TagRecord], outcomes: list[TaskOutcome], job_id: str) -> None:
        """Writes the tag records, then the tasks with their new status (attempts + 1); outcomes of unknown tasks are ignored."""
        now = utc_now()
        ids = list(dict.fromkeys(task_id(job_id, o.asset) for o in outcomes))
        tasks = {doc["_id"]: Task.model_validate(doc["_source"]) for doc in self._mget(self.tasks_index, ids)}
        for outcome in outcomes:
            doc_id = task_id(job_id, outcome.asset)
            if doc_id in tasks:
                task = tasks[doc_id]
                tasks[doc_id] = task.model_copy(
                    update={
                        "status": outcome.status,
                        "error": outcome.error,
                        "attempts": task.attempts + 1,
                        "updated_at": now,
                    }
                )

        def docs() -> Iterator[tuple[str, str, dict[str, Any]]]:
            for record in records:
                yield self.tags_index, task_id(record.job_id, record.asset), tag_doc(record)
            for doc_id, task in tasks.items():
                yield self.tasks_index, doc_id, task.model_dump(mode="json")

        self._write_all(docs())
        self._write_all(reuse_docs(self.reuse_index, records))  # after the tasks: an entry names a finished record

    def _aggregate_tasks(self, job_id: str, aggregation: dict[str, Any], consistent: bool) -> dict[str, Any]:
        """One aggregation over the job's tasks, with no hits."""
        self._before_search(self.tasks_index, consistent)
        body = {"size": 0, "track_total_hits": False, "query": {"term": {"job_id": job_id}}, "aggs": {"it": aggregation}}
        return self.client.search(index=self.tasks_index, body=body)["aggregations"]["it"]

    def counts(self, job_id: str, *, consistent: bool = True) -> JobCounts:
        aggregated = self._aggregate_tasks(job_id, {"terms": {"field": "status", "size": 100}}, consistent)
        buckets = aggregated["buckets"]
        return JobCounts.from_statuses({bucket["key"]: bucket["doc_count"] for bucket in buckets})

    def counts_of_jobs(self, job_ids: list[str], *, consistent: bool = False) -> dict[str, JobCounts]:
        """The task counts of many jobs in one aggregation (a job with no tasks gets zero counts)."""
        if not job_ids:
            return {}
        self._before_search(self.tasks_index, consistent)
        by_job = {"terms": {"field": "job_id", "size": len(job_ids)}, "aggs": {"statuses": {"terms": {"field": "status", "size": 100}}}}
        response = self.client.search(
            index=self.tasks_index,
            body={"size": 0, "track_total_hits": False, "query": {"terms": {"job_id": job_ids}}, "aggs": {"jobs": by_job}},
        )
        found = {
            bucket["key"]: JobCounts.from_statuses({s["key"]: s["doc_count"] for s in bucket["statuses"]["buckets"]})
            for bucket in response["aggregations"]["jobs"]["buckets"]
        }
        return {job_id: found.get(job_id, JobCounts()) for job_id in job_ids}

    def failed_tasks(self, job_id: str, limit: int = 100, *, consistent: bool = False) -> list[Task]:
        self._before_search(self.tasks_index, consistent)
        query = _task_query(job_id, (TaskStatus.FAILED,))
        hits = self._scan(self.tasks_index, query, [{"asset": "asc"}], limit=limit)
        return [Task.model_validate(hit["_source"]) for hit in hits]

    # tasks whose shards the caller plans (the cloud scanner, a batch at a time)

    def max_shard(self, job_id: str, *, consistent: bool = True) -> int | None:
        """The highest shard number among the job's tasks; None when it has none. One aggregation."""
        value = self._aggregate_tasks(job_id, {"max": {"field": "shard"}}, consistent)["value"]
        return None if value is None else int(value)

    def tasks_by_asset(self, job_id: str, assets: Iterable[str]) -> dict[str, Task]:
        """The job's existing tasks for these assets, by asset: a real-time multi-get, no refresh needed."""
        ids = {task_id(job_id, asset): asset for asset in assets}
        return {ids[doc["_id"]]: Task.model_validate(doc["_source"]) for doc in self._mget(self.tasks_index, list(ids))}

    def add_tasks(self, tasks: Iterable[Task]) -> int:
        """Writes each task as given (PENDING, planned by spotbot.domain.planning), replacing the asset's task."""
        written = 0

        def docs() -> Iterator[tuple[str, str, dict[str, Any]]]:
            nonlocal written
            for task in tasks:
                written += 1
                yield self.tasks_index, task.id, task.model_dump(mode="json")

        self._write_all(docs())
        return written


def _task_query(job_id: str, statuses: tuple[TaskStatus, ...], *more: dict[str, Any]) -> dict[str, Any]:
    return {
        "bool": {
            "filter": [
                {"term": {"job_id": job_id}},
                {"terms": {"status": [TaskStatus(s).value for s in statuses]}},
                *more,
            ]
        }
    }
