"""Real streaming from the stack that `make run` starts: the official openai
SDK and curl -N see the text arrive piece by piece as Bedrock (the emulator)
generates it, a failure after the first byte is an error event the SDK raises,
and a client that hangs up still pays for the generation."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from datetime import datetime, timezone

import openai
import pytest

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
MESSAGES = [{"role": "user", "content": "Explain streaming in a few sentences."}]
TOKENS_PER_SECOND = 50


@pytest.fixture
def paced(emulator: EmulatorControl) -> EmulatorControl:
    emulator.configure(latency_ms=200, tokens_per_second=TOKENS_PER_SECOND)
    return emulator


def assert_spread(arrivals: list[float], output_tokens: int) -> None:
    """The pieces arrive over the generation, not in one burst at its end."""
    generation = output_tokens / TOKENS_PER_SECOND
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] > 0.6 * generation, (arrivals, generation)
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:]))
    assert gaps[len(gaps) // 2] > 0.25 / TOKENS_PER_SECOND  # the median gap is no burst


def test_the_sdk_receives_tokens_one_by_one(stack: LocalStack, paced: EmulatorControl) -> None:
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)
    started = time.monotonic()
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=400,
                                            stream=True, stream_options={"include_usage": True})
    arrivals, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None
    assert 0.2 < arrivals[0] < 1.5  # after the emulator's first chunk, long before the end
    assert_spread(arrivals, usage.completion_tokens)


def curl(stack: LocalStack, path: str, body: dict) -> list[tuple[float, str]]:
    started = time.monotonic()
    proc = subprocess.Popen(
        ["curl", "-sN", f"{stack.url}{path}", "-H", f"Authorization: Bearer {stack.key}",
         "-H", "Content-Type: application/json", "-d", json.dumps(body)],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [(time.monotonic() - started, line.rstrip("\n")) for line in proc.stdout]
    assert proc.wait(10) == 0
    return [(t, line) for t, line in lines if line]


def test_curl_sees_raw_openai_events_as_they_come(stack: LocalStack,
                                                  paced: EmulatorControl) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "stream": True, "max_tokens": 400,
            "stream_options": {"include_usage": True}}
    lines = curl(stack, "/v1/chat/completions", body)
    assert lines[-1][1] == "data: [DONE]"
    events = [(t, json.loads(line[len("data: "):])) for t, line in lines[:-1]]
    content = [t for t, e in events if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert_spread(content, events[-1][1]["usage"]["completion_tokens"])


def test_curl_sees_native_chat_events_as_they_come(stack: LocalStack,
                                                   paced: EmulatorControl) -> None:
    lines = curl(stack, "/chat", {"prompt": "Explain streaming.", "stream": True})
    names = [line[len("event: "):] for _, line in lines if line.startswith("event: ")]
    assert names[0] == "start" and names[-1] == "end" and set(names[1:-1]) == {"delta"}
    end = json.loads(lines[-1][1][len("data: "):])
    deltas = [t for t, line in lines if line.startswith('data: {"text"')]
    assert_spread(deltas, end["usage"]["output_tokens"])


def test_a_failure_mid_stream_raises_api_error(stack: LocalStack,
                                               emulator: EmulatorControl) -> None:
    emulator.configure(fault_rate={"ModelStreamErrorException": 1.0}, fail_in_stream=True)
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received)  # the text before the failure came first
    assert caught.value.body == {"message": "The model failed to answer.",  # type: ignore
                                 "type": "server_error", "code": "upstream_error", "param": None}


def day_tokens(stack: LocalStack, tenant: str) -> int:
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    for line in stack.keys_command("usage", "--day", day).splitlines():
        if f"tenant={tenant} " in line:
            return int(re.search(r"tokens=(\d+)", line).group(1))  # type: ignore[union-attr]
    return 0


def test_a_client_that_hangs_up_still_pays(stack: LocalStack, emulator: EmulatorControl) -> None:
    tenant = f"hangup-{uuid.uuid4().hex[:8]}"
    created = stack.keys_command("create", "--tenant", tenant)
    key = re.search(r"key:\s+(\S+)", created).group(1)  # type: ignore[union-attr]
    body = {"prompt": "A long story, please.", "max_tokens": 400}
    plain = subprocess.run(
        ["curl", "-s", f"{stack.url}/chat", "-H", f"Authorization: Bearer {stack.key}",
         "-H", "Content-Type: application/json", "-d", json.dumps(body)],
        capture_output=True, text=True, check=True)
    whole = json.loads(plain.stdout)["usage"]["total_tokens"]
    emulator.configure(tokens_per_second=100)
    payload = json.dumps({**body, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", stack.app_port)) as sock:
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + key.encode() + b"\r\n"
                     b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        received = b""
        while b"event: delta" not in received:
            more = sock.recv(4096)
            assert more, received
            received += more
    # Hung up after the first pieces: the endpoint reads Bedrock's stream to
    # its end and bills all of it.
    deadline = time.monotonic() + 15
    while day_tokens(stack, tenant) != whole and time.monotonic() < deadline:
        time.sleep(0.3)
    assert day_tokens(stack, tenant) == whole, stack.output[-3000:]
    assert f'"tenant":"{tenant}"' in stack.output
    line = next(json.loads(x) for x in stack.output.splitlines()
                if f'"tenant":"{tenant}"' in x and '"route":"POST /chat"' in x)
    assert line["error_code"] == "client_disconnected" and line["output_tokens"] > 0
