"""Tools and structured output through the whole app (chalice.test.Client ->
emulator over HTTP -> moto), on both APIs, streamed and not, cached, queued.

Real Llama output shapes are fed through the emulator's scripted mode
(``respond_next``); the tests check what reached Bedrock (the prompt) as
well as what came back.
"""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from devstack.prompt_tokens import count_prompt_tokens
from tests.conftest import MODEL, Api, ApiFactory
from tests.functional.test_jobs import drain, status, submit
from tests.openapi_check import sse_events
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                                     "required": ["q"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
CALL = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
PERSON = {"type": "object", "properties": {"name": {"type": "string"},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def post(api: Api, body: dict[str, Any], path: str = "/v1/chat/completions") -> Any:
    return api.http.post(path, headers=JSON, body=json.dumps({"model": MODEL, **body}))


def script(emulator: EmulatorControl, *texts: str) -> None:
    emulator.configure(respond_next=list(texts))


def prompt_sent(emulator: EmulatorControl, index: int = -1) -> str:
    return str(emulator.requests()[index]["body"]["prompt"])


@pytest.mark.parametrize("answer", [
    CALL,
    "<|python_tag|>" + CALL,
    '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}',
    "```json\n" + CALL + "\n```",
    '<function=get_weather>{"city": "Paris"}</function>',
    "Let me check.\n" + CALL,
])
def test_real_output_shapes_become_tool_calls(api: Api, emulator: EmulatorControl,
                                              answer: str) -> None:
    script(emulator, answer)
    response = post(api, {"messages": ASK, "tools": [WEATHER, SEARCH]})
    assert response.status_code == 200, response.body
    choice = json.loads(response.body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == \
        ("get_weather", {"city": "Paris"})
    prose = answer.startswith("Let me")
    assert choice["message"]["content"] == ("Let me check." if prose else None)
    sent = prompt_sent(emulator)
    assert "Environment: ipython" in sent and '"name": "get_weather"' in sent
    assert sent.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_a_whole_tool_round_trip(api: Api, emulator: EmulatorControl) -> None:
    script(emulator, f'{CALL}; {{"name": "search", "parameters": {{"q": "Paris"}}}}',
           "It is 21 degrees and sunny in Paris.")
    first = json.loads(post(api, {"messages": ASK, "tools": [WEATHER, SEARCH]}).body)
    message = first["choices"][0]["message"]
    ids = [c["id"] for c in message["tool_calls"]]
    assert len(set(ids)) == 2
    results = [{"role": "tool", "tool_call_id": i, "content": '{"temp": 21}'} for i in ids]
    second = post(api, {"messages": [*ASK, message, *results], "tools": [WEATHER, SEARCH]})
    answer = json.loads(second.body)["choices"][0]
    assert answer["finish_reason"] == "stop" and "21 degrees" in answer["message"]["content"]
    sent = prompt_sent(emulator)
    assert sent.count('<|start_header_id|>ipython<|end_header_id|>\n\n{"temp": 21}<|eot_id|>') == 2
    assert ('<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", '
            '"parameters": {"city": "Paris"}}\n{"name": "search"') in sent


def test_tool_choice_required_and_named_prefill_the_call(api: Api,
                                                         emulator: EmulatorControl) -> None:
    script(emulator, 'search", "parameters": {"q": "x"}}', '{"city": "Oslo"}}')
    required = json.loads(post(api, {"messages": ASK, "tools": [WEATHER, SEARCH],
                                     "tool_choice": "required"}).body)
    assert required["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search"
    assert prompt_sent(emulator).endswith('<|end_header_id|>\n\n{"name": "')
    named = json.loads(post(api, {"messages": ASK, "tools": [WEATHER, SEARCH], "tool_choice": {
        "type": "function", "function": {"name": "get_weather"}}}).body)
    call = named["choices"][0]["message"]["tool_calls"][0]["function"]
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"city": "Oslo"})
    assert prompt_sent(emulator).endswith('{"name": "get_weather", "parameters": ')


def test_tool_choice_none_keeps_json_as_text(api: Api, emulator: EmulatorControl) -> None:
    script(emulator, CALL)
    body = json.loads(post(api, {"messages": ASK, "tools": [WEATHER],
                                 "tool_choice": "none"}).body)
    assert body["choices"][0]["message"]["content"] == CALL
    assert "get_weather" not in prompt_sent(emulator)


def test_an_answer_that_is_not_a_forced_call_is_repaired_then_refused(
        api: Api, emulator: EmulatorControl, dynamodb: Any) -> None:
    script(emulator, "I would rather chat.", "Still chatting.")
    response = post(api, {"messages": ASK, "tools": [WEATHER], "tool_choice": "required"})
    assert response.status_code == 422
    error = json.loads(response.body)["error"]
    assert error["code"] == "invalid_model_output" and "not a call" in error["message"]
    assert len(emulator.requests()) == 2
    assert "could not be used" in prompt_sent(emulator)  # the repair says what was wrong


def test_strict_arguments_are_checked_and_repaired(api: Api, emulator: EmulatorControl) -> None:
    strict = {"type": "function", "function": {**WEATHER["function"], "strict": True}}
    script(emulator, '{"name": "get_weather", "parameters": {"town": "Paris"}}', CALL)
    body = json.loads(post(api, {"messages": ASK, "tools": [strict]}).body)
    call = body["choices"][0]["message"]["tool_calls"][0]["function"]
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert "'city' is a required property" in prompt_sent(emulator)
    # Both calls are billed.
    first, second = (r["body"]["prompt"] for r in emulator.requests())
    assert body["usage"]["prompt_tokens"] == count_prompt_tokens(first) + count_prompt_tokens(second)


@pytest.mark.parametrize("fmt,scripted,expected", [
    ({"type": "json_object"}, '"a": 1}', {"a": 1}),
    ({"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
     '"name": "Ada", "age": 36}', {"name": "Ada", "age": 36}),
])
def test_structured_output(api: Api, emulator: EmulatorControl, fmt: dict, scripted: str,
                           expected: dict) -> None:
    script(emulator, scripted)
    body = json.loads(post(api, {"messages": ASK, "response_format": fmt}).body)
    assert json.loads(body["choices"][0]["message"]["content"]) == expected
    sent = prompt_sent(emulator)
    assert sent.endswith("<|end_header_id|>\n\n{")
    if fmt["type"] == "json_schema":
        assert "valid against this JSON Schema:\n" + json.dumps(
            PERSON, separators=(",", ":")) in sent


def test_a_strict_schema_never_returns_content_that_does_not_fit(
        api: Api, emulator: EmulatorControl) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON, "strict": True}}
    script(emulator, '"name": "Ada"}', '"name": "Ada", "age": "old"}')
    response = post(api, {"messages": ASK, "response_format": fmt})
    assert response.status_code == 422
    assert "age" in json.loads(response.body)["error"]["message"]


def test_streamed_tool_calls_are_openai_deltas(api: Api, emulator: EmulatorControl) -> None:
    script(emulator, CALL)
    response = post(api, {"messages": ASK, "tools": [WEATHER], "stream": True,
                          "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    events = sse_events(response.body)
    deltas = [c["delta"]["tool_calls"][0] for e in events for c in e["choices"]
              if "tool_calls" in c["delta"]]
    assert deltas[0]["index"] == 0 and deltas[0]["function"]["name"] == "get_weather"
    assert deltas[0]["id"].startswith("call_") and deltas[0]["type"] == "function"
    assert json.loads("".join(d["function"]["arguments"] for d in deltas)) == {"city": "Paris"}
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0


def test_streamed_json_is_checked_before_it_is_sent(api: Api, emulator: EmulatorControl) -> None:
    script(emulator, '"name": "Ada", "age": 36}')
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}
    response = post(api, {"messages": ASK, "response_format": fmt, "stream": True})
    text = "".join(c["delta"].get("content", "") for e in sse_events(response.body)
                   for c in e["choices"])
    assert json.loads(text) == {"name": "Ada", "age": 36}


def test_the_native_api_has_tools_too(api: Api, emulator: EmulatorControl) -> None:
    script(emulator, CALL, "Sunny.")
    tool = {"name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    first = json.loads(post(api, {"messages": ASK, "tools": [tool]}, "/chat").body)
    assert first["stop_reason"] == "tool_calls" and first["text"] == ""
    (call,) = first["tool_calls"]
    assert (call["name"], call["arguments"]) == ("get_weather", {"city": "Paris"})
    second = json.loads(post(api, {"tools": [tool], "messages": [
        *ASK, {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "21C"}]}, "/chat").body)
    assert second["text"] == "Sunny." and "tool_calls" not in second
    schema = json.loads(post(api, {"prompt": "Who?", "response_format": {
        "type": "json_schema", "schema": PERSON}}, "/chat").body)
    assert schema["stop_reason"] == "stop"  # generated by the emulator, valid for the schema
    assert set(json.loads(schema["text"])) == {"name", "age"}


def test_the_cache_keys_on_tools_and_gives_fresh_call_ids(api: Api,
                                                          emulator: EmulatorControl) -> None:
    ask = [{"role": "user", "content": f"Weather in Paris? {time.monotonic_ns()}"}]
    script(emulator, CALL)
    body = {"messages": ask, "tools": [WEATHER], "temperature": 0}
    miss, hit = post(api, body), post(api, body)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    ids = [json.loads(r.body)["choices"][0]["message"]["tool_calls"][0]["id"] for r in (miss, hit)]
    assert ids[0] != ids[1]
    other = post(api, {**body, "tools": [WEATHER, SEARCH]})
    assert other.headers["x-cache"] == "miss"


def test_jobs_take_tools_and_response_format(make_api: ApiFactory, sqs: Any,
                                             job_queues: dict[str, str],
                                             emulator: EmulatorControl) -> None:
    api = make_api(jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)
    script(emulator, CALL)
    tool = {"name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    accepted = submit(api, {"messages": ASK, "tools": [tool], "tool_choice": "required"})
    drain(sqs, job_queues["jobs"])
    done = json.loads(status(api, accepted["job_id"]).body)
    assert done["status"] == "succeeded", done
    assert done["result"]["tool_calls"][0]["arguments"] == {"city": "Paris"}
    script(emulator, "nope", "nope again")
    failed = submit(api, {"prompt": "x", "response_format": {"type": "json_object"}})
    drain(sqs, job_queues["jobs"])
    body = json.loads(status(api, failed["job_id"]).body)
    assert body["status"] == "failed" and body["error"]["code"] == "invalid_model_output"


def test_auto_tools_stream_text_as_it_comes(api: Api, emulator: EmulatorControl) -> None:
    """With tool_choice auto the answer is not held whole: prose streams in
    Bedrock's pieces, and a call on its own line still becomes deltas."""
    script(emulator, "It is sunny in Paris today, so enjoy a long walk by the river.",
           "Let me check that for you.\n" + CALL)
    prose = sse_events(post(api, {"messages": ASK, "tools": [WEATHER], "stream": True}).body)
    pieces = [c["delta"]["content"] for e in prose for c in e["choices"]
              if c["delta"].get("content")]
    assert len(pieces) > 3 and "".join(pieces).startswith("It is sunny in Paris")
    mixed = sse_events(post(api, {"messages": ASK, "tools": [WEATHER], "stream": True}).body)
    text = "".join(c["delta"].get("content") or "" for e in mixed for c in e["choices"])
    calls = [c["delta"]["tool_calls"][0] for e in mixed for c in e["choices"]
             if c["delta"].get("tool_calls")]
    assert text.strip() == "Let me check that for you."
    assert calls[0]["function"]["name"] == "get_weather"
    assert [c["finish_reason"] for e in mixed for c in e["choices"] if c["finish_reason"]] == \
        ["tool_calls"]


def test_strict_tools_stream_live_and_their_calls_are_repaired(
        api: Api, emulator: EmulatorControl) -> None:
    """Strict tools (the Agents SDK sends every tool so) no longer hold the
    whole answer: prose streams as it comes, and a held-back call that does
    not fit its schema gets its repair before any of it is sent."""
    strict = {"type": "function", "function": {**WEATHER["function"], "strict": True}}
    script(emulator, "It is sunny in Paris today, so enjoy a long walk by the river.",
           '{"name": "get_weather", "parameters": {"town": "Paris"}}', CALL)
    prose = sse_events(post(api, {"messages": ASK, "tools": [strict], "stream": True}).body)
    pieces = [c["delta"]["content"] for e in prose for c in e["choices"]
              if c["delta"].get("content")]
    assert len(pieces) > 3 and "".join(pieces).startswith("It is sunny in Paris")
    emulator.clear_requests()
    events = sse_events(post(api, {"messages": ASK, "tools": [strict], "stream": True,
                                   "stream_options": {"include_usage": True}}).body)
    calls = [c["delta"]["tool_calls"][0] for e in events for c in e["choices"]
             if c["delta"].get("tool_calls")]
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Paris"}
    assert [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]] == \
        ["tool_calls"]
    first, second = emulator.requests()
    assert "Your last answer could not be used" in second["body"]["prompt"]
    assert '"town"' in second["body"]["prompt"]
    # Both calls are billed and reported.
    usage = events[-1]["usage"]
    assert usage["prompt_tokens"] > len(first["body"]["prompt"]) // 8
    assert usage["completion_tokens"] >= 2


def test_a_strict_call_that_stays_wrong_is_a_422_before_the_stream(
        api: Api, emulator: EmulatorControl) -> None:
    strict = {"type": "function", "function": {**WEATHER["function"], "strict": True}}
    bad = '{"name": "get_weather", "parameters": {"town": "Paris"}}'
    script(emulator, bad, bad)
    response = post(api, {"messages": ASK, "tools": [strict], "stream": True})
    assert response.status_code == 422
    assert json.loads(response.body)["error"]["code"] == "invalid_model_output"


def streamed_content(response: Any) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in sse_events(response.body)
                   if isinstance(e, dict) and e.get("choices"))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("tools", [[WEATHER], []])
@pytest.mark.parametrize("answer,content", [
    ("<|python_tag|>It is sunny in Paris.", "It is sunny in Paris."),
    ('<|python_tag|>brave_search.call(query="Paris weather")',
     'brave_search.call(query="Paris weather")'),  # a built-in tool nobody offered
    ('<|python_tag|>{"name": "unknown", "parameters": {}}', '{"name": "unknown", "parameters": {}}'),
])
def test_a_leading_python_tag_never_reaches_content(api: Api, emulator: EmulatorControl,
                                                    answer: str, content: str,
                                                    tools: list[Any], stream: bool) -> None:
    script(emulator, answer)
    body: dict[str, Any] = {"messages": ASK, "stream": stream, **({"tools": tools} if tools else {})}
    response = post(api, body)
    assert response.status_code == 200, response.body
    if stream:
        assert streamed_content(response) == content
    else:
        message = json.loads(response.body)["choices"][0]["message"]
        assert message["content"] == content and not message.get("tool_calls")
