"""The Vercel AI SDK's `openai` provider in its default mode, which speaks
OpenAI's Responses API, unchanged against `make run`: a multi-step tool loop
(plain and streamed) and structured output (tests/e2e/js/ai_sdk.mjs)."""
from __future__ import annotations

import pytest

from tests.e2e.stack import LocalStack
from tests.e2e.test_js_clients_e2e import IPYTHON, assert_person, node, prompts
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("scenario", ["generate-tools", "stream-tools"])
def test_ai_sdk_responses_tool_loop(stack: LocalStack, emulator: EmulatorControl,
                                    scenario: str) -> None:
    out = node(stack, "ai_sdk.mjs", "responses", scenario)
    assert out["steps"] == 2 and out["finishes"] == ["tool-calls", "stop"]
    ((name, args),) = out["calls"]
    assert out["asked"] == [[name, args["city"]]] and args["city"] in out["text"]
    assert out["usage"]["inputTokens"] > 0 and out["usage"]["outputTokens"] > 0
    last = prompts(emulator)[-1]
    assert IPYTHON in last and "It is" in last  # the tool's result reached the model


@pytest.mark.parametrize("scenario", ["object", "stream-object"])
def test_ai_sdk_responses_structured_output(stack: LocalStack, emulator: EmulatorControl,
                                            scenario: str) -> None:
    out = node(stack, "ai_sdk.mjs", "responses", scenario)
    assert_person(out["object"])
    assert "Invent a user." in prompts(emulator)[-1]
