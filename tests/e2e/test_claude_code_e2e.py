"""Claude Code's own requests, recorded (tests/fixtures/claude_code/), replayed
against the stack that `make run` starts: its first turn (a system prompt and
tool list of ~48 KB, thinking, a clear_thinking edit, a deferred tool, a
system message among the others, 32,000 max_tokens, streamed) and its tool
loop turn (a tool_use answered by an is_error tool_result), for Llama and for
Claude, with the key as Claude Code's Bearer token and as x-api-key."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import LocalStack
from tests.openapi_check import messages_events
from tests.support import EmulatorControl, http

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude_code"
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def replay(stack: LocalStack, name: str, model: str, key_header: dict[str, str],
           **changes: Any) -> tuple[int, bytes]:
    request = recorded(name)
    body = {**request["body"], "model": model, **changes}
    status, _, raw = http("POST", stack.url + request["path"], body,
                          {**request["headers"], **key_header}, timeout=60)
    return status, raw


@pytest.mark.parametrize("model", [LLAMA, CLAUDE])
@pytest.mark.parametrize("name", ["first_turn", "tool_result_turn"])
def test_claude_codes_requests_are_served_streamed(stack: LocalStack, emulator: EmulatorControl,
                                                   model: str, name: str) -> None:
    status, raw = replay(stack, name, model, {"Authorization": f"Bearer {stack.key}"})
    assert status == 200, raw[:500]
    events = messages_events(raw)
    assert events[-1][0] == "message_stop"
    usage = events[-2][1]["usage"]
    prompt = (usage["input_tokens"] + usage["cache_creation_input_tokens"]
              + usage["cache_read_input_tokens"])
    assert prompt > 4_000  # the whole system prompt went (cached or not)
    (sent,) = emulator.requests()
    body = sent["body"]
    if model == LLAMA:
        assert body["max_gen_len"] == 2048  # Claude Code's 32,000, at Llama's maximum
        assert "Bash" in body["prompt"] and "DeferredToolPlaceholder" not in body["prompt"]
    else:
        names = [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]]
        assert "Bash" in names and "DeferredToolPlaceholder" not in names
    if name == "tool_result_turn":
        text = body["prompt"] if model == LLAMA else json.dumps(body["messages"])
        assert "Error: " in text  # the is_error result, marked


def test_the_first_turn_plain_and_with_x_api_key(stack: LocalStack) -> None:
    status, raw = replay(stack, "first_turn", CLAUDE, {"x-api-key": stack.key}, stream=False)
    assert status == 200, raw[:500]
    message = json.loads(raw)
    assert message["type"] == "message" and message["content"]
    status, raw = replay(stack, "first_turn", CLAUDE, {"x-api-key": "not-the-key"})
    assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"


def test_counting_claude_codes_prompt_reserves_nothing(
        stack: LocalStack, emulator: EmulatorControl) -> None:
    request = recorded("first_turn")
    body = {k: v for k, v in request["body"].items() if k not in ("stream",)}
    status, _, raw = http("POST", f"{stack.url}/v1/messages/count_tokens", body,
                          {**request["headers"], "Authorization": f"Bearer {stack.key}"})
    assert status == 200, raw[:300]
    assert json.loads(raw)["input_tokens"] > 10_000
    assert emulator.requests() == []


def test_claude_codes_cache_marks_are_written_then_read_on_claude(
        stack: LocalStack, emulator: EmulatorControl) -> None:
    """Its system prompt and turn carry cache_control: the second time the
    same turn comes, Bedrock (the emulator) reads the prefix from the cache."""
    usages = []
    for _ in range(2):
        status, raw = replay(stack, "tool_result_turn", CLAUDE, {"x-api-key": stack.key},
                             stream=False)
        assert status == 200, raw[:300]
        usages.append(json.loads(raw)["usage"])
    (sent, _) = emulator.requests()
    assert {"cachePoint": {"type": "default"}} in sent["body"]["system"]
    assert usages[0]["cache_creation_input_tokens"] > 4_096, usages  # Haiku 4.5's minimum
    assert usages[1]["cache_read_input_tokens"] == usages[0]["cache_creation_input_tokens"]
    assert usages[1]["cost_usd"] < usages[0]["cost_usd"]
