"""A client of the job API (lambdas/api) that signs each request with SigV4, as API Gateway's IAM auth wants.

    client = ApiClient("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
    job = client.submit("s3://my-assets/photos/", "scene-text")
    client.status(job["job_id"])

Credentials and region come from boto3 (environment, profile, SSO, instance role); the region
defaults to the one in an execute-api URL. Uses only urllib, botocore's signer and json.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class ApiError(Exception):
    """The API said no (status 4xx/5xx), or could not be reached (status 0). `fields` names each field at fault."""

    def __init__(self, status: int, message: str, fields: list[dict[str, str]] | None = None) -> None:
        self.status = status
        self.message = message
        self.fields = fields or []
        shown = "; ".join(f"{f.get('field')}: {f.get('message')}" for f in self.fields)
        text = f"{status} {message}" if status else message
        super().__init__(f"{text} ({shown})" if shown else text)


class ApiClient:
    """The job API at base_url (the stage URL, e.g. https://<id>.execute-api.<region>.amazonaws.com/prod)."""

    def __init__(self, base_url: str, *, region: str | None = None, session: Any = None, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"API URL {base_url!r} is not an http(s) URL")
        if session is None:
            import boto3

            session = boto3.Session()
        match = _EXECUTE_API_HOST.search(parts.hostname)
        self.region = region or (match.group(1) if match else None) or session.region_name
        if not self.region:
            raise ValueError("an AWS region is needed to sign API requests: pass region, or set AWS_REGION")
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = timeout

    # jobs

    def submit(
        self,
        source: str,
        bot: str,
        output: str | None = None,
        workers: int | None = None,
        *,
        shard_size: int | None = None,
        model_version: str | None = None,
        job_id: str | None = None,
        idempotency_key: str | None = None,
        max_cost: float | None = None,
        full: bool = False,
    ) -> dict[str, Any]:
        """Starts a job: {job_id, status, status_url, execution_arn, console_url}. The same idempotency_key twice, one job."""
        body = {
            "source": source,
            "bot": bot,
            "output": output,
            "workers": workers,
            "shard_size": shard_size,
            "model_version": model_version,
            "job_id": job_id,
            "max_cost": max_cost,
            "incremental": False if full else None,
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request("POST", "/jobs", body={k: v for k, v in body.items() if v is not None}, headers=headers)

    def status(self, job_id: str) -> dict[str, Any]:
        """The job with live counts, its label counts and its execution's status."""
        return self.request("GET", f"/jobs/{quote(job_id, safe='')}")

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` jobs, following the API's pages (each stops at `limit` or its byte budget)."""
        listed: list[dict[str, Any]] = []
        after: str | None = None
        while len(listed) < limit:
            page = self.request("GET", "/jobs", query={"limit": limit - len(listed), "after": after})
            listed.extend(page["items"])
            after = page.get("next")
            if not after or not page["items"]:
                break
        return listed

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/jobs/{quote(job_id, safe='')}")

    def resume(self, job_id: str, max_cost: float | None = None) -> dict[str, Any]:
        """A new execution of a PARTIAL, FAILED or CANCELLED job that tags only what is missing (with a new budget)."""
        query = {"max_cost": f"{max_cost:g}"} if max_cost is not None else None
        return self.request("POST", f"/jobs/{quote(job_id, safe='')}/resume", query=query)

    # tags and bots

    def search(
        self,
        q: str | None = None,
        bot: str | None = None,
        label: str | None = None,
        job: str | None = None,
        limit: int = 20,
        after: str | None = None,
    ) -> dict[str, Any]:
        """One page: {items: [tag records with a snippet], next: cursor or None}; pass next as after for the next page."""
        query = {"q": q, "bot": bot, "label": label, "job": job, "limit": limit, "after": after}
        return self.request("GET", "/tags", query=query)

    def bots(self) -> list[dict[str, Any]]:
        return self.request("GET", "/bots")

    # the wire

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Sends one signed request; the JSON answer, or ApiError."""
        url = self.base_url + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        all_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        signed = self._sign(method, url, data, all_headers)
        request = urllib.request.Request(url, data=data, method=method, headers=signed)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
            return json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            answer = _error_body(error.read())
            if isinstance(answer, dict) and "error" in answer:
                raise ApiError(error.code, str(answer["error"]), answer.get("fields")) from None
            if isinstance(answer, dict) and "message" in answer:  # API Gateway's own answers (403, 429)
                raise ApiError(error.code, str(answer["message"])) from None
            raise ApiError(error.code, error.reason or "request failed") from None
        except urllib.error.URLError as error:
            raise ApiError(0, f"cannot reach the API at {self.base_url}: {error.reason}") from None
        except (TimeoutError, ConnectionError) as error:
            raise ApiError(0, f"cannot reach the API at {self.base_url}: {error or type(error).__name__}") from None

    def _sign(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth  # imported here: `spotbot --help` need not load botocore
        from botocore.awsrequest import AWSRequest

        credentials = self.session.get_credentials()
        if credentials is None:
            raise ApiError(0, "no AWS credentials found to sign API requests (SigV4): configure the AWS CLI or set AWS_PROFILE")
        aws_request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(aws_request)
        return dict(aws_request.headers.items())


def _error_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return {"error": raw.decode(errors="replace")[:500]}
