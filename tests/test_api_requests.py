"""A 4xx for every bad request and a bounded answer for every good one (issue 10), through the handler."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from lambdas.api.handler import handler
from spotbot.domain import Job, JobStatus, Tag
from spotbot.services import pages
from spotbot.services.pages import encode_cursor
from tests.api_gateway import (  # noqa: F401 -- aws, settings and cloud are fixtures
    LambdaContextStub,
    aws,
    call,
    cloud,
    executions,
    fields,
    proxy_event,
    settings,
)
from tests.index_contract import T0, record

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
LAMBDA_LIMIT = 6 * 1000 * 1000  # bytes of the whole proxy result


def send(method: str, path: str, body: str | None, headers: dict[str, str], *, is_base64: bool = False) -> dict:
    event = proxy_event(method, path, resource=path, headers=headers, body=body)
    event["isBase64Encoded"] = is_base64
    return handler(event, LambdaContextStub())


def answer_of(response: dict) -> tuple[int, dict]:
    return response["statusCode"], json.loads(response["body"])


JOB = json.dumps({"source": "s3://assets/a", "bot": "sentiment"})


@pytest.mark.parametrize(
    "content_type", ["text/plain", "multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]
)
def test_a_body_that_is_not_json_is_415_naming_the_content_type(cloud, content_type):
    status, answer = answer_of(send("POST", "/jobs", JOB, {"Content-Type": content_type}))
    assert status == 415, answer
    assert fields(answer) == ["header.Content-Type"] and content_type in answer["error"]
    assert executions(cloud) == []


def test_json_with_a_charset_is_still_json(cloud):
    status, answer = answer_of(send("POST", "/jobs", JOB, {"Content-Type": "application/json; charset=utf-8"}))
    assert status == 202, answer


def test_json_nested_a_thousand_deep_is_400_not_a_crash(cloud):
    status, answer = answer_of(send("POST", "/jobs", "[" * 1000 + "]" * 1000, {"Content-Type": "application/json"}))
    assert status == 400 and fields(answer) == ["body"] and "1000 levels" in answer["fields"][0]["message"]
    nested_in_a_string = json.dumps({"source": "s3://assets/a", "bot": "sentiment", "job_id": "[" * 100})
    status, answer = answer_of(send("POST", "/jobs", nested_in_a_string, {"Content-Type": "application/json"}))
    assert status == 400 and fields(answer) == ["body.job_id"]  # brackets inside a string are not nesting


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("!!!not base64!!!", "the body is not valid base64"),
        (base64.b64encode(b'{"source": "s3://assets/\xff", "bot": "sentiment"}').decode(), "the body is not UTF-8 text"),
    ],
)
def test_a_base64_body_that_is_not_base64_or_not_utf8_is_400(cloud, raw, error):
    status, answer = answer_of(send("POST", "/jobs", raw, {"Content-Type": "application/json"}, is_base64=True))
    assert status == 400 and answer["error"] == error and fields(answer) == ["body"]


def test_a_base64_json_body_is_read_like_a_plain_one(cloud):
    raw = base64.b64encode(JOB.encode()).decode()
    status, answer = answer_of(send("POST", "/jobs", raw, {"Content-Type": "application/json"}, is_base64=True))
    assert status == 202, answer


@pytest.mark.parametrize("path", ["/tags", "/jobs"])
@pytest.mark.parametrize(
    "cursor",
    [
        encode_cursor([{"script": "1"}]),
        encode_cursor(["1718000000000", "a", "b"]),
        encode_cursor([1.5, "a", "b"]),
        encode_cursor([1718000000000, "a", "b", "c", "d"]),
        base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("="),
        "bm90IGpzb24",
    ],
)
def test_a_crafted_cursor_is_400_naming_after(cloud, path, cursor):
    status, answer = call("GET", path, query={"after": cursor})
    assert status == 400, answer
    assert fields(answer) == ["query.after"]


def test_an_unknown_method_is_405_with_the_allowed_ones(cloud):
    response = send("PATCH", "/jobs/job-1", None, {})
    status, answer = answer_of(response)
    assert status == 405 and "GET" in answer["error"] and "DELETE" in answer["error"]
    assert response["multiValueHeaders"]["Allow"] == ["DELETE, GET"]
    assert call("PUT", "/jobs")[0] == 405
    assert call("GET", "/nowhere")[0] == 404


def test_search_over_huge_text_records_stays_under_lambdas_limit(cloud):
    text = "欢迎光临" * 75_000  # 300,000 characters each: 1.8 MB once JSON-escaped, 14 MB for the eight
    for i in range(8):
        tagged = record(f"s3://assets/r/{i:02}.txt", [Tag(label="x", score=1)], text=text, job="big",
                        created_at=T0 + timedelta(minutes=i))
        doc = tagged.model_dump(mode="json") | {"search_text": "欢迎光临"}  # indexed short: osmem n-grams every character
        cloud.index.client.index(index=cloud.index.tags_index, id=f"big-{i}", body=doc)
    cloud.index.refresh()
    event = proxy_event("GET", "/tags", resource="/tags", query={"q": ["光临"], "limit": ["1000"]})
    response = handler(event, LambdaContextStub())
    assert len(json.dumps(response)) < LAMBDA_LIMIT
    page = json.loads(response["body"])
    assert len(page["items"]) == 8 and page["next"] is None
    first = page["items"][0]
    assert first["truncated"] is True and first["text"] == text[: pages.HIT_TEXT_CHARS]


def test_a_page_stops_at_its_byte_budget_and_the_next_one_goes_on(cloud, monkeypatch):
    monkeypatch.setattr(pages, "PAGE_BYTES", 30_000)
    for n in range(12):
        cloud.index.save_job(
            Job(job_id=f"job-{n:02}", bot="sentiment", source=f"s3://assets/{n}", output="s3://out/tags", workers=1,
                status=JobStatus.FAILED, error="é" * 3000, created_at=T0 + timedelta(minutes=n))
        )
    seen, after, page_sizes = [], None, []
    while True:
        event = proxy_event("GET", "/jobs", resource="/jobs",
                            query={"limit": ["1000"], **({"after": [after]} if after else {})})
        response = handler(event, LambdaContextStub())
        page = json.loads(response["body"])
        assert len(response["body"]) <= 30_000 + 20_000  # one item may cross the budget, never two
        page_sizes.append(len(page["items"]))
        seen += [job["job_id"] for job in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert len(page_sizes) > 1 and seen == [f"job-{n:02}" for n in reversed(range(12))]  # each once, newest first


def test_listing_a_thousand_jobs_counts_the_live_ones_in_one_search(cloud):
    for n in range(30):
        cloud.index.save_job(Job(job_id=f"live-{n:02}", bot="sentiment", source="s3://a/b", output="s3://c/d", workers=1,
                                 status=JobStatus.RUNNING))
    searches = []
    original = cloud.index.client.search
    cloud.index.client.search = lambda *a, **k: searches.append(k.get("index")) or original(*a, **k)
    try:
        status, page = call("GET", "/jobs", query={"limit": 1000})
    finally:
        cloud.index.client.search = original
    assert status == 200 and len(page["items"]) == 30
    assert searches.count(cloud.index.tasks_index) == 1 and len(searches) == 2


def test_the_openapi_document_lists_every_status_and_limit(cloud):
    status, document = call("GET", "/openapi.json")
    paths = document["paths"]
    assert set(paths["/jobs"]["post"]["responses"]) == {"200", "202", "400", "409", "415"}
    assert set(paths["/jobs"]["get"]["responses"]) == {"200", "400"}
    assert set(paths["/jobs/{job_id}"]["get"]["responses"]) == {"200", "400", "404"}
    assert set(paths["/jobs/{job_id}"]["delete"]["responses"]) == {"200", "400", "403", "404", "409"}
    assert set(paths["/bots/{name}"]["put"]["responses"]) == {"200", "201", "400", "403", "409", "415"}
    assert set(paths["/bots/{name}"]["delete"]["responses"]) == {"204", "400", "403", "404", "409"}
    (job_id,) = paths["/jobs/{job_id}"]["get"]["parameters"]
    assert job_id["schema"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
    tag_params = {p["name"]: p["schema"] for p in paths["/tags"]["get"]["parameters"]}
    assert tag_params["limit"]["maximum"] == 1000
    assert {"type": "string", "maxLength": 8192, "pattern": "^[A-Za-z0-9_-]+$"} in tag_params["after"]["anyOf"]
    assert not [s for path in paths.values() for op in path.values() for s in op["responses"] if s.startswith("5")]
