"""Jobs and bots in OpenSearch: one document each, by job id or bot name."""

from __future__ import annotations

from typing import Any

from opensearchpy.exceptions import NotFoundError

from spotbot.adapters.opensearch.connection import OpenSearchConnection
from spotbot.adapters.opensearch.cursors import JOB_SORT, check_cursor
from spotbot.domain import JOB_ID_PATTERN, Job


class JobAndBotRecords(OpenSearchConnection):
    """Jobs and registered bots."""

    # jobs

    def save_job(self, job: Job) -> None:
        self.client.index(index=self.jobs_index, id=job.job_id, body=job.model_dump(mode="json"), refresh="false")
        self._wrote(self.jobs_index)

    def get_job(self, job_id: str) -> Job | None:
        source = self._get_source(self.jobs_index, job_id)
        return Job.model_validate(source) if source is not None else None

    def list_jobs(self, limit: int = 50, *, consistent: bool = False) -> list[Job]:
        return [job for job, _ in self.list_jobs_page(limit, consistent=consistent)]

    def list_jobs_page(
        self, limit: int = 50, after: list[Any] | None = None, *, consistent: bool = False
    ) -> list[tuple[Job, list[Any]]]:
        """Up to limit jobs newest first, after a position; each with its own position (resume just after it)."""
        if after is not None:
            check_cursor(after, JOB_SORT)
        self._before_search(self.jobs_index, consistent)
        body: dict[str, Any] = {"query": {"match_all": {}}, "sort": JOB_SORT, "size": limit, "track_total_hits": False}
        if after is not None:
            body["search_after"] = after
        hits = self.client.search(index=self.jobs_index, body=body)["hits"]["hits"]
        return [(Job.model_validate(hit["_source"]), list(hit["sort"])) for hit in hits]

    def jobs_sharing_output(self, output: str, job_id: str) -> list[str]:
        """Other jobs whose output area (<output>/<job_id>/) holds this job's area, or lies inside it.

        Up the path: every `<parent>/<segment>` whose segment is a job written to <parent> (one multi-get).
        Down: jobs whose output starts with this job's area (one search; near-real-time is enough here,
        the execution name is the arbiter of one id).
        """
        area = f"{output.rstrip('/')}/{job_id}"
        parts = area.removeprefix("s3://").split("/")
        ancestors = {parts[i]: "s3://" + "/".join(parts[:i]) for i in range(1, len(parts))}
        names = [name for name in ancestors if name != job_id and JOB_ID_PATTERN.match(name)]
        taken = [
            doc["_id"]
            for doc in self._mget(self.jobs_index, names, source=["output"])
            if (doc["_source"].get("output") or "").rstrip("/") == ancestors[doc["_id"]]
        ]
        self._before_search(self.jobs_index, False)
        inside = {"bool": {"should": [{"term": {"output": area}}, {"prefix": {"output": area + "/"}}], "minimum_should_match": 1}}
        hits = self.client.search(index=self.jobs_index, body={"query": inside, "size": 10, "_source": False})["hits"]["hits"]
        return sorted(set(taken) | {hit["_id"] for hit in hits if hit["_id"] != job_id})

    def _get_source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        try:
            response = self.client.get(index=index, id=doc_id)
        except NotFoundError:
            return None
        return response["_source"] if response.get("found") else None

    # bots

    def save_bot(self, doc: dict[str, Any]) -> None:
        """Registers (or replaces) a bot: `name` plus file_types, image URIs, model artifact S3 URI, runtime."""
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("a bot document needs a non-empty string 'name'")
        self.client.index(index=self.bots_index, id=name, body=doc, refresh="false")
        self._wrote(self.bots_index)

    def get_bot(self, name: str) -> dict[str, Any] | None:
        return self._get_source(self.bots_index, name)

    def list_bots(self, *, consistent: bool = False) -> list[dict[str, Any]]:
        self._before_search(self.bots_index, consistent)
        return [hit["_source"] for hit in self._scan(self.bots_index, {"match_all": {}}, [{"name": "asc"}])]

    def delete_bot(self, name: str) -> bool:
        """Removes a bot; False when there was none."""
        try:
            self.client.delete(index=self.bots_index, id=name, refresh="false")
        except NotFoundError:
            return False
        self._wrote(self.bots_index)
        return True
