"""The watch resources of the CDK app (issue 12): queue, DLQ, rule and consumer, least privilege, cdk-nag and cfn-lint clean."""

from __future__ import annotations

import json
from typing import Any

from spotbot.services.grants import ASSETS_PREFIX

from tests.test_stacks import (  # noqa: F401 -- the module's synthesis fixtures, and its nag and lint checks
    of_type,
    resources,
    synthesized,
    template,
    test_cdk_nag_aws_solutions_finds_nothing_unacknowledged,
    test_cfn_lint_finds_no_errors_in_the_template,
)


def named(resources: dict[str, Any], kind: str, part: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(n, r) for n, r in of_type(resources, kind).items() if part in n]
    return found


def policy_statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [
        s
        for p in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_event_queue_has_an_encrypted_dead_letter_queue_and_takes_only_tls(resources):
    queue_id, queue = named(resources, "AWS::SQS::Queue", "WatchesEvents")
    dlq_id, dlq = named(resources, "AWS::SQS::Queue", "WatchesDeadLetters")
    assert queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert queue["Properties"]["SqsManagedSseEnabled"] and dlq["Properties"]["SqsManagedSseEnabled"]
    policies = json.dumps([p for p in of_type(resources, "AWS::SQS::QueuePolicy").values()])
    assert '"aws:SecureTransport": "false"' in policies and "events.amazonaws.com" in policies


def test_the_rule_sends_object_created_events_of_the_source_buckets_to_the_queue(resources):
    queue_id, _ = named(resources, "AWS::SQS::Queue", "WatchesEvents")
    _, rule = named(resources, "AWS::Events::Rule", "Watches")
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    inbox, sources = pattern["detail"]["$or"]
    assert sources == {"bucket": {"name": ["my-assets", "more-assets"]}}
    assert inbox["object"]["key"] == [{"prefix": ASSETS_PREFIX}] and "StorageWork" in json.dumps(inbox["bucket"]["name"])
    assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [{"Fn::GetAtt": [queue_id, "Arn"]}]


def test_the_consumer_is_the_serving_image_draining_the_queue_one_at_a_time(resources):
    consumer_id, consumer = named(resources, "AWS::Lambda::Function", "WatchesConsumer")
    props = consumer["Properties"]
    assert props["PackageType"] == "Image" and props["ReservedConcurrentExecutions"] == 1
    assert props["ImageConfig"] == {
        "EntryPoint": ["python", "-m", "spotbot.entrypoints.lambda_runtime"],
        "Command": ["spotbot.entrypoints.watch_consumer:handler"],
    }
    image = json.dumps(props["Code"]["ImageUri"])
    serving = [json.dumps(r["Properties"]["PrimaryContainer"]["Image"]) for r in of_type(resources, "AWS::SageMaker::Model").values()
               if "PrimaryContainer" in r["Properties"]]  # fmt: skip
    assert "cdk-hnb659fds-container-assets" in image and (not serving or image in serving[0] or serving[0] in image)
    assert {"SPOTBOT_WATCH_QUEUE_URL", "SPOTBOT_WATCH_DEAD_LETTER_QUEUE_URL", "SPOTBOT_OPENSEARCH_ENDPOINT"} <= set(
        props["Environment"]["Variables"]
    )
    (mapping,) = [m for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
                  if m["Properties"]["FunctionName"] == {"Ref": consumer_id}]  # fmt: skip
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["BatchSize"] == 10


def test_the_consumer_may_send_only_to_the_dead_letter_queue_and_the_api_only_read_the_queues(resources):
    _, consumer = named(resources, "AWS::Lambda::Function", "WatchesConsumer")
    queue_id, _ = named(resources, "AWS::SQS::Queue", "WatchesEvents")
    dlq_id, _ = named(resources, "AWS::SQS::Queue", "WatchesDeadLetters")
    statements = policy_statements(resources, consumer["Properties"]["Role"]["Fn::GetAtt"][0])
    senders = [s for s in statements if "sqs:SendMessage" in json.dumps(s["Action"])]
    assert [s["Resource"] for s in senders] == [{"Fn::GetAtt": [dlq_id, "Arn"]}]
    writes = [s for s in statements if any(a.startswith("s3:Put") or a.startswith("s3:Delete") for a in
                                          (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))]  # fmt: skip
    assert "watches/" not in json.dumps(writes)  # registrations are the API's to write

    _, api = next((n, r) for n, r in of_type(resources, "AWS::Lambda::Function").items() if n.startswith("FunctionsApi"))
    api_statements = policy_statements(resources, api["Properties"]["Role"]["Fn::GetAtt"][0])
    queue_reads = [s for s in api_statements if s["Action"] == "sqs:GetQueueAttributes"]
    read = [r for s in queue_reads for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert sorted(json.dumps(r) for r in read) == sorted(json.dumps({"Fn::GetAtt": [q, "Arn"]}) for q in (queue_id, dlq_id))
    assert not [s for s in api_statements if "sqs:ReceiveMessage" in json.dumps(s["Action"])]
