"""Deliver SQS messages to the app's ``@app.on_sqs_message`` handlers, as
Lambda's event source mapping does: ``chalice local`` runs no event sources.

For each SQS event source of the app: up to ``maximum_concurrency``
invocations at once (``JOBS_MAX_CONCURRENCY`` overrides it locally), each a
batch of up to ``batch_size`` messages in Lambda's SQS event shape. A batch
whose handler returns is deleted; one whose handler raises is left alone, to
come back after its visibility timeout (which the handler may have set), and
SQS's redrive policy moves a message to the dead-letter queue after its
``maxReceiveCount``. The handler runs in this process, with the stage's
environment, as it would in its own Lambda function.

Run it with ``python -m devstack.sqs_poller --stage dev``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
log = logging.getLogger("sqs-poller")
IDLE_SLEEP_S = (0.05, 1.0)  # back off while the queue is empty


@dataclass(frozen=True)
class Source:
    name: str
    queue: str
    batch_size: int
    concurrency: int
    handler: Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    def __init__(self, name: str) -> None:
        self.function_name = name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 256

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def to_lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message in the shape Lambda hands to an SQS handler."""
    attributes = {name: {"stringValue": value.get("StringValue"),
                         "binaryValue": value.get("BinaryValue"),
                         "dataType": value.get("DataType")}
                  for name, value in message.get("MessageAttributes", {}).items()}
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"], "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes, "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region}


class Poller:
    def __init__(self, client: Any, source: Source, stop: threading.Event) -> None:
        self._client = client
        self._source = source
        self._stop = stop
        self._url = client.get_queue_url(QueueName=source.queue)["QueueUrl"]
        self._arn = client.get_queue_attributes(
            QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._region = client.meta.region_name

    def run_one(self) -> bool:
        """One receive and, if anything came, one invocation; False when idle."""
        messages = self._client.receive_message(
            QueueUrl=self._url, MaxNumberOfMessages=self._source.batch_size,
            AttributeNames=["All"], MessageAttributeNames=["All"],
            WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return False
        event = {"Records": [to_lambda_record(m, self._arn, self._region) for m in messages]}
        try:
            self._source.handler(event, LambdaContext(self._source.name))
        except Exception as exc:  # as Lambda: the batch stays in the queue
            log.info("%s: batch of %d failed, left in the queue: %s: %s", self._source.name,
                     len(messages), type(exc).__name__, exc)
            return True
        self._client.delete_message_batch(QueueUrl=self._url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return True

    def loop(self) -> None:
        idle = IDLE_SLEEP_S[0]
        while not self._stop.is_set():
            try:
                busy = self.run_one()
            except Exception as exc:  # the emulator hiccuped: wait and go on
                log.warning("%s: receive failed: %s", self._source.name, exc)
                busy = False
            if busy:
                idle = IDLE_SLEEP_S[0]
            else:
                self._stop.wait(idle)
                idle = min(IDLE_SLEEP_S[1], idle * 2)


def sqs_sources(app_module: Any, override: int | None) -> list[Source]:
    from chalice.app import SQSEventConfig
    sources = []
    for config in app_module.app.event_sources:
        if isinstance(config, SQSEventConfig):
            module_name, attr = config.handler_string.rsplit(".", 1)
            handler = getattr(importlib.import_module(module_name), attr)
            concurrency = override or config.maximum_concurrency or 5
            queue = config.queue or str(config.queue_arn).rsplit(":", 1)[-1]
            sources.append(Source(config.name, queue, config.batch_size, concurrency, handler))
    return sources


def load_app(stage: str) -> Any:
    """app.py with the stage's environment, as `chalice local` loads it."""
    from chalice.cli.factory import CLIFactory
    factory = CLIFactory(str(PROJECT_DIR), environ=os.environ)
    factory.create_config_obj(chalice_stage_name=stage).chalice_app
    return importlib.import_module("app")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # no credential chatter
    # Read before loading the app: Chalice puts the stage's own values
    # (.chalice/config.json) over the process environment.
    override = int(os.environ["JOBS_MAX_CONCURRENCY"]) if os.environ.get(
        "JOBS_MAX_CONCURRENCY") else None
    app_module = load_app(args.stage)
    from chalicelib.aws import make_sqs_client
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = []
    for source in sqs_sources(app_module, override):
        poller = Poller(make_sqs_client(), source, stop)
        print(f"SQS poller: {source.name} <- {source.queue} (batch {source.batch_size}, "
              f"at most {source.concurrency} at once)", flush=True)
        for _ in range(source.concurrency):
            thread = threading.Thread(target=poller.loop, daemon=True)
            thread.start()
            threads.append(thread)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        stop.set()
    for thread in threads:
        thread.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
