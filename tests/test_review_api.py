"""The review routes of the API (lambdas/api/reviews.py) against a real OpenSearch review store on osmem,
driven with API Gateway proxy events through the same handler the Lambda runs; and `spotbot ui --api`."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import ThreadingHTTPServer

import pytest

from lambdas.api.handler import app
from lambdas.api.reviews import review_service
from spotbot.adapters.opensearch.reviews import OpenSearchReviewStore
from spotbot.domain import AssetRef, Tag, TagRecord, TaskStatus, task_id
from spotbot.ports import TaskOutcome
from spotbot.services.planning import add_assets
from spotbot.services.reviews import ReviewService
from tests.test_api import ACCOUNT, REGION, _ApiGateway, call

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
TESTER = f"arn:aws:iam::{ACCOUNT}:user/tester"  # the identity tests.test_api's events carry


def tag_records(index, job_id: str, records: list[TagRecord]) -> None:
    add_assets(index, job_id, [AssetRef(uri=r.asset, etag=r.etag, size=1) for r in records], shard_size=100)
    index.record_outcomes(records, [TaskOutcome(r.asset, TaskStatus.DONE) for r in records], job_id)


def car(asset: str, label: str, score: float) -> TagRecord:
    tags = [Tag(label="vehicle", score=0.99), Tag(label=label, score=score, kind="make_model")]
    return TagRecord(job_id="cars", bot="car-model", model_version="v3", asset=asset, etag="e1", tags=tags)


@pytest.fixture
def reviews(opensearch_index, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    store = OpenSearchReviewStore(opensearch_index)
    store.ensure_index()
    store.ensure_index()  # idempotent
    service = ReviewService(store)
    app.dependency_overrides[review_service] = lambda: service
    tag_records(opensearch_index, "cars", [
        car("s3://photos/a.jpg", "Boxster", 0.41),
        car("s3://photos/b.jpg", "Cayman", 0.55),
        car("s3://photos/c.jpg", "Boxster", 0.97),
    ])
    opensearch_index.refresh()
    yield service
    app.dependency_overrides.pop(review_service, None)


def rid(asset: str) -> str:
    return task_id("cars", asset)


def test_the_queue_holds_the_unsure_tags_and_a_sample_of_the_rest(reviews):
    status, answer = call("GET", "/reviews", query={"bot": "car-model", "limit": 5, "threshold": 0.6})
    assert status == 200, answer
    assert answer["threshold"] == 0.6 and answer["accuracy"] == []
    by_asset = {item["record"]["asset"]: item for item in answer["items"]}
    assert by_asset["s3://photos/a.jpg"]["reason"] == "low_confidence" and by_asset["s3://photos/a.jpg"]["tag_index"] == 1
    assert by_asset["s3://photos/b.jpg"]["reason"] == "low_confidence"
    assert by_asset["s3://photos/c.jpg"]["reason"] == "sample"  # confident: only there as the random sample
    assert by_asset["s3://photos/a.jpg"]["id"] == rid("s3://photos/a.jpg")


def test_correcting_the_same_asset_twice_keeps_history_and_the_last_decision_wins(reviews):
    a = rid("s3://photos/a.jpg")
    first = call("POST", "/reviews/{record_id}", record_id=a,
                 body={"tag_index": 1, "action": "correct", "label": "Cayman", "reason": "low_confidence"})
    second = call("POST", "/reviews/{record_id}", record_id=a,
                  body={"tag_index": 1, "action": "correct", "label": "911", "reason": "low_confidence", "reviewer": "mallory"})
    assert first[0] == second[0] == 201, (first, second)
    assert second[1]["reviewer"] == TESTER  # the signed identity, not what the body claims
    assert second[1]["before"]["label"] == "Boxster" and second[1]["after"]["label"] == "911"

    status, detail = call("GET", "/reviews/{record_id}", record_id=a)
    assert status == 200 and detail["record"]["asset"] == "s3://photos/a.jpg"
    assert [h["after"]["label"] for h in detail["history"]] == ["Cayman", "911"]

    call("POST", "/reviews/{record_id}", record_id=rid("s3://photos/c.jpg"), body={"tag_index": 1, "action": "accept", "reason": "sample"})
    status, exported = call("GET", "/reviews/export", query={"bot": "car-model"})
    assert status == 200
    assert {line["source-ref"]: line["label"] for line in exported["lines"]} == {"s3://photos/a.jpg": "911", "s3://photos/c.jpg": "Boxster"}
    assert exported["lines"][0]["car-model-metadata"]["human-annotated"] == "yes"

    answer = call("GET", "/reviews", query={"bot": "car-model", "threshold": 0.6})[1]
    assert [item["record"]["asset"] for item in answer["items"]] == ["s3://photos/b.jpg"]  # reviewed ones leave the queue
    (row,) = answer["accuracy"]
    assert (row["bot"], row["model_version"]) == ("car-model", "v3")
    assert (row["queue_reviewed"], row["queue_right"], row["sample_reviewed"], row["sample_right"]) == (1, 0, 1, 1)


@pytest.mark.parametrize(
    "body, status, says",
    [
        ({"tag_index": 1, "action": "approve"}, 400, "body.action"),
        ({"tag_index": 1, "action": "correct", "label": "Boxster"}, 400, "the label already there"),
        ({"tag_index": 1, "action": "correct"}, 400, "label is empty"),
        ({"tag_index": 7, "action": "accept"}, 400, "tag 7 does not exist"),
        ({"tag_index": 1, "action": "fix_text", "text": "x"}, 400, "has no text to fix"),
        ({"tag_index": -1, "action": "accept"}, 400, "body.tag_index"),
    ],
)
def test_a_bad_decision_is_400_and_names_what_is_wrong(reviews, body, status, says):
    code, answer = call("POST", "/reviews/{record_id}", record_id=rid("s3://photos/a.jpg"), body=body)
    assert code == status and says in json.dumps(answer), answer
    assert reviews.history(rid("s3://photos/a.jpg")) == []


def test_an_unknown_record_is_404(reviews):
    assert call("POST", "/reviews/{record_id}", record_id="0" * 32, body={"tag_index": 0, "action": "accept"})[0] == 404
    status, answer = call("GET", "/reviews/{record_id}", record_id="etc-passwd")
    assert status == 404 and "32 hex digits" in answer["error"]


@pytest.fixture
def api_url(reviews, monkeypatch):
    for name, value in (("AWS_ACCESS_KEY_ID", "AKIDTESTING"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("NO_PROXY", "127.0.0.1")):
        monkeypatch.setenv(name, value)
    _ApiGateway.seen, _ApiGateway.lambda_output = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiGateway)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prod"
    server.shutdown()
    server.server_close()


def test_the_ui_pointed_at_the_api_reviews_the_cloud_index(reviews, api_url, tmp_path):
    import uvicorn

    from spotbot.entrypoints.ui import UiOptions, build_app
    from spotbot.settings import Settings

    web, _ = build_app(Settings(home=tmp_path), UiOptions(api=api_url, reviewer="me", thresholds={"car-model": 0.6}))
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        threading.Event().wait(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        page = urllib.request.urlopen(f"{base}/review?bot=car-model&threshold=0.6").read().decode()
        assert 'data-id="%s"' % rid("s3://photos/a.jpg") in page and "Cayman" in page
        request = urllib.request.Request(
            f"{base}/api/reviews/{rid('s3://photos/b.jpg')}", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"tag_index": 1, "action": "reject", "reason": "low_confidence"}).encode(),
        )
        saved = json.loads(urllib.request.urlopen(request).read())
    finally:
        server.should_exit = True
    assert saved["action"] == "reject" and saved["reviewer"] == TESTER  # decided in the cloud, as the signer
    assert [r.action.value for r in reviews.history(rid("s3://photos/b.jpg"))] == ["reject"]
    assert all(seen["headers"].get("Authorization", "").startswith("AWS4-HMAC-SHA256") for seen in _ApiGateway.seen)


def test_the_opensearch_store_pages_low_scores_and_samples_repeatably(opensearch_index):
    store = OpenSearchReviewStore(opensearch_index)
    store.ensure_index()
    tag_records(opensearch_index, "cars", [car(f"s3://photos/{i:03}.jpg", "Boxster", 0.2 if i % 3 == 0 else 0.9) for i in range(450)])
    opensearch_index.refresh()
    low = [r.asset for r in store.low_scoring("car-model", 0.5)]
    assert len(low) == len(set(low)) == 150  # over pages of 200
    first, again, other = (store.sample("car-model", 10, seed) for seed in (1, 1, 2))
    assert len(first) == 10 and [r.asset for r in first] == [r.asset for r in again] != [r.asset for r in other]
    assert store.sample("sentiment", 5, 1) == [] and store.record("0" * 32) is None


def test_spotbot_reviews_export_through_the_api(reviews, api_url, tmp_path):
    from typer.testing import CliRunner

    from spotbot.entrypoints.cli import app as cli

    out = tmp_path / "labels.manifest"
    nothing = CliRunner().invoke(cli, ["reviews", "export", "--bot", "car-model", "--out", str(out), "--api", api_url])
    assert nothing.exit_code == 2 and "no accepted or corrected car-model tags" in nothing.output and not out.exists()
    call("POST", "/reviews/{record_id}", record_id=rid("s3://photos/b.jpg"), body={"tag_index": 1, "action": "correct", "label": "911"})
    done = CliRunner().invoke(cli, ["reviews", "export", "--bot", "car-model", "--out", str(out), "--api", api_url, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"bot": "car-model", "out": str(out), "lines": 1, "labels": ["911"]}
    (line,) = [json.loads(text) for text in out.read_text(encoding="utf-8").splitlines()]
    assert (line["source-ref"], line["label"], line["car-model-metadata"]["reviewer"]) == ("s3://photos/b.jpg", "911", TESTER)
