"""Fallbacks and cooldowns as a user meets them: `make run` with the chain
docs/resilience.md shows, its snippet pasted into a shell, the official
openai and anthropic SDKs (plain and streamed), with the emulator failing
Llama's region, then Llama itself."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.e2e.stack import PROJECT_DIR, LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
PAGE = (PROJECT_DIR / "docs" / "resilience.md").read_text()


def block() -> list[str]:
    """docs/resilience.md's offline example: the make run line, then curls."""
    text = next(b for b in re.findall(r"```sh\n(.*?)```", PAGE, re.S) if "make run" in b)
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    start = block()[0]
    assert start.startswith("FALLBACKS='") and start.endswith("' make run")
    chain = start[len("FALLBACKS='"):-len("' make run")]
    running = LocalStack(FALLBACKS=chain).start()
    yield running
    running.stop()


def local(command: str, stack: LocalStack) -> str:
    return (command.replace("http://127.0.0.1:8000", stack.url)
                   .replace("http://127.0.0.1:8001", stack.emulator_url))


def test_the_pages_example_is_answered_through_another_region(
        stack: LocalStack, emulator: EmulatorControl) -> None:
    configure, ask = block()[1:]
    outputs = [subprocess.run(["bash", "-c", local(command, stack)], capture_output=True,
                              text=True, timeout=60, check=True,
                              env={**os.environ, "LLM_API_KEY": stack.key}).stdout
               for command in (configure, ask)]
    headers = dict(line.split(": ", 1) for line in outputs[1].strip().splitlines()[1:])
    assert outputs[1].startswith("HTTP/1.1 200")
    assert headers["x-served-model"] == LLAMA and headers["x-served-region"] == "us-west-2"
    regions = [r.get("region") for r in emulator.requests()]
    assert regions[0] == "us-east-1" and regions[-1] == "us-west-2"


def test_sdks_are_answered_by_the_next_model_and_the_cooldown_skips_it(
        stack: LocalStack, emulator: EmulatorControl) -> None:
    emulator.configure(fail_models={LLAMA: "ThrottlingException"})
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=stack.key, max_retries=0)
    ask = {"model": LLAMA, "max_tokens": 40, "messages": [{"role": "user", "content": "Hi"}]}
    raw = client.chat.completions.with_raw_response.create(**ask)
    assert raw.headers["x-served-model"] == NOVA
    assert raw.parse().model == LLAMA and raw.parse().choices[0].message.content
    with client.chat.completions.with_streaming_response.create(stream=True, **ask) as streamed:
        assert streamed.headers["x-served-model"] == NOVA
        text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    assert text
    claude = anthropic.Anthropic(base_url=stack.url, api_key=stack.key, max_retries=0)
    message = claude.messages.with_raw_response.create(**ask)
    assert message.headers["x-served-model"] == NOVA and message.parse().model == LLAMA
    # Three failures of Llama: its cooldown is open, so once every process's
    # 2 s copy of the cooldowns is fresh (make run's streaming server is a
    # process of its own), requests go straight to Nova Lite.
    time.sleep(2.1)
    emulator.clear_requests()
    for _ in range(3):
        assert client.chat.completions.with_raw_response.create(**ask).headers[
            "x-served-model"] == NOVA
    assert {r["modelId"] for r in emulator.requests()} == {NOVA}
    assert "cooldown_opened" in stack.output and json.dumps(LLAMA)[1:-1] in stack.output
