"""Bursts on make run's stack: hundreds of jobs through SQS and the poller, a
poisoned job, and a synchronous burst against a throttling Bedrock."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl, http

pytestmark = pytest.mark.e2e
JSON = {"Content-Type": "application/json"}
WORKER_CAP = 4  # JOBS_MAX_CONCURRENCY of the e2e stack


def post(stack: LocalStack, path: str, body: dict[str, Any], **headers: str) -> tuple[int, dict, Any]:
    status, response_headers, raw = http("POST", stack.url + path, body,
                                         {**JSON, **stack.auth, **headers}, timeout=120)
    return status, response_headers, json.loads(raw)


def job_status(stack: LocalStack, job_id: str) -> dict[str, Any]:
    return json.loads(http("GET", f"{stack.url}/chat/jobs/{job_id}", None, stack.auth)[2])


def wait_finished(stack: LocalStack, ids: list[str], timeout: float) -> dict[str, dict]:
    deadline, final = time.monotonic() + timeout, {}
    while time.monotonic() < deadline and len(final) < len(ids):
        for job_id in ids:
            if job_id not in final:
                state = job_status(stack, job_id)
                if state["status"] in ("succeeded", "failed"):
                    final[job_id] = state
        time.sleep(0.2)
    return final


def test_a_burst_of_jobs_loses_nothing_and_respects_the_cap(
        stack: LocalStack, emulator: EmulatorControl) -> None:
    emulator.configure(latency_ms=20, max_concurrency=WORKER_CAP)
    with ThreadPoolExecutor(max_workers=50) as pool:
        accepted = list(pool.map(lambda i: post(stack, "/chat/jobs",
                                                {"prompt": f"burst {i}", "max_tokens": 30}),
                                 range(200)))
    assert [status for status, _, _ in accepted] == [202] * 200
    ids = [body["job_id"] for _, _, body in accepted]
    final = wait_finished(stack, ids, timeout=240)
    assert len(final) == 200, f"lost or stuck: {200 - len(final)}"
    assert {state["status"] for state in final.values()} == {"succeeded"}
    stats = emulator.stats()
    assert stats["max_in_flight"] <= WORKER_CAP and stats["throttled"] == 0
    assert stats["invocations"] == 200  # each job called Bedrock once


def test_a_poisoned_job_fails_into_the_dead_letter_queue(
        stack: LocalStack, emulator: EmulatorControl) -> None:
    emulator.configure(fault_rate={"ModelErrorException": 1.0})
    _, _, accepted = post(stack, "/chat/jobs", {"prompt": "poison"})
    final = wait_finished(stack, [accepted["job_id"]], timeout=60)[accepted["job_id"]]
    assert final["status"] == "failed" and final["attempts"] == 5
    assert final["error"]["message"].startswith("Gave up after 5 attempts")
    import botocore.session
    sqs = botocore.session.get_session().create_client(
        "sqs", endpoint_url=f"http://127.0.0.1:{stack.aws_port}", region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x")
    url = sqs.get_queue_url(QueueName="llm-endpoint-dev-jobs-dlq")["QueueUrl"]
    deadline = time.monotonic() + 30
    bodies: list[str] = []
    while time.monotonic() < deadline and not bodies:
        bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
                  .get("Messages", [])]
        time.sleep(0.2)
    # The message carries the job's reservation too (released should the record expire).
    assert accepted["job_id"] in [json.loads(body)["job_id"] for body in bodies]


def test_a_synchronous_burst_gets_only_200s_and_429s(stack: LocalStack,
                                                     emulator: EmulatorControl) -> None:
    emulator.configure(latency_ms=50, max_concurrency=2)
    with ThreadPoolExecutor(max_workers=150) as pool:
        results = list(pool.map(lambda i: post(stack, "/chat", {"prompt": f"sync {i}",
                                                                "max_tokens": 20}), range(300)))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 429} and statuses.count(200) > 0 and statuses.count(429) > 0
    for status, headers, body in results:
        if status == 429:
            assert body["error"]["code"] == "upstream_throttled" and headers["Retry-After"]
