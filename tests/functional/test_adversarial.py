"""Hostile and careless input found against ``make run``, each class as a table:
JSON nested past Python's recursion limit (in bodies, in replayed tool call
arguments, in the model's own answers), and a parser failure after Bedrock
generated tokens."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

import chalicelib.models.answers
import chalicelib.models.tool_stream
from chalicelib.jsontext import MAX_DEPTH
from chalicelib.tenancy.keys import KeyStore
from chalicelib.tenancy.limits import prompt_estimate
from chalicelib.wire.openai import parse_openai_request
from devstack.prompt_tokens import count_prompt_tokens
from tests.conftest import MODEL, Api, ApiFactory
from tests.functional.test_hardening import day_tokens
from tests.functional.test_jobs import drain, status, submit
from tests.openapi_check import sse_events
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
# Past the interpreter's recursion limit (~1,000), and the band just below it
# where parsing succeeds but writing the value back from a deeper stack fails.
DEPTHS = (MAX_DEPTH + 1, 960, 975, 990, 1_200, 10_000)


def objects(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def error_of(response: Any) -> dict[str, Any]:
    error = json.loads(response.body)["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert "Traceback" not in error["message"] and ".py" not in error["message"]
    return error


def limited(make_api: ApiFactory, key_store: KeyStore, **overrides: Any) -> tuple[Api, str]:
    """An app whose key has a daily budget, so that its reservations are held
    and must be settled."""
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 10_000_000})
    return make_api(key=secret, **overrides), record.key_id


@pytest.mark.parametrize("path", ["/chat", "/chat/jobs", "/v1/chat/completions", "/v1/embeddings"])
@pytest.mark.parametrize("depth", DEPTHS)
def test_a_body_nested_too_deep_is_a_400(api: Api, path: str, depth: int) -> None:
    # Native tool call arguments are an object inside the body: the deepest
    # place a client's JSON value can hide.
    body = ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "",'
            ' "tool_calls": [{"id": "c", "name": "f", "arguments": ' + objects(depth) + '}]}]}')
    response = api.http.post(path, headers=JSON, body=body)
    assert response.status_code == 400, response.body
    assert f"deeper than {MAX_DEPTH}" in error_of(response)["message"]


def test_a_body_within_the_bound_is_served(api: Api, emulator: EmulatorControl) -> None:
    arguments = json.loads(objects(MAX_DEPTH - 10))
    response = api.http.post("/chat", headers=JSON, body=json.dumps({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c", "name": "f", "arguments": arguments}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"}], "max_tokens": 5}))
    assert response.status_code == 200, response.body
    assert json.dumps(arguments, ensure_ascii=False) in emulator.requests()[-1]["body"]["prompt"]


@pytest.mark.parametrize("model", [MODEL, CLAUDE])
@pytest.mark.parametrize("depth", DEPTHS)
def test_replayed_arguments_too_deep_are_replayed_as_sent(make_api: ApiFactory,
                                                          emulator: EmulatorControl,
                                                          model: str, depth: int) -> None:
    # OpenAI's arguments are JSON text the client replays: text we cannot
    # read goes back to the model as the text it is, as invalid JSON does.
    api = make_api(allowed_models=(MODEL, CLAUDE))
    arguments = objects(depth)
    response = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps({
        "model": model, "max_tokens": 5, "tools": TOOLS, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "c", "content": "r"}]}))
    assert response.status_code == 200, response.body
    assert arguments[:200] in json.dumps(emulator.requests()[-1]["body"])[:2_000].replace("\\", "")


DEEP = 1_200
DEEP_ANSWERS = {
    "function tag": "<function=f>" + "[" * DEEP + "]" * DEEP + "</function>",
    "arguments text": '{"name": "f", "arguments": "' + "[" * DEEP + "]" * DEEP + '"}',
    "bare call": '{"name": "f", "parameters": ' + "[" * DEEP + "]" * DEEP + "}",
    "just under the limit": '{"name": "f", "parameters": ' + objects(975) + "}",
}


def usage_of(response: Any, stream: bool) -> int:
    if stream:
        chunks = [e for e in sse_events(response.body) if isinstance(e, dict) and e.get("usage")]
        return int(chunks[-1]["usage"]["total_tokens"])
    return int(json.loads(response.body)["usage"]["total_tokens"])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("choice", ["auto", "required"])
@pytest.mark.parametrize("answer", list(DEEP_ANSWERS))
def test_a_deep_answer_is_read_and_billed(make_api: ApiFactory, key_store: KeyStore,
                                          emulator: EmulatorControl, dynamodb: Any,
                                          answer: str, choice: str, stream: bool) -> None:
    api, key_id = limited(make_api, key_store)
    emulator.respond_next(DEEP_ANSWERS[answer], DEEP_ANSWERS[answer])
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 2048, "tools": TOOLS,
                            "tool_choice": choice,
                            "messages": [{"role": "user", "content": "x"}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    response = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(body))
    assert response.status_code in (200, 422), response.body
    if response.status_code == 200:
        assert day_tokens(dynamodb, key_id) == usage_of(response, stream)
    else:  # a forced call that is not one: billed, the reservation settled
        assert error_of(response)["code"] == "invalid_model_output"
        # Both calls' prompts as Bedrock counts them (the repair's holds the
        # dense first answer), plus at most max_tokens generated by each.
        prompts = sum(count_prompt_tokens(r["body"]["prompt"]) for r in emulator.requests())
        assert prompts < day_tokens(dynamodb, key_id) <= prompts + 2 * 2048


def test_a_deep_json_answer_is_a_422_and_billed(make_api: ApiFactory, key_store: KeyStore,
                                                emulator: EmulatorControl, dynamodb: Any) -> None:
    api, key_id = limited(make_api, key_store)
    deep = '"a": ' + "[" * DEEP + "]" * DEEP + "}"  # the assistant turn is prefilled with "{"
    emulator.respond_next(deep, deep)
    response = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps({
        "model": MODEL, "max_tokens": 2048, "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "x"}]}))
    assert response.status_code == 422, response.body
    assert f"deeper than {MAX_DEPTH}" in error_of(response)["message"]
    assert 0 < day_tokens(dynamodb, key_id) < 3 * 2048


def broken_parser(*_: Any, **__: Any) -> Any:
    raise RuntimeError("a parser bug")


@pytest.mark.parametrize("stream", [False, True])
def test_a_parser_bug_is_a_502_that_still_bills(make_api: ApiFactory, key_store: KeyStore,
                                                emulator: EmulatorControl, dynamodb: Any,
                                                monkeypatch: pytest.MonkeyPatch,
                                                stream: bool) -> None:
    # Whatever fails while reading an answer, Bedrock generated (and bills)
    # its tokens: the key pays them, and the client gets no traceback.
    monkeypatch.setattr(chalicelib.models.answers, "parse", broken_parser)
    monkeypatch.setattr(chalicelib.models.tool_stream, "parse", broken_parser)
    api, key_id = limited(make_api, key_store)
    emulator.respond_next('{"name": "f", "parameters": {}}')
    response = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps({
        "model": MODEL, "max_tokens": 50, "tools": TOOLS, "stream": stream,
        "messages": [{"role": "user", "content": "x"}]}))
    assert response.status_code == 502, response.body
    error = error_of(response)
    assert error["code"] == "upstream_error" and "parser bug" not in error["message"]
    tokens = day_tokens(dynamodb, key_id)
    assert 0 < tokens < 200  # what was generated, not the reservation nor nothing
    assert emulator.stats()["invocations"] == 1


# A client's pattern, matched against the model's strings by a backtracking
# engine: exponential in the string's length (before, seconds for the first,
# hours for the second at forty characters).
SLOW_PATTERNS = [("^(a+)+$", "a" * 26 + "!"), ("^(a|aa)+$", "a" * 40 + "!")]
SHAPES = ["auto", "strict", "required", "stream", "json_schema", "patternProperties"]


def slow_request(shape: str, pattern: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string",
                                                                     "pattern": pattern}},
                              "required": ["a"]}
    if shape == "patternProperties":
        schema = {"type": "object", "patternProperties": {pattern: {"type": "integer"}},
                  "additionalProperties": False}
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 200,
                            "messages": [{"role": "user", "content": "x"}]}
    if shape == "json_schema":
        return {**body, "response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "strict": True, "schema": schema}}}
    function = {"name": "f", "parameters": schema, "strict": shape == "strict"}
    body["tools"] = [{"type": "function", "function": function}]
    if shape == "required":
        body["tool_choice"] = "required"
    if shape == "stream":
        body.update(stream=True, stream_options={"include_usage": True})
    return body


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern,text", SLOW_PATTERNS)
def test_a_slow_pattern_never_holds_an_answer(make_api: ApiFactory, key_store: KeyStore,
                                              emulator: EmulatorControl, dynamodb: Any,
                                              shape: str, pattern: str, text: str) -> None:
    api, key_id = limited(make_api, key_store)
    arguments = {text: 1} if shape == "patternProperties" else {"a": text}
    answer = ('{"name": "f", "parameters": ' + json.dumps(arguments) + "}"
              if shape != "json_schema" else json.dumps(arguments)[1:])  # "{" is prefilled
    emulator.respond_next(answer, answer)
    started = time.monotonic()
    response = api.http.post("/v1/chat/completions", headers=JSON,
                             body=json.dumps(slow_request(shape, pattern)))
    assert time.monotonic() - started < 1.5
    assert response.status_code in (200, 422), response.body
    if response.status_code == 200:
        assert day_tokens(dynamodb, key_id) == usage_of(response, shape == "stream")
    else:
        assert error_of(response)["code"] == "invalid_model_output"
        assert 0 < day_tokens(dynamodb, key_id) < 3 * 200


def test_a_deferred_request_still_pays_what_its_throttled_attempt_generated(
        make_api: ApiFactory, key_store: KeyStore, job_queues: dict[str, str], sqs: Any,
        emulator: EmulatorControl, dynamodb: Any) -> None:
    # Bedrock may throttle a stream after its first chunks; with Prefer:
    # respond-async the request becomes a job, and those chunks' tokens
    # (billed by Bedrock) must stay billed to the key, as without it.
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 100_000})
    api = make_api(key=secret, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)
    body = json.dumps({"prompt": "tell me something long", "max_tokens": 200})
    emulator.configure(fail_in_stream=True, fail_next=["ThrottlingException"])
    refused = api.http.post("/chat", headers=JSON, body=body)
    assert refused.status_code == 429
    attempt = day_tokens(dynamodb, record.key_id)
    assert attempt > 0  # what the throttled attempt generated, as billed without a job

    emulator.configure(fail_in_stream=True, fail_next=["ThrottlingException"])
    deferred = api.http.post("/chat", headers={**JSON, "Prefer": "respond-async"}, body=body)
    assert deferred.status_code == 202, deferred.body
    assert drain(sqs, job_queues["jobs"]) == 1
    done = json.loads(status(api, json.loads(deferred.body)["job_id"]).body)
    assert done["status"] == "succeeded"
    assert day_tokens(dynamodb, record.key_id) == (
        2 * attempt + done["result"]["usage"]["total_tokens"])


@pytest.mark.parametrize("fault", ["ValidationException", "ThrottlingException",
                                   "InternalServerException"])
def test_a_job_pays_what_a_broken_attempt_generated(make_api: ApiFactory, key_store: KeyStore,
                                                    job_queues: dict[str, str], sqs: Any,
                                                    emulator: EmulatorControl,
                                                    dynamodb: Any, fault: str) -> None:
    # The same fault mid-stream costs a job what it costs /chat: the tokens
    # Bedrock generated before it, whether the job then fails or is retried.
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 100_000})
    api = make_api(key=secret, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0,
                   jobs_max_receives=1)
    body = json.dumps({"prompt": "tell me something long", "max_tokens": 200})
    emulator.configure(fail_in_stream=True, fail_next=[fault] * 3)
    assert api.http.post("/chat", headers=JSON, body=body).status_code >= 400
    direct = day_tokens(dynamodb, record.key_id)
    assert direct > 0

    emulator.configure(fail_in_stream=True, fail_next=[fault] * 3)
    accepted = submit(api, json.loads(body))
    drain(sqs, job_queues["jobs"])
    assert json.loads(status(api, accepted["job_id"]).body)["status"] == "failed"
    assert day_tokens(dynamodb, record.key_id) == 2 * direct


@pytest.mark.parametrize("fault", ["InternalServerException", "ThrottlingException"])
def test_a_converse_stream_broken_part_way_is_billed(make_api: ApiFactory, key_store: KeyStore,
                                                     emulator: EmulatorControl, dynamodb: Any,
                                                     fault: str) -> None:
    # ConverseStream reports usage only in its last event; a stream that breaks
    # after text was sent bills the prompt (the reservation's estimate of it)
    # and what came, never only the output.
    api, key_id = limited(make_api, key_store, allowed_models=(MODEL, CLAUDE))
    emulator.configure(fail_in_stream=True, fail_next=[fault] * 3)
    body = {"model": CLAUDE, "max_tokens": 200, "stream": True,
            "messages": [{"role": "user", "content": "tell me something long"}]}
    response = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(body))
    assert response.status_code >= 400  # the test client buffers: the stream's error
    prompt = prompt_estimate(parse_openai_request(body, api.runtime.settings)[0])
    # Two deltas came before the fault (the emulator's CHUNKS_BEFORE_STREAM_FAULT).
    assert prompt + 2 <= day_tokens(dynamodb, key_id) < prompt + 10


TITAN = "amazon.titan-embed-text-v2:0"


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", {"model": TITAN, "messages": [{"role": "user", "content": "x"}]}),
    ("/chat", {"model": TITAN, "prompt": "x"}),
    ("/chat/jobs", {"model": TITAN, "prompt": "x"}),
    ("/v1/completions", {"model": TITAN, "prompt": "x"}),
])
@pytest.mark.parametrize("max_tokens", [None, 5])
def test_an_embedding_model_on_a_chat_route_is_named_as_such(make_api: ApiFactory, path: str,
                                                             body: dict[str, Any],
                                                             max_tokens: int | None) -> None:
    # Its chat limits are empty (max_tokens 1..0): the error must be the model,
    # whatever else the request says.
    api = make_api(allowed_models=(MODEL, TITAN))
    sent = {**body, "max_tokens": max_tokens} if max_tokens else body
    response = api.http.post(path, headers=JSON, body=json.dumps(sent))
    assert response.status_code == 400, response.body
    error = error_of(response)
    assert error["param"] == "model" and "embedding model" in error["message"]


@pytest.mark.parametrize("call_id", ["call:1", "call.1", "id with spaces", "x" * 65, "é", "call_ok"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_replayed_call_id_of_any_shape_reaches_converse_as_bedrock_takes_it(
        make_api: ApiFactory, emulator: EmulatorControl, call_id: str, stream: bool) -> None:
    # Bedrock's toolUseId is 1-64 of [a-zA-Z0-9_-] (the emulator checks it, as
    # Bedrock does with a ValidationException); clients replay other shapes.
    api = make_api(allowed_models=(MODEL, CLAUDE))
    response = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps({
        "model": CLAUDE, "max_tokens": 20, "tools": TOOLS, "stream": stream, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "r"}]}))
    assert response.status_code == 200, response.body
    messages = emulator.requests()[-1]["body"]["messages"]
    use = messages[1]["content"][0]["toolUse"]["toolUseId"]
    assert use == messages[2]["content"][0]["toolResult"]["toolUseId"]
    assert use == call_id if call_id == "call_ok" else use.startswith("id_")


STOP_BODIES = {"/chat": {"prompt": "x"},
               "/v1/chat/completions": {"model": MODEL,
                                        "messages": [{"role": "user", "content": "x"}]},
               "/v1/completions": {"model": MODEL, "prompt": "x"}}


@pytest.mark.parametrize("path", list(STOP_BODIES))
@pytest.mark.parametrize("stop,words", [(["a", "b", "c", "d", "e"], "at most 4 sequences"),
                                        (["a" * 129], "at most 128 characters"),
                                        ("a" * 10_000, "at most 128 characters")])
def test_stop_sequences_are_capped_on_every_route(api: Api, emulator: EmulatorControl,
                                                  path: str, stop: Any, words: str) -> None:
    response = api.http.post(path, headers=JSON,
                             body=json.dumps({**STOP_BODIES[path], "stop": stop}))
    assert response.status_code == 400, response.body
    error = error_of(response)
    assert error["param"] == "stop" and words in error["message"]
    assert emulator.requests() == []


@pytest.mark.parametrize("path", list(STOP_BODIES))
def test_stop_sequences_within_the_caps_are_served(api: Api, path: str) -> None:
    response = api.http.post(path, headers=JSON, body=json.dumps(
        {**STOP_BODIES[path], "stop": ["a" * 128, "b", "c", "d"], "max_tokens": 5}))
    assert response.status_code == 200, response.body
