"""The watch event queue on SQS, its dead-letter queue, and the lag CloudWatch measures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from spotbot.domain import utc_now
from spotbot.ports.watches import QueueFigures


class SqsWatchQueue:
    def __init__(self, sqs: Any, cloudwatch: Any, queue_url: str, dead_letter_url: str) -> None:
        self.sqs, self.cloudwatch = sqs, cloudwatch
        self.queue_url, self.dead_letter_url = queue_url, dead_letter_url

    def figures(self) -> QueueFigures:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        queue = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]
        dead = self.sqs.get_queue_attributes(QueueUrl=self.dead_letter_url, AttributeNames=names)["Attributes"]
        return QueueFigures(
            waiting=sum(int(queue.get(n, 0)) for n in names),  # in flight too: taken, not yet done
            oldest_age_s=self._oldest_age(),
            dead_letters=sum(int(dead.get(n, 0)) for n in names),
        )

    def _oldest_age(self) -> float | None:
        """SQS tells the oldest message's age only as a CloudWatch metric (a minute's resolution)."""
        now = utc_now()
        points = self.cloudwatch.get_metric_statistics(
            Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": self.queue_url.rsplit("/", 1)[-1]}],
            StartTime=now - timedelta(minutes=10), EndTime=now, Period=60, Statistics=["Maximum"],
        )["Datapoints"]  # fmt: skip
        return float(max(points, key=lambda p: p["Timestamp"])["Maximum"]) if points else None

    def dead_letter(self, body: str, *, asset: str, error: str) -> None:
        self.sqs.send_message(
            QueueUrl=self.dead_letter_url,
            MessageBody=body,
            MessageAttributes={
                "asset": {"DataType": "String", "StringValue": asset or "-"},
                "error": {"DataType": "String", "StringValue": error[:4000] or "-"},
            },
        )
