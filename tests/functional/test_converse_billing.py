"""Issue 19 item 1: Converse pays like Llama, on every path. Each fault the
emulator can make (the deadline, a stall past the read timeout, a reset, a
throttle mid-stream, a corrupted event, an answer that never starts), on a
plain call and on a stream, for Llama and Claude side by side, through the
handlers Lambda runs, and what the key's usage item in moto then holds: at
least the prompt's tokens (Bedrock's own count from Llama's first chunk,
else the reserved estimate, ``limits.prompt_estimate``) plus the output
received, never nothing and never only the output."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

import app as app_module
from chalicelib.tenancy.keys import KeyStore
from chalicelib.tenancy.limits import prompt_estimate, reservation_size
from chalicelib.wire.native import parse_chat_request
from chalicelib.wire.openai import parse_openai_request
from devstack.converse_wire import parse_converse
from devstack.generator import count_tokens
from devstack.prompt_tokens import count_prompt_tokens
from tests.conftest import MODEL, ApiFactory
from tests.functional.test_hardening import day_tokens
from tests.functional.test_jobs import drain, status, submit
from tests.functional.test_streaming import (SLOW, FakeContext, data_events, day_usage,
                                             key_context, proxy_event)
from tests.support import EmulatorControl

CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
MISTRAL = "mistral.mistral-large-2407-v1:0"
MODELS = [MODEL, CLAUDE]
# A prompt whose tokens dwarf any answer cut short: billing only the output
# (the old Converse rule) is far below the floor these tests assert.
LONG = "Tell me a long story about the sea and its ships. " * 60
JSON = {"Content-Type": "application/json"}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def floor(api: Any, emulator: EmulatorControl, body: dict[str, Any], openai: bool = False) -> int:
    """The prompt's tokens a cut call must pay at least: Bedrock's own count
    where a Llama chunk reported it (the emulator counts as Bedrock reports),
    else the reservation's estimate of the request."""
    sent = emulator.requests()[0]
    if sent["operation"] == "InvokeModelWithResponseStream":
        return count_prompt_tokens(sent["body"]["prompt"])
    return estimate(api, body, openai)


def estimate(api: Any, body: dict[str, Any], openai: bool = False) -> int:
    """``limits.prompt_estimate`` of the request ``body`` makes."""
    settings = api.runtime.settings
    if openai:
        return prompt_estimate(parse_openai_request(body, settings)[0])
    native = {k: v for k, v in body.items() if k != "stream"}  # the route reads it
    return prompt_estimate(parse_chat_request(native, settings))


def converse_prompt_tokens(sent: dict[str, Any]) -> int:
    """What Bedrock (the emulator) counts for a Converse request it received."""
    checked = parse_converse(json.dumps(sent["body"]).encode(), sent["modelId"],
                             sent["operation"] == "ConverseStream")
    return checked["prompt_tokens"]


@pytest.fixture
def limited(make_api: ApiFactory, key_store: KeyStore) -> Any:
    def build(**overrides: Any) -> tuple[Any, dict[str, str], str]:
        api = make_api(allowed_models=(MODEL, CLAUDE, MISTRAL), **overrides)
        authorizer, key_id = key_context(key_store, tokens_per_day=1_000_000)
        return api, authorizer, key_id
    return build


# --- a plain call

@pytest.mark.parametrize("model", MODELS)
def test_a_plain_call_at_its_deadline_pays_its_prompt_and_what_was_generated(
        limited: Any, emulator: EmulatorControl, dynamodb: Any, model: str) -> None:
    api, authorizer, key_id = limited()
    emulator.configure(**SLOW)
    body = {"model": model, "prompt": LONG, "max_tokens": 300}
    context = FakeContext(4.0)  # deadline: 4 s - the 2 s margin = 2 s
    started = time.monotonic()
    result = app_module.app(proxy_event("/chat", body, authorizer), context)
    assert time.monotonic() - started < 2.6
    assert result["statusCode"] == 504
    assert json.loads(result["body"])["error"]["code"] == "upstream_timeout"
    assert [r["operation"] for r in emulator.requests()] == [
        "InvokeModelWithResponseStream" if model == MODEL else "ConverseStream"]
    prompt = floor(api, emulator, body)
    used = day_usage(dynamodb, key_id)
    # The prompt, plus the ~18 tokens generated in 2 s: not the 300-token
    # reservation, nor only the output.
    assert used["requests"] == 1 and prompt < used["tokens"] < prompt + 40


FAULTS = {
    "reset": ({"reset_in_stream": True}, 502, "upstream_error"),
    "stall": ({"stall_in_stream_ms": 2500}, 504, "upstream_timeout"),
    "throttle": ({"fail_in_stream": True, "fail_next": ["ThrottlingException"]}, 429,
                 "upstream_throttled"),
    "malformed": ({"malformed_in_stream": True}, 502, "upstream_error"),
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_plain_call_broken_part_way_pays_its_prompt_and_what_came(
        limited: Any, emulator: EmulatorControl, dynamodb: Any, model: str,
        fault: str) -> None:
    config, code_status, code = FAULTS[fault]
    api, authorizer, key_id = limited(bedrock_read_timeout_s=1.0)
    emulator.configure(**config)
    body = {"model": model, "prompt": LONG, "max_tokens": 300}
    result = app_module.app(proxy_event("/chat", body, authorizer), FakeContext(30))
    assert result["statusCode"] == code_status, result["body"]
    assert json.loads(result["body"])["error"]["code"] == code
    assert len(emulator.requests()) == 1  # an in-stream fault is never retried
    prompt = floor(api, emulator, body)
    used = day_usage(dynamodb, key_id)
    assert used["requests"] == 1 and prompt < used["tokens"] < prompt + 20


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_that_never_starts_pays_its_prompt(limited: Any, emulator: EmulatorControl,
                                                     dynamodb: Any, model: str,
                                                     stream: bool) -> None:
    # Bedrock had the request when the read timeout gave up on its answer:
    # nothing counted it, so the key pays the prompt's estimate.
    api, authorizer, key_id = limited(bedrock_read_timeout_s=0.5)
    emulator.configure(latency_ms=1500)
    body = {"model": model, "prompt": LONG, "max_tokens": 300, "stream": stream}
    handler = app_module.serve if stream else app_module.app
    result = handler(proxy_event("/chat", body, authorizer), FakeContext(30))
    assert (result.status if stream else result["statusCode"]) == 504
    assert day_usage(dynamodb, key_id) == {"requests": 1, "tokens": estimate(api, body)}


def test_a_plain_converse_call_cut_before_its_answer_pays_its_worst_case(
        limited: Any, emulator: EmulatorControl, dynamodb: Any) -> None:
    # Mistral takes no tools on ConverseStream: a request with tools is one
    # plain Converse call, and cut after it was sent nothing of it counts.
    api, authorizer, key_id = limited(bedrock_read_timeout_s=0.5)
    emulator.configure(latency_ms=1500)
    body = {"model": MISTRAL, "messages": [{"role": "user", "content": LONG}],
            "tools": [WEATHER], "max_tokens": 300}
    result = app_module.app(proxy_event("/v1/chat/completions", body, authorizer),
                            FakeContext(30))
    assert result["statusCode"] == 504
    assert [r["operation"] for r in emulator.requests()] == ["Converse"]
    assert day_usage(dynamodb, key_id) == {"requests": 1,
                                           "tokens": estimate(api, body, openai=True) + 300}


# --- a stream

OPENAI = {"messages": [{"role": "user", "content": LONG}], "stream": True,
          "stream_options": {"include_usage": True}, "max_tokens": 300}


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_at_its_deadline_ends_with_length_and_its_prompt(
        limited: Any, emulator: EmulatorControl, dynamodb: Any, model: str) -> None:
    api, authorizer, key_id = limited()
    emulator.configure(**SLOW)
    body = {**OPENAI, "model": model}
    started = time.monotonic()
    response = app_module.serve(proxy_event("/v1/chat/completions", body, authorizer),
                                FakeContext(4.0))
    events = data_events(list(response.chunks()))
    assert time.monotonic() - started < 2.6
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    usage = events[-1]["usage"]
    assert usage["prompt_tokens"] == floor(api, emulator, body, openai=True)
    assert 0 < usage["completion_tokens"] < 30
    assert day_usage(dynamodb, key_id) == {"requests": 1, "tokens": usage["total_tokens"]}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_stream_broken_part_way_pays_its_prompt_and_what_came(
        limited: Any, emulator: EmulatorControl, dynamodb: Any, model: str,
        fault: str) -> None:
    config, _, code = FAULTS[fault]
    api, authorizer, key_id = limited(bedrock_read_timeout_s=1.0)
    emulator.configure(**config)
    body = {**OPENAI, "model": model}
    response = app_module.serve(proxy_event("/v1/chat/completions", body, authorizer),
                                FakeContext(30))
    assert response.status == 200
    events = data_events(list(response.chunks()))
    assert events[-1]["error"]["code"] == code
    prompt = floor(api, emulator, body, openai=True)
    used = day_usage(dynamodb, key_id)
    assert used["requests"] == 1 and prompt < used["tokens"] < prompt + 20


@pytest.mark.parametrize("model", MODELS)
def test_a_client_that_hangs_up_pays_to_the_deadline(limited: Any, emulator: EmulatorControl,
                                                     dynamodb: Any, model: str) -> None:
    # The rest of the stream is drained, unsent, to the deadline: the key
    # pays its prompt and all that was generated by then.
    api, authorizer, key_id = limited()
    emulator.configure(**SLOW)
    body = {"model": model, "prompt": LONG, "max_tokens": 300, "stream": True}
    response = app_module.serve(proxy_event("/chat", body, authorizer), FakeContext(4.0))
    chunks = response.chunks()
    assert next(chunks).startswith(b"event: start")
    assert next(chunks).startswith(b"event: delta")
    chunks.close()
    prompt = floor(api, emulator, body)
    used = day_usage(dynamodb, key_id)
    assert used["requests"] == 1 and prompt + 3 < used["tokens"] < prompt + 30


# --- a failed repair keeps the first call's usage

def bedrock_prompt_tokens(sent: dict[str, Any]) -> int:
    """The prompt's tokens as Bedrock (the emulator) counts a request it received."""
    if sent["operation"] == "InvokeModelWithResponseStream":
        return count_prompt_tokens(sent["body"]["prompt"])
    return converse_prompt_tokens(sent)


def first_call_usage(emulator: EmulatorControl, answer: str) -> int:
    """What Bedrock billed for the first (unusable) answer."""
    return bedrock_prompt_tokens(emulator.requests()[0]) + count_tokens(answer)


NOT_A_CALL = "I would rather not call anything."
FORCED = {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER],
          "tool_choice": "required", "max_tokens": 200}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("in_stream", [False, True])
def test_a_failed_repair_keeps_the_first_calls_usage(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl, dynamodb: Any,
        model: str, in_stream: bool) -> None:
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 1_000_000})
    api = make_api(key=secret, allowed_models=(MODEL, CLAUDE))
    emulator.respond_next(NOT_A_CALL)
    # The first call answers; the repair is throttled (three attempts) or,
    # in-stream, throttled after its first pieces.
    emulator.configure(fail_in_stream=in_stream,
                       fail_next=[None, *["ThrottlingException"] * (1 if in_stream else 3)])
    response = api.http.post("/v1/chat/completions", headers=JSON,
                             body=json.dumps({**FORCED, "model": model}))
    assert response.status_code == 429, response.body
    first = first_call_usage(emulator, NOT_A_CALL)
    billed = day_tokens(dynamodb, record.key_id)
    if in_stream:
        # The repair was cut after its first pieces: its prompt is billed
        # too (Bedrock's count from Llama's first chunk; for Claude the
        # reservation's estimate, above Bedrock's count), not the worst case.
        repair = bedrock_prompt_tokens(emulator.requests()[1])
        reserved = reservation_size(parse_openai_request(
            {**FORCED, "model": model}, api.runtime.settings)[0])
        assert first + repair < billed < reserved
        if model == MODEL:
            assert billed < first + repair + 20
    else:  # throttled before it started: only the first answer was generated
        assert billed == first


@pytest.mark.parametrize("model", MODELS)
def test_a_job_is_charged_its_failed_repair_before_it_is_retried(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl, dynamodb: Any,
        sqs: Any, job_queues: dict[str, str], model: str) -> None:
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 1_000_000})
    api = make_api(key=secret, allowed_models=(MODEL, CLAUDE), jobs_queue=job_queues["jobs"],
                   jobs_retry_base_s=0, jobs_max_receives=2)
    emulator.respond_next(NOT_A_CALL)
    emulator.configure(fail_next=[None, *["ThrottlingException"] * 3])
    accepted = submit(api, {"model": model, "prompt": "Weather in Paris?", "max_tokens": 200,
                            "tools": [{"name": "get_weather",
                                       "parameters": WEATHER["function"]["parameters"]}],
                            "tool_choice": "required"})
    first = None
    for _ in range(3):
        drain(sqs, job_queues["jobs"])
        if first is None and emulator.requests():
            first = first_call_usage(emulator, NOT_A_CALL)
        done = json.loads(status(api, accepted["job_id"]).body)
        if done["status"] == "succeeded":
            break
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    assert first is not None
    assert day_tokens(dynamodb, record.key_id) == first + done["result"]["usage"]["total_tokens"]
