"""`spotbot cloud resume JOB`: the CLI and ApiClient.resume over HTTP, against a stand-in for the API route
(POST /jobs/{id}/resume, whose handler lives in lambdas/api) that answers what the service answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from spotbot.entrypoints.cli.cloud import app as cloud_app
from spotbot.services.cloud_jobs import CloudJobs, accepted, cancel_job, resume_job, submit_job
from spotbot.services.cloud_requests import JobSubmission
from spotbot.domain import SpotbotError
from tests.fakes import FakeCompute, FakeIndex, FakeWorkflow
from tests.test_control_planes import SETTINGS


class _ResumeRoute(BaseHTTPRequestHandler):
    jobs: CloudJobs
    seen: list[tuple[str, str, bool]] = []

    def do_POST(self) -> None:
        signed = self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256")
        self.seen.append(("POST", self.path, signed))
        job_id = self.path.removeprefix("/prod/jobs/").removesuffix("/resume")
        try:
            status, body = 202, accepted(resume_job(self.jobs, job_id))
        except SpotbotError as error:
            status, body = (409 if "running" in str(error) or "COMPLETED" in str(error) else 404), {"error": str(error)}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDTESTING", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    jobs = CloudJobs(index=FakeIndex(), workflow=FakeWorkflow(), compute=FakeCompute(), settings=SETTINGS)
    _ResumeRoute.jobs, _ResumeRoute.seen = jobs, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ResumeRoute)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield jobs, f"http://127.0.0.1:{server.server_address[1]}/prod"
    server.shutdown()
    server.server_close()


def test_spotbot_cloud_resume_starts_a_new_execution(api):
    jobs, url = api
    submit_job(jobs, JobSubmission(source="s3://assets/a", bot="sentiment", output="s3://out/t", job_id="job-1"))
    runner = CliRunner()
    refused = runner.invoke(cloud_app, ["resume", "job-1", "--api", url])
    assert refused.exit_code == 2 and "still running" in refused.stderr  # its first execution runs

    cancel_job(jobs, "job-1")
    result = runner.invoke(cloud_app, ["resume", "job-1", "--api", url, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["status"] == "RUNNING" and answer["execution_arn"].endswith(":job-1-r1")
    assert _ResumeRoute.seen[-1] == ("POST", "/prod/jobs/job-1/resume", True)
    assert jobs.workflow.is_running(answer["execution_arn"])

    missing = runner.invoke(cloud_app, ["resume", "no-such-job", "--api", url])
    assert missing.exit_code == 2 and "no job" in missing.stderr
