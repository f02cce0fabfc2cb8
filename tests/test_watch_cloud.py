"""Continuous tagging in the cloud (issue 12), in moto and osmem: S3 put -> EventBridge rule -> SQS ->
the consumer's real handler -> records in OpenSearch and JSON Lines in S3; a poison asset is dead-lettered
after its retries with its error; the /watches routes register, show and unsubscribe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.api.handler import app
from lambdas.api.settings import api_settings
from lambdas.api.watches import watch_services
from spotbot.entrypoints import watch_consumer as consumer
from spotbot.adapters.opensearch.index import OpenSearchTagIndex
from spotbot.adapters.watch_wiring import watch_adapters
from spotbot.settings import Settings
from tests.test_api import call

LENGTH = "tests.support_bots:LengthBot"
REGION = "eu-west-1"


@pytest.fixture
def aws(tmp_path: Path, monkeypatch, osmem_clone) -> Any:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "SPOTBOT_DEFAULT_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDTESTING", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                        "NO_PROXY": "127.0.0.1,localhost"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3, sqs, events = boto3.client("s3"), boto3.client("sqs"), boto3.client("events")
        for bucket in ("src", "work"):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_notification_configuration(Bucket="src", NotificationConfiguration={"EventBridgeConfiguration": {}})
        dlq = sqs.create_queue(QueueName="watch-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})  # a backstop for crashes
        queue = sqs.create_queue(QueueName="watch-events", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": ["src"]}}}
        events.put_rule(Name="watch-objects", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="watch-objects", Targets=[{"Id": "queue", "Arn": queue_arn}])
        settings = {
            "SPOTBOT_REGION": REGION, "SPOTBOT_WORK_BUCKET": "work", "SPOTBOT_SOURCE_BUCKETS": '["src"]', "SPOTBOT_OPENSEARCH_ENDPOINT": osmem_clone.url,
            "SPOTBOT_OPENSEARCH_SIGV4": "false", "SPOTBOT_WATCH_QUEUE_URL": queue,
            "SPOTBOT_WATCH_DEAD_LETTER_QUEUE_URL": dlq, "SPOTBOT_MODELS": str(tmp_path / "models"),
            "SPOTBOT_HOME": str(tmp_path / "home"), "SPOTBOT_TEST_PREDICT_LOG": str(tmp_path / "predicted.log"),
        }  # fmt: skip
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        consumer._consumer.cache_clear()
        consumer._runtime.cache_clear()
        index = OpenSearchTagIndex.connect(osmem_clone.url, sigv4=False)
        index.ensure_indices()
        registry, watch_queue = watch_adapters(Settings())
        app.dependency_overrides[watch_services] = lambda: (registry, watch_queue, index)
        app.dependency_overrides[api_settings] = lambda: Settings()
        yield {"s3": s3, "sqs": sqs, "queue": queue, "dlq": dlq, "index": index, "log": tmp_path / "predicted.log"}
        app.dependency_overrides.clear()
        index.close()


def drain(aws: Any) -> tuple[list[str], int]:
    """Receives what the queue holds and runs the consumer's handler on it, as the SQS event source does."""
    got = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0)
    messages = got.get("Messages", [])
    records = [
        {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": m["Attributes"]}
        for m in messages
    ]
    answer = consumer.handler({"Records": records}, None)
    retry = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    for m in messages:
        if m["MessageId"] in retry:  # back on the queue at once (the visibility timeout, shortened)
            aws["sqs"].change_message_visibility(QueueUrl=aws["queue"], ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        else:
            aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=m["ReceiptHandle"])
    return sorted(retry), len(messages)


def predicted(log: Path) -> list[str]:
    return sorted(log.read_text(encoding="utf-8").splitlines()) if log.exists() else []


def parts(s3: Any, prefix: str) -> list[dict]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="work", Prefix=prefix).get("Contents", [])]
    return [json.loads(line) for key in keys if key.endswith(".jsonl")
            for line in s3.get_object(Bucket="work", Key=key)["Body"].read().decode().splitlines()]  # fmt: skip


def test_objects_put_under_a_watched_prefix_are_tagged_once_into_opensearch_and_s3(aws):
    status, watch = call("POST", "/watches", body={"source": "s3://src/inbox/", "bot": LENGTH})
    assert status == 201 and watch["watch_id"].startswith("watch-") and watch["file_types"] == [".txt"]
    assert call("POST", "/watches", body={"source": "s3://src/inbox/", "bot": LENGTH})[1]["watch_id"] == watch["watch_id"]
    s3 = aws["s3"]
    s3.put_object(Bucket="src", Key="inbox/a.txt", Body="a.txt\nsome words".encode())
    s3.put_object(Bucket="src", Key="inbox/deep/b.txt", Body="b.txt\nmore words, quite a few".encode())
    s3.put_object(Bucket="src", Key="elsewhere/c.txt", Body=b"c.txt\nnot watched")
    s3.put_object(Bucket="src", Key="inbox/d.png", Body=b"not a text")

    assert drain(aws) == ([], 4)
    assert predicted(aws["log"]) == ["a.txt", "b.txt"]
    records = {r.asset: r for r in aws["index"].tag_records(watch["watch_id"], consistent=True)}
    assert sorted(records) == ["s3://src/inbox/a.txt", "s3://src/inbox/deep/b.txt"]
    lines = parts(s3, f"output/{watch['watch_id']}/")
    assert sorted(line["asset"] for line in lines) == sorted(records)

    s3.copy_object(Bucket="src", Key="inbox/a.txt", CopySource={"Bucket": "src", "Key": "inbox/a.txt"},
                   MetadataDirective="REPLACE")  # fmt: skip -- a new event for the same bytes
    a_event = aws["sqs"].receive_message(QueueUrl=aws["queue"], WaitTimeSeconds=0)["Messages"][0]
    for _ in range(2):  # S3 delivers at least once: the same event again
        aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=a_event["Body"])
    aws["sqs"].change_message_visibility(QueueUrl=aws["queue"], ReceiptHandle=a_event["ReceiptHandle"], VisibilityTimeout=0)
    assert drain(aws) == ([], 3)
    assert predicted(aws["log"]) == ["a.txt", "b.txt"]  # nothing predicted twice
    assert len(parts(s3, f"output/{watch['watch_id']}/")) == 2

    status, shown = call("GET", "/watches/{watch_id}", watch_id=watch["watch_id"])
    assert status == 200 and shown["counts"]["done"] == 2 and shown["dead_letters"] == 0 and shown["waiting"] == 0

    assert call("DELETE", "/watches/{watch_id}", watch_id=watch["watch_id"])[0] == 204
    s3.put_object(Bucket="src", Key="inbox/after.txt", Body=b"after.txt\nunwatched now")
    assert drain(aws) == ([], 1)
    assert "after.txt" not in predicted(aws["log"])
    assert call("GET", "/watches/{watch_id}", watch_id=watch["watch_id"])[0] == 404
    assert call("DELETE", "/watches/{watch_id}", watch_id=watch["watch_id"])[0] == 404


def test_a_poison_asset_is_retried_then_dead_lettered_with_its_error(aws):
    _, watch = call("POST", "/watches", body={"source": "s3://src/in/", "bot": LENGTH})
    aws["s3"].put_object(Bucket="src", Key="in/empty.txt", Body=b"")  # cannot be decoded: the asset fails
    aws["s3"].put_object(Bucket="src", Key="in/good.txt", Body=b"good.txt\nfine")
    first = drain(aws)
    assert first[1] == 2 and len(first[0]) == 1  # the good one is done, the poison one is retried
    assert drain(aws)[0] != []  # its second receive fails too
    assert drain(aws) == ([], 1)  # the third: dead-lettered, so deleted from the queue
    dead = aws["sqs"].receive_message(QueueUrl=aws["dlq"], MessageAttributeNames=["All"])["Messages"]
    assert len(dead) == 1
    attributes = {k: v["StringValue"] for k, v in dead[0]["MessageAttributes"].items()}
    assert attributes["asset"] == "s3://src/in/empty.txt" and "empty file" in attributes["error"]
    assert json.loads(dead[0]["Body"])["detail"]["object"]["key"] == "in/empty.txt"
    status, shown = call("GET", "/watches/{watch_id}", watch_id=watch["watch_id"])
    assert shown["dead_letters"] == 1 and shown["counts"]["failed"] == 1 and shown["counts"]["done"] == 1


def test_a_message_that_is_no_s3_event_is_dead_lettered_at_once(aws):
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody="{not json")
    assert drain(aws) == ([], 1)
    dead = aws["sqs"].receive_message(QueueUrl=aws["dlq"], MessageAttributeNames=["All"])["Messages"]
    assert "not an S3 event" in dead[0]["MessageAttributes"]["error"]["StringValue"]


def test_event_keys_are_read_url_decoded_or_as_written_whichever_exists(aws):
    _, watch = call("POST", "/watches", body={"source": "s3://src/odd/", "bot": LENGTH})
    for key in ("odd/red flower.txt", "odd/c++.txt", "odd/a+b.txt"):
        aws["s3"].put_object(Bucket="src", Key=key, Body=f"{key}\nwords".encode())
    drain(aws)  # moto's own events, in whatever form it writes keys

    etag = {key: aws["s3"].head_object(Bucket="src", Key=key)["ETag"].strip('"') for key in
            ("odd/red flower.txt", "odd/c++.txt", "odd/a+b.txt")}  # fmt: skip

    def event(key: str, real: str) -> str:
        detail = {"bucket": {"name": "src"}, "object": {"key": key, "size": 10, "etag": etag[real]}}
        return json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": detail})

    sent = {"odd/red+flower.txt": "odd/red flower.txt", "odd/c%2B%2B.txt": "odd/c++.txt", "odd/a+b.txt": "odd/a+b.txt"}
    for key, real in sent.items():  # encoded, encoded, and written as is
        aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=event(key, real))
    assert drain(aws) == ([], 3)
    tagged = {r.asset for r in aws["index"].tag_records(watch["watch_id"], consistent=True)}
    assert tagged == {"s3://src/odd/red flower.txt", "s3://src/odd/c++.txt", "s3://src/odd/a+b.txt"}
    assert aws["index"].counts(watch["watch_id"]).failed == 0


@pytest.mark.parametrize(("body", "field"), [({"source": "/local/dir", "bot": LENGTH}, "body.source"),
                                              ({"source": "s3://not-granted/x/", "bot": LENGTH}, "body.source"),
                                              ({"source": "s3://src/x/", "bot": LENGTH, "every": "1m"}, "body.every"),
                                              ({"source": "s3://src/x/", "bot": "no-such-bot"}, "body.bot")])  # fmt: skip
def test_a_bad_watch_is_400_naming_the_field(aws, body, field):
    status, answer = call("POST", "/watches", body=body)
    assert status == 400 and answer["fields"][0]["field"] == field


def test_spotbot_cloud_watch_adds_shows_and_removes_a_watch(aws):
    import threading
    from http.server import ThreadingHTTPServer

    from typer.testing import CliRunner

    from spotbot.entrypoints.cli.cloud import app as cloud_app
    from tests.test_api import _ApiGateway

    _ApiGateway.seen, _ApiGateway.lambda_output = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiGateway)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    env = {"SPOTBOT_API_URL": f"http://127.0.0.1:{server.server_address[1]}/prod", "COLUMNS": "200", "AWS_REGION": "us-east-1"}
    runner = CliRunner()
    try:
        added = runner.invoke(cloud_app, ["watch", "add", "s3://src/cli/", "--bot", LENGTH, "--json"], env=env)
        assert added.exit_code == 0, added.output
        watch_id = json.loads(added.stdout)["watch_id"]
        aws["s3"].put_object(Bucket="src", Key="cli/x.txt", Body=b"x.txt\nwords")
        drain(aws)
        shown = runner.invoke(cloud_app, ["watch", "status", watch_id], env=env)
        assert shown.exit_code == 0 and "done 1" in shown.stdout and "0 dead letter(s)" in shown.stdout, shown.output
        assert runner.invoke(cloud_app, ["watch", "remove", watch_id], env=env).exit_code == 0
        gone = runner.invoke(cloud_app, ["watch", "status", watch_id], env=env)
        assert gone.exit_code == 2 and "no watch" in gone.output
        bad = runner.invoke(cloud_app, ["watch", "add", "not-s3", "--bot", LENGTH], env=env)
        assert bad.exit_code == 2 and "body.source" in bad.output
    finally:
        server.shutdown()
        server.server_close()
