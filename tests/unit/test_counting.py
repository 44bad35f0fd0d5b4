"""count_tokens' choice: Bedrock's CountTokens for the models it counts (with
the Converse input the request would be sent as), the limiter's bound for the
rest; and the IAM grant that goes with it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.chat import ChatRequest, Message
from chalicelib.counting import input_tokens
from chalicelib.tenancy.limits import prompt_estimate
from scripts.gen_policies import policies

SONNET_4 = "us.anthropic.claude-sonnet-4-20250514-v1:0"
HAIKU_45 = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"


class FakeGateway:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def count_tokens(self, model_id: str, converse_input: dict[str, Any]) -> int:
        self.calls.append((model_id, converse_input))
        return 42


def request(model: str) -> ChatRequest:
    return ChatRequest(messages=(Message("system", "Be brief."), Message("user", "Hello")),
                       model=model, max_tokens=100, temperature=0.5, top_p=0.9)


@pytest.mark.parametrize("model, asks", [(SONNET_4, True), (HAIKU_45, False), (LLAMA, False)])
def test_who_counts(model: str, asks: bool) -> None:
    gateway = FakeGateway()
    count = input_tokens(request(model), gateway)  # type: ignore[arg-type]
    if asks:
        ((model_id, given),) = gateway.calls
        assert count == 42 and model_id == "anthropic.claude-sonnet-4-20250514-v1:0"
        assert given == {"system": [{"text": "Be brief."}],
                         "messages": [{"role": "user", "content": [{"text": "Hello"}]}]}
    else:
        assert gateway.calls == [] and count == prompt_estimate(request(model))


def test_the_api_function_may_count_only_the_counted_models() -> None:
    config = json.loads((Path(__file__).resolve().parents[2] / ".chalice" /
                         "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["ALLOWED_MODELS"] = f"{LLAMA},{SONNET_4}"
    roles = policies(config, "dev")
    (grant,) = [s for s in roles["api"]["Statement"] if s["Sid"] == "CountTokens"]
    assert grant["Action"] == ["bedrock:CountTokens"]
    assert grant["Resource"] == [
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0"]
    for role in ("auth", "worker", "stream"):
        assert all(s["Sid"] != "CountTokens" for s in roles[role]["Statement"])
