"""Keys and limits on make run's stack, made with the operator command."""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl, http

pytestmark = pytest.mark.e2e
JSON = {"Content-Type": "application/json"}


def new_key(stack: LocalStack, *limits: str) -> tuple[str, str]:
    out = stack.keys_command("create", "--tenant", "e2e", *limits)
    secret = re.search(r"key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    key_id = re.search(r"key id: (\S+)", out).group(1)  # type: ignore[union-attr]
    return secret, key_id


def chat(stack: LocalStack, key: str, max_tokens: int = 50) -> tuple[int, dict[str, str], dict]:
    status, headers, body = http("POST", stack.url + "/chat",
                                 {"prompt": "Hello, how are you?", "max_tokens": max_tokens},
                                 {**JSON, "Authorization": f"Bearer {key}"}, timeout=60)
    return status, headers, json.loads(body)


def test_no_route_but_health_answers_without_a_valid_key(stack: LocalStack) -> None:
    assert http("GET", stack.url + "/health")[0] == 200
    for method, path, body in [("POST", "/chat", {"prompt": "x"}), ("GET", "/v1/models", None),
                               ("POST", "/v1/chat/completions", {"model": "m", "messages": []})]:
        assert http(method, stack.url + path, body, JSON)[0] == 401
        status, headers, answer = http(method, stack.url + path, body,
                                       {**JSON, "Authorization": "Bearer llm_" + "q" * 43})
        assert status == 401 and json.loads(answer)["error"]["code"] == "invalid_api_key"
        assert headers["x-request-id"]
    status, _, answer = http("GET", stack.url + "/no/such/path", None, JSON)
    assert status == 404 and json.loads(answer)["error"]["code"] == "not_found"


def test_requests_per_minute(stack: LocalStack, emulator: EmulatorControl) -> None:
    secret, _ = new_key(stack, "--rpm", "3")
    results = [chat(stack, secret) for _ in range(5)]
    assert [status for status, _, _ in results] == [200, 200, 200, 429, 429]
    status, headers, body = results[3]
    assert body["error"]["code"] == "requests_per_minute_exceeded"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert len(emulator.requests()) == 3


def test_daily_budget_holds_under_concurrent_load(stack: LocalStack,
                                                  emulator: EmulatorControl) -> None:
    secret, _ = new_key(stack, "--tpd", "2000", "--rpm", "none", "--tpm", "none")
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda _: chat(stack, secret, max_tokens=100), range(100)))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 1
    assert all(body["error"]["code"] == "tokens_per_day_exceeded"
               for status, _, body in results if status == 429)
    used = sum(body["usage"]["total_tokens"] for status, _, body in results if status == 200)
    assert used <= 2000  # never past the budget (reservations are worst cases)
    assert len(emulator.requests()) == statuses.count(200)


def test_revoking_locks_the_key_out(stack: LocalStack) -> None:
    secret, key_id = new_key(stack)
    assert chat(stack, secret)[0] == 200
    stack.keys_command("revoke", key_id)
    assert chat(stack, secret)[0] == 401
    listing = stack.keys_command("list")
    assert f"{key_id}  tenant=e2e  revoked" in listing and secret not in listing
