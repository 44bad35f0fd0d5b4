"""Tools, tool choice, tool calls and response formats on both wire shapes (pure)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.chat import Message, ResponseFormat, ToolCall, ToolChoice
from chalicelib.config import Settings
from chalicelib.errors import InvalidRequestError, UnsupportedParameterError
from chalicelib.wire.native import parse_chat_request
from chalicelib.wire.openai import parse_openai_request

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
SETTINGS = Settings()
PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def fn(name: str = "get_weather", **extra: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": PARAMS, **extra}}


def openai(**fields: Any) -> Any:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **fields}
    return parse_openai_request(body, SETTINGS)[0]


def test_openai_tools_and_choice() -> None:
    request = openai(tools=[fn(description="Weather.", strict=True), fn("search")],
                     tool_choice={"type": "function", "function": {"name": "search"}},
                     parallel_tool_calls=False)
    assert [t.name for t in request.tools] == ["get_weather", "search"]
    assert request.tools[0].strict and request.tools[0].description == "Weather."
    assert json.loads(request.tools[0].parameters) == PARAMS
    assert request.tool_choice == ToolChoice("function", "search")
    assert request.parallel_tool_calls is False


def allowed(mode: str, *names: str) -> dict[str, Any]:
    return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": [
        {"type": "function", "function": {"name": name}} for name in names]}}


@pytest.mark.parametrize("choice,offered,expected", [
    # OpenAI's allowed_tools: only the subset reaches the prompt, in the tools' order.
    (allowed("auto", "search"), ["search"], ToolChoice("auto")),
    (allowed("required", "time", "get_weather"), ["get_weather", "time"], ToolChoice("required")),
    (allowed("auto", "search", "search"), ["search"], ToolChoice("auto")),
])
def test_allowed_tools(choice: dict, offered: list[str], expected: ToolChoice) -> None:
    request = openai(tools=[fn(), fn("search"), fn("time")], tool_choice=choice)
    assert [t.name for t in request.tools] == offered and request.tool_choice == expected


def test_a_tool_without_parameters_takes_none() -> None:
    request = openai(tools=[{"type": "function", "function": {"name": "now"}}])
    assert json.loads(request.tools[0].parameters) == {"type": "object", "properties": {}}


def test_a_whole_openai_tool_conversation() -> None:
    request = openai(tools=[fn()], messages=[
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Weather?", "name": "ann"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "21C"}]},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "And?"},
        {"role": "user", "content": "Please."},
        {"role": "assistant", "content": "Il fait"}])
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool", "system",
                                                  "user", "user", "assistant"]
    assert request.messages[2] == Message("assistant", "", tool_calls=(
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),))
    assert request.messages[3] == Message("tool", "21C", tool_call_id="call_1")


def test_response_formats() -> None:
    assert openai(response_format={"type": "json_object"}).response_format == \
        ResponseFormat("json_object")
    fmt = openai(response_format={"type": "json_schema", "json_schema": {
        "name": "city", "schema": PARAMS, "strict": True}}).response_format
    assert (fmt.type, fmt.name, json.loads(fmt.schema or ""), fmt.strict) == \
        ("json_schema", "city", PARAMS, True)


@pytest.mark.parametrize("fields,param", [
    ({"tools": [fn("has space")]}, "tools[0].function.name"),
    ({"tools": [fn("x" * 65)]}, "tools[0].function.name"),
    ({"tools": [fn(), fn()]}, "tools[1]"),
    ({"tools": [fn(f"f{i}") for i in range(129)]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
     "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
     "tools[0].function.parameters.type"),
    ({"tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}}]},
     "tools[0].function.parameters.properties.a.type"),
    ({"tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "$ref": "https://x/s.json"}}}]},
     "tools[0].function.parameters.$ref"),
    ({"tools": [fn(strict="yes")]}, "tools[0].function.strict"),
    ({"tools": [fn(extra=1)]}, "tools[0].function.extra"),
    ({"tools": "f"}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [fn()], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [fn()], "tool_choice": {"type": "function", "function": {"name": "other"}}},
     "tool_choice.function.name"),
    ({"tools": [fn()], "tool_choice": allowed("none", "get_weather")},
     "tool_choice.allowed_tools.mode"),
    ({"tools": [fn()], "tool_choice": allowed("auto")}, "tool_choice.allowed_tools.tools"),
    ({"tools": [fn()], "tool_choice": allowed("auto", "other")},
     "tool_choice.allowed_tools.tools[0].function.name"),
    ({"tools": [fn()], "tool_choice": {"type": "allowed_tools", "allowed_tools": {
        "mode": "auto", "tools": [{"type": "custom", "custom": {"name": "x"}}]}}},
     "tool_choice.allowed_tools.tools[0]"),
    ({"tools": [fn()], "tool_choice": {"type": "allowed_tools", "allowed_tools": "all"}},
     "tool_choice.allowed_tools"),
    ({"tool_choice": allowed("auto", "get_weather")},
     "tool_choice.allowed_tools.tools[0].function.name"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": PARAMS}}},
     "response_format.json_schema.name"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"properties": {"a": {"$ref": "#/$defs/missing"}}}}}},
     "response_format.json_schema.schema.properties.a.$ref"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "minProperties": -1}}}},
     "response_format.json_schema.schema.minProperties"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None,
                   "tool_calls": [{"id": "c", "type": "function", "function": {
                       "name": "f", "arguments": {"not": "a string"}}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "user", "content": "q", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     "messages[0].tool_calls"),
])
def test_bad_fields_are_named(fields: dict, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        openai(**fields)
    assert caught.value.param == param, caught.value.message


def test_legacy_functions_say_what_to_send() -> None:
    with pytest.raises(UnsupportedParameterError, match="send 'tools'"):
        openai(functions=[{"name": "f", "parameters": PARAMS}])


def test_the_native_shape_takes_openai_tools_too() -> None:
    request = parse_chat_request({"prompt": "x", "tools": [fn()]}, SETTINGS)
    assert request.tools[0].name == "get_weather"


def test_the_native_shape() -> None:
    request = parse_chat_request({
        "messages": [{"role": "user", "content": "Weather?"},
                     {"role": "assistant", "content": "", "tool_calls": [
                         {"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "21C"}],
        "tools": [{"name": "get_weather", "parameters": PARAMS}],
        "tool_choice": {"name": "get_weather"},
        "response_format": {"type": "json_schema", "schema": PARAMS}}, SETTINGS)
    assert request.tool_choice == ToolChoice("function", "get_weather")
    assert request.messages[1].tool_calls == (ToolCall("c1", "get_weather", '{"city": "Paris"}'),)
    assert request.response_format.type == "json_schema"


@pytest.mark.parametrize("body,param", [
    ({"prompt": "x", "tools": [{"name": "f", "type": "function"}]}, "tools[0].type"),
    ({"prompt": "x", "tools": [{"name": "f"}], "tool_choice": {"name": "g"}}, "tool_choice.name"),
    ({"prompt": "x", "response_format": {"type": "json_schema"}}, "response_format.schema"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "",
                   "tool_calls": [{"id": "c", "name": "f", "arguments": "{}"}]},
                   {"role": "tool", "tool_call_id": "c", "content": "r"}]},
     "messages[1].tool_calls[0].arguments"),
    ({"messages": [{"role": "tool", "content": "r"}]}, "messages[0].tool_call_id"),
])
def test_native_bad_fields_are_named(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_chat_request(body, SETTINGS)
    assert caught.value.param == param, caught.value.message
