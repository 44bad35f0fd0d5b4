"""Real streaming, deadlines and the billing of cut streams, through the
handlers Lambda runs: ``app.app`` (Chalice's proxy handler) and ``app.serve``
(the streaming entry point of the local server and the stream_handler
function), with API Gateway proxy events carrying the authorizer's context,
against the Bedrock emulator and moto's usage table."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

import app as app_module
from chalicelib.tenancy.auth import authenticate, caller_to_context
from chalicelib.tenancy.keys import KeyStore, Limits
from tests.conftest import ApiFactory
from tests.support import EmulatorControl

USAGE = "llm-endpoint-dev-usage"
MODEL = "us.meta.llama3-1-8b-instruct-v1:0"


class FakeContext:
    """A Lambda context with ``seconds`` left when built."""

    def __init__(self, seconds: float) -> None:
        self._ends = time.monotonic() + seconds
        self.aws_request_id = "ctx"
        self.function_name = "llm-endpoint-dev"

    def get_remaining_time_in_millis(self) -> int:
        return int((self._ends - time.monotonic()) * 1000)


def key_context(key_store: KeyStore, **limits: int | None) -> tuple[dict[str, str], str]:
    secret, _ = key_store.create("acme", now=int(time.time()), limits=limits)
    caller = authenticate(f"Bearer {secret}", key_store, time.time(), Limits())
    assert caller is not None
    return caller_to_context(caller), caller.key_id


def proxy_event(path: str, body: Any, authorizer: dict[str, str], request_id: str = "req-1",
                content_type: str = "application/json") -> dict[str, Any]:
    return {
        "resource": path, "path": path, "httpMethod": "POST",
        "headers": {"Content-Type": content_type}, "multiValueHeaders": {},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": path, "httpMethod": "POST", "requestId": request_id,
                           "path": f"/dev{path}", "stage": "dev", "authorizer": authorizer,
                           "identity": {"sourceIp": "127.0.0.1"}},
        "body": json.dumps(body), "isBase64Encoded": False}


def day_usage(dynamodb: Any, key_id: str) -> dict[str, int]:
    item = dynamodb.get_item(TableName=USAGE,
                             Key={"pk": {"S": f"{key_id}#d#{int(time.time() // 86400)}"}}).get("Item")
    return {k: int(v["N"]) for k, v in (item or {}).items() if k in ("requests", "tokens")}


def timed_chunks(response: Any) -> list[tuple[float, bytes]]:
    started = time.monotonic()
    return [(time.monotonic() - started, piece) for piece in response.chunks()]


def data_events(pieces: list[bytes]) -> list[Any]:
    text = b"".join(pieces).decode()
    return [json.loads(line[len("data: "):]) for line in text.split("\n")
            if line.startswith("data: ") and line != "data: [DONE]"]


OPENAI = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me about streams"}],
          "stream": True, "stream_options": {"include_usage": True}}


def test_openai_stream_sends_each_chunk_as_bedrock_sends_it(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        dynamodb: Any) -> None:
    make_api()
    authorizer, key_id = key_context(key_store, tokens_per_day=100_000)
    emulator.configure(latency_ms=100, tokens_per_second=100)
    response = app_module.serve(proxy_event("/v1/chat/completions", OPENAI, authorizer),
                                FakeContext(30))
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["x-ratelimit-limit-tokens-day"] == "100000"
    arrivals = timed_chunks(response)
    text_arrivals = [t for t, piece in arrivals if b'"content":"' in piece
                     and b'"content":""' not in piece]
    # Paced at 100 tokens/s, the pieces arrive spread over the generation,
    # not in one burst at its end.
    assert len(text_arrivals) > 5
    assert text_arrivals[-1] - text_arrivals[0] > 0.05
    events = data_events([piece for _, piece in arrivals])
    usage = events[-1]["usage"]
    assert events[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert day_usage(dynamodb, key_id) == {"requests": 1, "tokens": usage["total_tokens"]}
    assert b"".join(p for _, p in arrivals).endswith(b"data: [DONE]\n\n")


def test_native_stream_events(make_api: ApiFactory, key_store: KeyStore,
                              emulator: EmulatorControl) -> None:
    make_api()
    authorizer, _ = key_context(key_store)
    plain = app_module.app(proxy_event("/chat", {"prompt": "Hi", "stream": False}, authorizer),
                           FakeContext(30))
    answer = json.loads(plain["body"])
    response = app_module.serve(proxy_event("/chat", {"prompt": "Hi", "stream": True},
                                            authorizer, "req-2"), FakeContext(30))
    text = b"".join(response.chunks()).decode()
    blocks = [b.split("\n") for b in text.strip().split("\n\n")]
    names = [b[0][len("event: "):] for b in blocks]
    payloads = [json.loads(b[1][len("data: "):]) for b in blocks]
    assert names[0] == "start" and names[-1] == "end" and set(names[1:-1]) == {"delta"}
    assert payloads[0] == {"id": "chat-req-2", "model": MODEL}
    assert "".join(p["text"] for p in payloads[1:-1]) == answer["text"]
    assert payloads[-1]["usage"] == answer["usage"] and payloads[-1]["stop_reason"] == "stop"


def test_errors_before_the_first_byte_stay_http_errors(make_api: ApiFactory, key_store: KeyStore,
                                                       emulator: EmulatorControl) -> None:
    make_api()
    authorizer, _ = key_context(key_store)
    bad = app_module.serve(proxy_event("/v1/chat/completions", {**OPENAI, "temperature": 9},
                                       authorizer), FakeContext(30))
    assert bad.status == 400
    assert json.loads(b"".join(bad.chunks()))["error"]["param"] == "temperature"
    emulator.configure(fail_next=["ThrottlingException"] * 3)
    throttled = app_module.serve(proxy_event("/chat", {"prompt": "x", "stream": True},
                                             authorizer), FakeContext(30))
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "2"
    assert json.loads(b"".join(throttled.chunks()))["error"]["code"] == "upstream_throttled"


@pytest.mark.parametrize("fault,code", [
    ({"fault_rate": {"ModelStreamErrorException": 1.0}, "fail_in_stream": True}, "upstream_error"),
    ({"reset_in_stream": True}, "upstream_error"),
    ({"stall_in_stream_ms": 2500}, "upstream_timeout"),
])
def test_failures_after_the_first_byte_are_error_events_and_billed(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl, dynamodb: Any,
        fault: dict[str, Any], code: str) -> None:
    make_api(bedrock_read_timeout_s=1.0)
    authorizer, key_id = key_context(key_store, tokens_per_day=100_000)
    emulator.configure(**fault)
    response = app_module.serve(proxy_event("/v1/chat/completions", OPENAI, authorizer),
                                FakeContext(30))
    assert response.status == 200
    events = data_events(list(response.chunks()))
    assert events[-1]["error"]["code"] == code
    assert set(events[-1]["error"]) == {"message", "type", "code", "param"}
    # Two chunks came before the fault: they are billed, the rest released.
    used = day_usage(dynamodb, key_id)
    assert used["requests"] == 1 and 0 < used["tokens"] < 200


@pytest.mark.parametrize("fault,status,code", [
    ({"reset_in_stream": True}, 502, "upstream_error"),
    ({"stall_in_stream_ms": 2500}, 504, "upstream_timeout"),
])
def test_stalls_and_resets_of_plain_calls_are_504_or_502(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        fault: dict[str, Any], status: int, code: str) -> None:
    make_api(bedrock_read_timeout_s=1.0)
    authorizer, _ = key_context(key_store)
    emulator.configure(**fault)
    result = app_module.app(proxy_event("/chat", {"prompt": "Hi"}, authorizer), FakeContext(30))
    assert result["statusCode"] == status
    assert json.loads(result["body"])["error"]["code"] == code


SLOW = {"latency_ms": 200, "tokens_per_second": 10}  # 16+ tokens: 1.8 s or more


def test_a_plain_call_at_its_deadline_answers_504_and_pays_what_was_generated(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        dynamodb: Any) -> None:
    make_api()
    authorizer, key_id = key_context(key_store, tokens_per_day=100_000)
    emulator.configure(**SLOW)
    context = FakeContext(3.0)  # deadline: 3 s - the 2 s margin = 1 s
    started = time.monotonic()
    result = app_module.app(proxy_event("/chat", {"prompt": "Hi", "max_tokens": 300},
                                        authorizer), context)
    took = time.monotonic() - started
    assert result["statusCode"] == 504
    assert json.loads(result["body"])["error"]["code"] == "upstream_timeout"
    assert 0.9 < took < 1.5 and context.get_remaining_time_in_millis() > 1000
    used = day_usage(dynamodb, key_id)
    # Settled to the prompt and the ~8 tokens generated in 1 s, not the
    # 300-token reservation, nor nothing.
    assert used["requests"] == 1 and 10 < used["tokens"] < 60


def test_a_stream_at_its_deadline_ends_with_length_and_usage(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        dynamodb: Any) -> None:
    make_api()
    authorizer, key_id = key_context(key_store, tokens_per_day=100_000)
    emulator.configure(**SLOW)
    context = FakeContext(3.0)
    started = time.monotonic()
    response = app_module.serve(proxy_event("/v1/chat/completions", {**OPENAI, "max_tokens": 300},
                                            authorizer), context)
    events = data_events(list(response.chunks()))
    took = time.monotonic() - started
    assert 0.9 < took < 1.5
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    usage = events[-1]["usage"]
    assert 0 < usage["completion_tokens"] < 20
    assert day_usage(dynamodb, key_id) == {"requests": 1, "tokens": usage["total_tokens"]}


def test_a_client_that_hangs_up_still_pays_for_the_generation(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        dynamodb: Any) -> None:
    make_api()
    authorizer, key_id = key_context(key_store, tokens_per_day=100_000)
    plain = app_module.app(proxy_event("/chat", {"prompt": "Hang up"}, authorizer),
                           FakeContext(30))
    whole = json.loads(plain["body"])["usage"]["total_tokens"]
    emulator.configure(tokens_per_second=200)
    response = app_module.serve(proxy_event("/chat", {"prompt": "Hang up", "stream": True},
                                            authorizer), FakeContext(30))
    chunks = response.chunks()
    received = [next(chunks) for _ in range(4)]  # start, then three pieces of text
    assert received[-1].startswith(b"event: delta")
    chunks.close()  # what the servers do when the client's connection is gone
    assert day_usage(dynamodb, key_id) == {"requests": 2, "tokens": 2 * whole}


def test_a_job_follows_its_own_deadline(make_api: ApiFactory, emulator: EmulatorControl) -> None:
    """Below its Lambda's time, a worker's call is cut like any other."""
    from chalicelib import deadline
    api = make_api()
    emulator.configure(**SLOW)
    from chalicelib.chat import ChatRequest, Message
    request = ChatRequest(messages=(Message("user", "Hi"),), model=MODEL, max_tokens=300,
                          temperature=0.5, top_p=0.9)
    deadline.start(deadline.for_worker(FakeContext(deadline.WORKER_MARGIN_S + 1.0), 300))
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            api.runtime.job_service.complete(request, "acme")
        assert raised.value.code == "upstream_timeout"  # type: ignore[attr-defined]
        assert raised.value.spent[0] > 0  # type: ignore[attr-defined]
        assert time.monotonic() - started < 1.5
    finally:
        deadline.start(deadline.NONE)


def test_chalice_alone_answers_streams_buffered(make_api: ApiFactory,
                                                emulator: EmulatorControl) -> None:
    """Where Chalice serves the route itself (test client, plain chalice
    local): the same events in one piece, checked against openapi.yaml; a
    failure inside the stream is still its HTTP error."""
    api = make_api()
    headers = {"Content-Type": "application/json"}
    plain = api.http.post("/chat", headers=headers, body=json.dumps({"prompt": "Hi",
                                                                     "stream": False}))
    streamed = api.http.post("/chat", headers=headers, body=json.dumps({"prompt": "Hi",
                                                                        "stream": True}))
    assert streamed.status_code == 200
    assert streamed.headers["Content-Type"] == "text/event-stream"
    text = "".join(json.loads(line[len("data: "):])["text"]
                   for line in streamed.body.decode().split("\n") if line.startswith('data: {"text"'))
    assert text == json.loads(plain.body)["text"]
    emulator.configure(fault_rate={"ModelStreamErrorException": 1.0}, fail_in_stream=True)
    failed = api.http.post("/chat", headers=headers, body=json.dumps({"prompt": "Hi",
                                                                      "stream": True}))
    assert failed.status_code == 502
