"""The local AWS emulator's SQS keeps moto's semantics after its speed-up."""
from __future__ import annotations

import json
import uuid
from typing import Any


def test_queue_counters_and_redrive(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}", Attributes={
        "VisibilityTimeout": "600",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})})["QueueUrl"]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    taken = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]

    def counts() -> tuple[int, int, int]:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return (int(attrs["ApproximateNumberOfMessages"]),
                int(attrs["ApproximateNumberOfMessagesNotVisible"]),
                int(attrs["ApproximateNumberOfMessagesDelayed"]))
    assert counts() == (2, 1, 1)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=taken["ReceiptHandle"],
                                  VisibilityTimeout=0)
    assert counts() == (3, 0, 1)
    for _ in range(2):  # two receives of everything visible, never deleted
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in moved) == ["a", "b", "c"]  # the delayed one stays
