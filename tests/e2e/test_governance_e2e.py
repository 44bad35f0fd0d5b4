"""Guardrails and budget alerts as a user meets them: `make run` with a stage
guardrail (the environment docs/keys.md shows), the page's snippet pasted into
a shell, the official openai and anthropic SDKs, and the alerts read from the
queue `make run` subscribes to the budget alerts topic."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import botocore.session
import openai
import pytest

from tests.e2e.stack import PROJECT_DIR, LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
KEYS_PAGE = (PROJECT_DIR / "docs" / "keys.md").read_text()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    running = LocalStack(GUARDRAILS="gr1abc:1", DEFAULT_GUARDRAIL="gr1abc:1").start()
    yield running
    running.stop()


def snippet() -> list[str]:
    """The shell commands of docs/keys.md's offline guardrail example (after `make run`)."""
    block = next(b for b in re.findall(r"```sh\n(.*?)```", KEYS_PAGE, re.S)
                 if "DEFAULT_GUARDRAIL=gr1abc:1 make run" in b)
    commands = re.split(r"\n(?=curl )", block.split("\n", 1)[1].split("\n# ")[0].strip())
    return [c for c in commands if c.strip()]


def local(command: str, stack: LocalStack) -> str:
    return (command.replace("http://127.0.0.1:8000", stack.url)
                   .replace("http://127.0.0.1:8001", stack.emulator_url))


def test_the_pages_guardrail_example_blocks_the_prompt(stack: LocalStack,
                                                       emulator: EmulatorControl) -> None:
    configure, ask = snippet()
    for command in (configure, ask):
        result = subprocess.run(["bash", "-c", local(command, stack)], capture_output=True,
                                text=True, timeout=30, check=True,
                                env={**os.environ, "LLM_API_KEY": stack.key})
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "content_filtered"
    assert "Sorry, that topic is off limits." in error["message"]
    [call] = [r for r in emulator.requests() if r["operation"].startswith("Invoke")]
    assert {k.lower(): v for k, v in call["headers"].items()} == {
        "x-amzn-bedrock-guardrailidentifier": "gr1abc", "x-amzn-bedrock-guardrailversion": "1"}


def test_the_sdks_see_a_blocked_prompt_and_a_masked_answer(stack: LocalStack,
                                                           emulator: EmulatorControl) -> None:
    emulator.configure(guardrails={"gr1abc": {"versions": ["1"], "denied_words": ["zeus"],
                                              "pii": {"EMAIL": "ANONYMIZE"}}})
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=stack.key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as blocked:
        client.chat.completions.create(model="us.meta.llama3-1-8b-instruct-v1:0",
                                       messages=[{"role": "user", "content": "zeus?"}])
    assert blocked.value.code == "content_filtered"
    emulator.respond_next("Write to ops@example.com.")
    stream = client.chat.completions.create(
        model="us.meta.llama3-1-8b-instruct-v1:0", stream=True,
        messages=[{"role": "user", "content": "Whom do I write to?"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Write to {EMAIL}."
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    claude = anthropic.Anthropic(base_url=stack.url, api_key=stack.key, max_retries=0)
    emulator.respond_next("Write to ops@example.com.")
    message = claude.messages.create(model=CLAUDE, max_tokens=64,
                                     messages=[{"role": "user", "content": "Whom?"}])
    assert message.stop_reason == "refusal" and message.content[0].text == "Write to {EMAIL}."
    emulator.respond_next("Write to ops@example.com.")
    with claude.messages.stream(model=CLAUDE, max_tokens=64,
                                messages=[{"role": "user", "content": "Whom?"}]) as events:
        final = events.get_final_message()
    assert final.stop_reason == "refusal" and final.content[0].text == "Write to {EMAIL}."


def inbox(stack: LocalStack) -> tuple[Any, str]:
    sqs = botocore.session.get_session().create_client(
        "sqs", endpoint_url=f"http://127.0.0.1:{stack.aws_port}", region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local")
    url = sqs.get_queue_url(QueueName="llm-endpoint-dev-budget-alerts-inbox")["QueueUrl"]
    return sqs, url


def test_budget_alerts_reach_the_local_inbox(stack: LocalStack,
                                             emulator: EmulatorControl) -> None:
    # This stack guards every key with gr1abc:1, which the emulator must know (as Bedrock must).
    emulator.configure(guardrails={"gr1abc": {"versions": ["1"]}})
    out = stack.keys_command("create", "--tenant", "alerted", "--usd-day", "0.000018")
    secret = re.search(r"key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    key_id = re.search(r"key id: (\S+)", out).group(1)  # type: ignore[union-attr]
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=secret, max_retries=0)
    for _ in range(40):
        emulator.respond_next("Hello there, how can I help you today?")
        try:
            client.chat.completions.create(model="us.meta.llama3-1-8b-instruct-v1:0",
                                           max_tokens=20,
                                           messages=[{"role": "user", "content": "Hi"}])
        except openai.RateLimitError as exc:
            assert exc.code == "budget_exceeded"
            break
    else:
        raise AssertionError("the budget was never spent")
    sqs, url = inbox(stack)
    alerts: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(alerts) < 2 and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", []):
            alerts.append(json.loads(json.loads(message["Body"])["Message"]))
    assert sorted((a["threshold_percent"], a["key_id"]) for a in alerts) == [
        (80, key_id), (100, key_id)]
