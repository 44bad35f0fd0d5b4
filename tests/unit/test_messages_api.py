"""Anthropic's Messages shapes, both ways (pure): bodies -> ChatRequest, and
Completions / stream events -> Anthropic's message and its named events."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chalicelib import errors
from chalicelib.chat import (Completion, Message, StreamEnd, TextDelta, ToolCall, ToolCallDelta,
                             Usage)
from chalicelib.config import Settings
from chalicelib.streaming.messages import render_events
from chalicelib.wire.messages import error_type, parse_messages_request, render_message

LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
SETTINGS = dataclasses.replace(Settings(), allowed_models=(LLAMA,))
TOOL = {"name": "f", "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}}


def parse(**body: Any) -> Any:
    return parse_messages_request({"model": LLAMA, "max_tokens": 10,
                                   "messages": [{"role": "user", "content": "hi"}], **body},
                                  SETTINGS)[0]


@pytest.mark.parametrize("body, messages", [
    ({"system": "S"}, (Message("system", "S"), Message("user", "hi"))),
    ({"system": [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
                 {"type": "text", "text": "B"}]},
     (Message("system", "A\nB"), Message("user", "hi"))),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                {"type": "text", "text": "b"}]},
                   {"role": "system", "content": "later"},
                   {"role": "assistant", "content": ""}]},
     (Message("user", "a\nb"), Message("system", "later"))),
    ({"tools": [TOOL], "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                          {"type": "tool_use", "id": "t1", "name": "f",
                                           "input": {"x": "1"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "no", "is_error": True},
                                     {"type": "text", "text": "go on"}]}]},
     (Message("user", "q"), Message("assistant", "", (ToolCall("t1", "f", '{"x": "1"}'),)),
      Message("tool", "Error: no", tool_call_id="t1"), Message("user", "go on"))),
])
def test_turns(body: dict[str, Any], messages: tuple[Message, ...]) -> None:
    assert parse(**body).messages == messages


@pytest.mark.parametrize("choice, mode, name, parallel", [
    (None, "auto", None, True),
    ({"type": "auto", "disable_parallel_tool_use": True}, "auto", None, False),
    ({"type": "any"}, "required", None, True),
    ({"type": "tool", "name": "f"}, "function", "f", True),
    ({"type": "none"}, "none", None, True),
])
def test_tool_choice(choice: Any, mode: str, name: str | None, parallel: bool) -> None:
    request = parse(tools=[TOOL], **({"tool_choice": choice} if choice else {}))
    assert (request.tool_choice.mode, request.tool_choice.name,
            request.parallel_tool_calls) == (mode, name, parallel)


def test_sampling_and_limits() -> None:
    request = parse(temperature=0.2, top_p=0.5, stop_sequences=["END"], max_tokens=99_999)
    assert (request.temperature, request.top_p, request.stop, request.max_tokens) == \
        (0.2, 0.5, ("END",), 2048)
    assert parse().temperature == 1.0
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = parse(output_config={"format": {"type": "json_schema", "schema": schema}}
                ).response_format
    assert fmt.type == "json_schema" and fmt.strict and json.loads(fmt.schema or "") == schema


@pytest.mark.parametrize("body, param", [
    ({"top_k": 1}, "top_k"),
    ({"speed": "fast"}, "speed"),
    ({"inference_geo": "us"}, "inference_geo"),
    ({"mcp_servers": []}, "mcp_servers"),
    ({"output_config": {"effort": "low"}}, "output_config.effort"),
    ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
    ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
    ({"cache_control": {"type": "persistent"}}, "cache_control.type"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f",
                                                 "input": {}}]}]},
     "messages[0].content[0].type"),
    ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ({"metadata": {"user_id": 3}}, "metadata.user_id"),
])
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        parse(**body)
    assert caught.value.param == param


@pytest.mark.parametrize("error, kind", [
    (errors.UnsupportedParameterError("x"), "invalid_request_error"),
    (errors.AuthenticationError("x"), "authentication_error"),
    (errors.ModelNotFoundError("x"), "not_found_error"),
    (errors.RequestTooLargeError("x"), "request_too_large"),
    (errors.UpstreamThrottledError("x", retry_after=1), "rate_limit_error"),
    (errors.DeadlineExceededError("x"), "timeout_error"),
    (errors.UpstreamUnavailableError("x"), "overloaded_error"),
    (errors.UnusableAnswerError("x"), "api_error"),
    (errors.UpstreamError("x"), "api_error"),
])
def test_error_types(error: errors.ApiError, kind: str) -> None:
    assert error_type(error) == kind


COMPLETION = Completion(model=LLAMA, text="Hi", stop_reason="tool_calls", usage=Usage(5, 7),
                        tool_calls=(ToolCall("t1", "f", '{"x": "1"}'),))


def test_render_message() -> None:
    body = render_message(COMPLETION, "msg_1")
    assert body["content"] == [{"type": "text", "text": "Hi"},
                               {"type": "tool_use", "id": "t1", "name": "f",
                                "input": {"x": "1"}}]
    assert body["stop_reason"] == "tool_use" and body["usage"]["input_tokens"] == 5
    plain = render_message(dataclasses.replace(COMPLETION, tool_calls=(), stop_reason="length"),
                           "msg_2")
    assert plain["stop_reason"] == "max_tokens" and len(plain["content"]) == 1


def events(stream: Any) -> list[tuple[str, Any]]:
    out = []
    for block in "".join(render_events(iter(stream), "msg_1", LLAMA, "r1")).split("\n\n")[:-1]:
        name, data = block.split("\n")
        out.append((name[len("event: "):], json.loads(data[len("data: "):])))
    return out


def test_stream_blocks_open_and_close_in_order() -> None:
    got = events([TextDelta("Hi"), ToolCallDelta(0, "", id="t1", name="f"),
                  ToolCallDelta(0, '{"x":'), ToolCallDelta(0, ' "1"}'),
                  ToolCallDelta(1, "{}", id="t2", name="f"), StreamEnd(COMPLETION)])
    assert [(n, d.get("index")) for n, d in got] == [
        ("message_start", None), ("ping", None),
        ("content_block_start", 0), ("content_block_delta", 0), ("content_block_stop", 0),
        ("content_block_start", 1), ("content_block_delta", 1), ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2), ("content_block_delta", 2), ("content_block_stop", 2),
        ("message_delta", None), ("message_stop", None)]
    assert got[5][1]["content_block"] == {"type": "tool_use", "id": "t1", "name": "f",
                                          "input": {}}
    assert got[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"x":'}
    assert got[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert got[-2][1]["usage"]["output_tokens"] == 7


def test_an_empty_answer_is_one_empty_text_block_and_a_failure_an_error_event() -> None:
    empty = dataclasses.replace(COMPLETION, text="", tool_calls=(), stop_reason="stop")
    names = [n for n, _ in events([StreamEnd(empty)])]
    assert names[2:5] == ["content_block_start", "content_block_stop", "message_delta"]

    def broken() -> Any:
        yield TextDelta("Hi")
        raise errors.UpstreamError("The model failed to answer.")
    got = events(broken())
    assert got[-2][0] == "content_block_delta"
    assert got[-1] == ("error", {"type": "error", "request_id": "r1", "error": {
        "type": "api_error", "message": "The model failed to answer."}})
