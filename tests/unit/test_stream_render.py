"""Stream events -> OpenAI chunks and native events (pure), and the live
stop-sequence handling of ChatService.stream over an in-memory gateway."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.chat import (ChatRequest, Completion, Message, StreamEnd, StreamEvent, TextDelta,
                             ToolCall, ToolCallDelta, Usage)
from chalicelib.completion import ChatService, held_back
from chalicelib.errors import UpstreamError
from chalicelib.streaming.native import render_events, split_stream_flag
from chalicelib.streaming.openai import render_chunks
from tests.openapi_check import sse_events

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
COMPLETION = Completion(model=MODEL, text="Hello there", stop_reason="length", usage=Usage(5, 3))


def text_events() -> list[StreamEvent]:
    return [TextDelta("Hello"), TextDelta(" there"), StreamEnd(COMPLETION)]


@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_text_chunks(include_usage: bool) -> None:
    body = "".join(render_chunks(text_events(), "chatcmpl-1", 1, MODEL, include_usage))
    events = sse_events(body.encode())
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hello"},
                      {"content": " there"}, {}]
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]] == [
        None, None, None, "length"]
    assert all(e["id"] == "chatcmpl-1" and e["object"] == "chat.completion.chunk"
               for e in events)
    if include_usage:
        assert all(e["usage"] is None for e in events[:-1])
        assert events[-1]["choices"] == [] and events[-1]["usage"] == {
            "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
            "prompt_tokens_details": {"cached_tokens": 0}, "cost_usd": None}
    else:
        assert all("usage" not in e for e in events)


def test_openai_tool_call_chunks() -> None:
    calls = (ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
             ToolCall("call_2", "get_time", "{}"))
    end = Completion(model=MODEL, text="", stop_reason="tool_calls", usage=Usage(5, 9),
                     tool_calls=calls)
    events: list[StreamEvent] = [
        ToolCallDelta(0, id="call_1", name="get_weather"), ToolCallDelta(0, '{"city": '),
        ToolCallDelta(0, '"Paris"}'), ToolCallDelta(1, "{}", id="call_2", name="get_time"),
        StreamEnd(end)]
    chunks = sse_events("".join(render_chunks(events, "c", 1, MODEL, False)).encode())
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[1:] == [
        {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                         "function": {"name": "get_time", "arguments": ""}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def failing(events: list[StreamEvent]) -> Iterator[StreamEvent]:
    yield from events
    raise UpstreamError("The model's stream broke off.")


def test_openai_error_after_the_first_byte_is_an_error_event_without_done() -> None:
    body = "".join(render_chunks(failing([TextDelta("Hel")]), "c", 1, MODEL, True))
    blocks = body.strip().split("\n\n")
    assert blocks[-1] != "data: [DONE]"
    assert json.loads(blocks[-1][len("data: "):]) == {"error": {
        "message": "The model's stream broke off.", "type": "server_error",
        "code": "upstream_error", "param": None}}


def native(events: Any) -> list[tuple[str, Any]]:
    text = "".join(render_events(events, "r1", MODEL))
    out = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        out.append((name[len("event: "):], json.loads(data[len("data: "):])))
    return out


def test_native_events() -> None:
    assert native(text_events()) == [
        ("start", {"id": "chat-r1", "model": MODEL}),
        ("delta", {"text": "Hello"}), ("delta", {"text": " there"}),
        ("end", {"id": "chat-r1", "model": MODEL, "stop_reason": "length",
                 "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8,
                           "cost_usd": None}})]


def test_native_tool_calls_and_errors() -> None:
    events = native(failing([ToolCallDelta(0, '{"a"', id="call_1", name="f"),
                             ToolCallDelta(0, ": 1}")]))
    assert events[1:] == [
        ("tool_call", {"index": 0, "id": "call_1", "name": "f", "arguments": ""}),
        ("tool_call", {"index": 0, "arguments": '{"a"'}),
        ("tool_call", {"index": 0, "arguments": ": 1}"}),
        ("error", {"error": {"message": "The model's stream broke off.", "type": "server_error",
                             "code": "upstream_error", "param": None}})]


@pytest.mark.parametrize("payload,expected", [
    ({"prompt": "x"}, ({"prompt": "x"}, False)),
    ({"prompt": "x", "stream": True}, ({"prompt": "x"}, True)),
    ({"prompt": "x", "stream": None}, ({"prompt": "x"}, False)),
])
def test_split_stream_flag(payload: dict, expected: tuple) -> None:
    assert split_stream_flag(payload) == expected


def test_split_stream_flag_refuses_non_booleans() -> None:
    with pytest.raises(Exception, match="'stream' must be true or false"):
        split_stream_flag({"prompt": "x", "stream": "yes"})


@pytest.mark.parametrize("text,stops,held", [
    ("Hello", (), 0),
    ("Hello", ("END",), 0),
    ("Hello E", ("END",), 1),
    ("Hello EN", ("END",), 2),
    ("Hello EN", ("END", "N"), 2),
    ("abc", ("bcd", "c"), 2),
    ("", ("END",), 0),
])
def test_held_back(text: str, stops: tuple[str, ...], held: int) -> None:
    assert held_back(text, stops) == held


class ScriptedGateway:
    """Bedrock's stream as Llama chunks of the given pieces."""

    region = "us-east-1"

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.read = 0

    def invoke_stream(self, model_id: str, body: dict[str, Any],
                      guardrail: Any = None) -> Iterator[dict[str, Any]]:
        for index, piece in enumerate(self.pieces):
            self.read += 1
            last = index == len(self.pieces) - 1
            chunk: dict[str, Any] = {"generation": piece, "generation_token_count": index + 1,
                                     "stop_reason": "stop" if last else None}
            if index == 0:
                chunk["prompt_token_count"] = 7
            if last:
                chunk["amazon-bedrock-invocationMetrics"] = {
                    "inputTokenCount": 7, "outputTokenCount": len(self.pieces)}
            yield chunk


def request(*stops: str) -> ChatRequest:
    return ChatRequest(messages=(Message("user", "hi"),), model=MODEL, max_tokens=50,
                       temperature=0.5, top_p=0.9, stop=stops)


@pytest.mark.parametrize("pieces,stops,deltas,text", [
    (["\n\nOne", " two", " three"], (), ["One", " two", " three"], "One two three"),
    (["One", " tw", "o thr", "ee"], ("two",), ["One", " "], "One "),
    (["One", " E", "N", "D!", " more"], ("END",), ["One", " "], "One "),
    (["One", " E", "Nope"], ("END",), ["One", " ", "ENope"], "One ENope"),
    (["A", " E"], ("END",), ["A", " ", "E"], "A E"),
])
def test_live_stop_sequences(pieces: list[str], stops: tuple[str, ...], deltas: list[str],
                             text: str) -> None:
    gateway = ScriptedGateway(pieces)
    events = list(ChatService(gateway).stream(request(*stops)))  # type: ignore[arg-type]
    assert [e.text for e in events if isinstance(e, TextDelta)] == deltas
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.completion.text == text
    assert end.completion.stop_reason == ("stop")
    # Bedrock's stream is read to its end: its own usage is what is billed.
    assert gateway.read == len(pieces)
    assert end.completion.usage == Usage(7, len(pieces))
