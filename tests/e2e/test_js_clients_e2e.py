"""JS clients, unchanged, against `make run`: the Vercel AI SDK (through
@ai-sdk/openai-compatible, @ai-sdk/openai's chat model and, on /v1/messages,
@ai-sdk/anthropic for Llama and for Claude) and the official
openai npm package. The scripts in tests/e2e/js print what the SDK made of
the answers as JSON; `make test` installs their pinned packages
(`npm ci --prefix tests/e2e/js`)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
JS_DIR = Path(__file__).resolve().parent / "js"
MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
OPEN = "<|start_header_id|>assistant<|end_header_id|>\n\n"
IPYTHON = "<|start_header_id|>ipython<|end_header_id|>\n\n"
PROVIDERS = ["compatible", "openai"]
ROLES = ("admin", "user")


def node(stack: LocalStack, script: str, *argv: str, model: str = MODEL) -> dict[str, Any]:
    executable = shutil.which("node")
    assert executable, "node is needed for the JS client tests"
    assert (JS_DIR / "node_modules").is_dir(), "run `npm ci --prefix tests/e2e/js` (make test does)"
    done = subprocess.run([executable, script, *argv], cwd=JS_DIR, capture_output=True, text=True,
                          timeout=90, env={**os.environ, "LLM_BASE_URL": f"{stack.url}/v1",
                                           "LLM_API_KEY": stack.key, "LLM_MODEL": model})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def prompts(emulator: EmulatorControl) -> list[str]:
    return [r["body"]["prompt"] for r in emulator.requests()]


def assert_person(value: dict[str, Any]) -> None:
    assert set(value) == {"name", "age", "role", "tags", "nickname", "address"}
    assert isinstance(value["age"], int) and value["role"] in ROLES
    assert all(isinstance(tag, str) for tag in value["tags"])
    assert set(value["address"]) == {"street", "city"}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("scenario", ["generate-tools", "stream-tools"])
def test_ai_sdk_multi_step_tool_loop(stack: LocalStack, emulator: EmulatorControl, provider: str,
                                     scenario: str) -> None:
    out = node(stack, "ai_sdk.mjs", provider, scenario)
    assert out["steps"] == 2 and out["finishes"] == ["tool-calls", "stop"]
    ((name, args),) = out["calls"]
    assert name in ("weather", "time") and out["asked"] == [[name, args["city"]]]
    assert args["city"] in out["text"]
    assert out["usage"]["inputTokens"] > 0 and out["usage"]["outputTokens"] > 0
    first, second = prompts(emulator)
    assert '"name": "weather"' in first and '"name": "time"' in first
    assert f"{IPYTHON}It is " in second and second.endswith(OPEN)


# Two ways Llama 3.1 writes parallel calls: one per line, or after
# <|python_tag|> separated by ";" (with "arguments" for "parameters" at times).
PARALLEL = [
    '{"name": "weather", "parameters": {"city": "Paris"}}\n'
    '{"name": "time", "parameters": {"city": "Tokyo", "clock": "24h"}}',
    'Checking both.\n<|python_tag|>{"name": "weather", "parameters": {"city": "Paris"}}; '
    '{"name": "time", "arguments": {"city": "Tokyo", "clock": "24h"}}',
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("answer", PARALLEL, ids=["lines", "python-tag"])
def test_ai_sdk_streams_parallel_calls(stack: LocalStack, emulator: EmulatorControl,
                                       provider: str, answer: str) -> None:
    emulator.respond_next(answer)
    out = node(stack, "ai_sdk.mjs", provider, "stream-parallel")
    assert out["calls"] == [["weather", {"city": "Paris"}], ["time", {"city": "Tokyo", "clock": "24h"}]]
    assert out["asked"] == [["weather", "Paris"], ["time", "Tokyo"]]
    assert out["finishes"] == ["tool-calls"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ai_sdk_forced_tool(stack: LocalStack, emulator: EmulatorControl, provider: str) -> None:
    out = node(stack, "ai_sdk.mjs", provider, "tool-choice")
    ((name, args),) = out["calls"]
    assert name == "time" and args["clock"] in ("12h", "24h") and out["finishes"] == ["tool-calls"]
    assert prompts(emulator)[-1].endswith(OPEN + '{"name": "time", "parameters": ')


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("scenario", ["object", "stream-object", "output-object"])
def test_ai_sdk_objects_from_a_zod_schema(stack: LocalStack, emulator: EmulatorControl,
                                          provider: str, scenario: str) -> None:
    out = node(stack, "ai_sdk.mjs", provider, scenario)
    assert_person(out["object"])
    (prompt,) = prompts(emulator)
    assert "It must be valid against this JSON Schema:\n" in prompt and prompt.endswith(OPEN + "{")


def test_openai_npm_tools_round_trip(stack: LocalStack, emulator: EmulatorControl) -> None:
    out = node(stack, "openai_sdk.mjs", "tools")
    assert out["finish"] == "tool_calls" and out["content"] is None
    assert out["name"] == "get_weather" and isinstance(out["arguments"]["city"], str)
    assert out["finalFinish"] == "stop" and "21 degrees" in out["final"]
    assert f"{IPYTHON}It is 21 degrees.<|eot_id|>" in prompts(emulator)[-1]


def test_openai_npm_zod_response_format(stack: LocalStack, emulator: EmulatorControl) -> None:
    out = node(stack, "openai_sdk.mjs", "parse")
    assert out["finish"] == "stop"
    assert_person(out["parsed"])
    assert prompts(emulator)[-1].endswith(OPEN + "{")


def test_openai_npm_run_tools(stack: LocalStack, emulator: EmulatorControl) -> None:
    out = node(stack, "openai_sdk.mjs", "run-tools")
    (city,) = out["asked"]
    assert f"21 degrees in {city}" in out["final"]
    assert len(emulator.requests()) == 2


@pytest.mark.parametrize("model", [MODEL, "us.anthropic.claude-haiku-4-5-20251001-v1:0"])
def test_ai_sdk_anthropic_provider(stack: LocalStack, emulator: EmulatorControl,
                                   model: str) -> None:
    """@ai-sdk/anthropic on /v1/messages: the tool loop plain and streamed, a
    forced tool, and objects from a zod schema."""
    for scenario in ("generate-tools", "stream-tools"):
        out = node(stack, "ai_sdk.mjs", "anthropic", scenario, model=model)
        assert out["steps"] == 2 and out["finishes"] == ["tool-calls", "stop"], out
        ((name, args),) = out["calls"]
        assert out["asked"] == [[name, args["city"]]] and args["city"] in out["text"]
        assert out["usage"]["inputTokens"] > 0 and out["usage"]["outputTokens"] > 0
    out = node(stack, "ai_sdk.mjs", "anthropic", "tool-choice", model=model)
    assert [name for name, _ in out["calls"]] == ["time"] and out["finishes"] == ["tool-calls"]
    for scenario in ("object", "stream-object", "output-object"):
        assert_person(node(stack, "ai_sdk.mjs", "anthropic", scenario, model=model)["object"])
