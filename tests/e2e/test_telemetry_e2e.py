"""What an operator sees: one JSON log line and one EMF record per request on
make run's stack, with a cost that matches the tokens, and no prompt text."""
from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from tests.e2e.stack import LocalStack
from tests.support import http

pytestmark = pytest.mark.e2e


def test_a_request_leaves_one_log_line_and_one_emf_record(stack: LocalStack) -> None:
    prompt = "orchid-tangent-5519 please keep this secret"
    status, headers, raw = http("POST", stack.url + "/chat", {"prompt": prompt, "max_tokens": 30},
                                {"Content-Type": "application/json", **stack.auth})
    assert status == 200
    usage = json.loads(raw)["usage"]
    request_id = headers["x-request-id"]
    logs: list[dict] = []
    emf: list[dict] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not logs:
        time.sleep(0.2)
        records = [json.loads(line) for line in stack.output.splitlines() if line.startswith("{")]
        logs = [r for r in records if r.get("request_id") == request_id]
        emf = [r for r in records if "_aws" in r]
    assert len(logs) == 1, logs
    log = logs[0]
    assert (log["route"], log["status"], log["tenant"]) == ("POST /chat", 200, "local")
    expected = (usage["input_tokens"] + usage["output_tokens"]) * Decimal("0.22") / 1_000_000
    assert log["cost_usd"] == usage["cost_usd"] == round(float(expected), 8)
    assert any(r["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LLMEndpoint"
               and r.get("InputTokens") == [float(usage["input_tokens"])] for r in emf)
    assert "orchid-tangent-5519" not in stack.output
