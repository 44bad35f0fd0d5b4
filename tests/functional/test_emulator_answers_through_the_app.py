"""The emulator's own tool calls and JSON documents (nothing scripted) through
the whole app: what a user of ``make run`` gets for tools and structured output
without any set-up. The endpoint renders the prompt, the emulator reads it back
and answers, the endpoint parses and checks the answer."""
from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.conftest import MODEL, Api
from tests.llama_format import FLIGHT, PERSON, TOOLS, WEATHER
from tests.openapi_check import sse_events
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}


def post(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.http.post("/v1/chat/completions", headers=JSON,
                             body=json.dumps({"model": MODEL, **body}))
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def valid(value: Any, schema: Any) -> None:
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(value)


def strict(tool: dict) -> dict:
    return {"type": "function", "function": {**tool["function"], "strict": True}}


@pytest.mark.parametrize("choice,question,name", [
    ("auto", "Book a flight to Lisbon for me", "book_flight"),
    ("required", "What's the weather in Oslo?", "get_weather"),
    ({"type": "function", "function": {"name": "get_weather"}}, "Book a flight to Lisbon",
     "get_weather"),
])
def test_generated_calls_come_back_as_tool_calls(api: Api, emulator: EmulatorControl,
                                                 choice: Any, question: str, name: str) -> None:
    body = post(api, {"messages": [{"role": "user", "content": question}],
                      "tools": [strict(t) for t in TOOLS], "tool_choice": choice})
    choice_out = body["choices"][0]
    assert choice_out["finish_reason"] == "tool_calls", body
    (call,) = choice_out["message"]["tool_calls"]
    assert call["function"]["name"] == name
    tool = next(t for t in TOOLS if t["function"]["name"] == name)
    valid(json.loads(call["function"]["arguments"]), tool["function"]["parameters"])
    assert len(emulator.requests()) == 1  # right the first time: no repair needed


def test_a_generated_round_trip_ends_in_text_quoting_the_result(api: Api) -> None:
    ask = [{"role": "user", "content": "What's the weather in Oslo?"}]
    first = post(api, {"messages": ask, "tools": [WEATHER]})
    message = first["choices"][0]["message"]
    result = {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"],
              "content": '{"temp": 21, "sky": "clear"}'}
    second = post(api, {"messages": [*ask, message, result], "tools": [WEATHER]})
    answer = second["choices"][0]
    assert answer["finish_reason"] == "stop"
    assert '{"temp": 21, "sky": "clear"}' in answer["message"]["content"]


def test_a_generated_document_fits_a_strict_schema(api: Api, emulator: EmulatorControl) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON,
                                                  "strict": True}}
    body = post(api, {"messages": [{"role": "user", "content": "Describe Ada"}],
                      "response_format": fmt})
    valid(json.loads(body["choices"][0]["message"]["content"]), PERSON)
    assert len(emulator.requests()) == 1


def test_a_generated_call_streams_as_deltas(api: Api) -> None:
    response = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps({
        "model": MODEL, "stream": True, "tools": [FLIGHT], "tool_choice": "required",
        "messages": [{"role": "user", "content": "Book a flight"}]}))
    events = sse_events(response.body)
    deltas = [c["delta"]["tool_calls"][0] for e in events for c in e["choices"]
              if "tool_calls" in c["delta"]]
    assert deltas[0]["function"]["name"] == "book_flight"
    arguments = json.loads("".join(d["function"].get("arguments", "") for d in deltas))
    valid(arguments, FLIGHT["function"]["parameters"])
