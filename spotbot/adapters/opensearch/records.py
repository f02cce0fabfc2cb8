"""Jobs and bots in OpenSearch: one document each, by job id or bot name."""

from __future__ import annotations

from typing import Any

from opensearchpy.exceptions import NotFoundError

from spotbot.domain import Job
from spotbot.adapters.opensearch.connection import OpenSearchConnection


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
        self._before_search(self.jobs_index, consistent)
        hits = self._scan(
            self.jobs_index,
            {"match_all": {}},
            [{"created_at": "desc"}, {"job_id": "asc"}],
            limit=limit,
        )
        return [Job.model_validate(hit["_source"]) for hit in hits]

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
