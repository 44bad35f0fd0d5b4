"""streaming/responses.py (pure): events -> OpenAI's named Responses events,
in order, with rising sequence numbers, the final response naming the items
the stream opened; custom tool input; a failure mid-stream."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from chalicelib.chat import (Completion, StreamEnd, StreamEvent, TextDelta, ToolCall,
                             ToolCallDelta, Usage)
from chalicelib.config import Settings
from chalicelib.errors import UpstreamError
from chalicelib.streaming.responses import render_response_events
from chalicelib.wire.responses import parse_responses_body
from tests.openapi_check import RESPONSE_EVENT, response_events

SETTINGS = Settings()
MODEL = SETTINGS.default_model
CUSTOM = {"type": "custom", "name": "apply_patch", "description": "Edit files."}
FN = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


def run(events: list[StreamEvent], tools: list[dict[str, Any]] | None = None,
        fail: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    call = parse_responses_body({"model": MODEL, "input": "Hi", "tools": tools or []}, SETTINGS)
    kept: list[dict[str, Any]] = []

    def source() -> Iterator[StreamEvent]:
        yield from events
        if fail:
            raise UpstreamError("The model's stream ended early.")

    text = "".join(render_response_events(source(), call, "resp_1", 7, kept.append))
    parsed = response_events(text.encode())
    for event in parsed:
        RESPONSE_EVENT.validate(event)
    return parsed, kept


def test_text_is_one_message_and_the_final_response_is_what_was_kept() -> None:
    end = Completion(MODEL, "Hello there", "stop", Usage(3, 2))
    events, kept = run([TextDelta("Hello"), TextDelta(" there"), StreamEnd(end)])
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    message_id = events[2]["item"]["id"]
    assert {e.get("item_id", message_id) for e in events[3:9]} == {message_id}
    assert events[6]["text"] == "Hello there"
    assert kept == [events[-1]["response"]]
    assert kept[0]["output"][0]["id"] == message_id and kept[0]["status"] == "completed"


def test_a_call_streams_its_arguments_and_ends_with_the_same_item() -> None:
    call = ToolCall("call_1", "f", '{"a": 1}')
    end = Completion(MODEL, "", "tool_calls", Usage(3, 2), (call,))
    events, _ = run([ToolCallDelta(0, "", "call_1", "f"), ToolCallDelta(0, '{"a": '),
                     ToolCallDelta(0, "1}"), StreamEnd(end)], tools=[FN])
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["type"] == "function_call" and added["item"]["arguments"] == ""
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == '{"a": 1}'
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == '{"a": 1}' and done["item_id"] == added["item"]["id"]
    (item,) = events[-1]["response"]["output"]
    assert item["id"] == added["item"]["id"] and item["call_id"] == "call_1"


def test_a_custom_tools_input_comes_whole_once_read() -> None:
    arguments = json.dumps({"input": "*** Begin Patch"})
    end = Completion(MODEL, "", "tool_calls", Usage(3, 2),
                     (ToolCall("call_2", "apply_patch", arguments),))
    events, _ = run([ToolCallDelta(0, "", "call_2", "apply_patch"), ToolCallDelta(0, arguments),
                     StreamEnd(end)], tools=[CUSTOM])
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" not in kinds
    (done,) = [e for e in events if e["type"] == "response.custom_tool_call_input.done"]
    assert done["input"] == "*** Begin Patch"
    (item,) = events[-1]["response"]["output"]
    assert item["type"] == "custom_tool_call" and item["input"] == "*** Begin Patch"


def test_a_cut_answer_ends_incomplete() -> None:
    events, kept = run([TextDelta("Hel"), StreamEnd(Completion(MODEL, "Hel", "length",
                                                               Usage(3, 5)))])
    assert events[-1]["type"] == "response.incomplete"
    assert kept[0]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_failure_mid_stream_is_an_error_then_response_failed_and_nothing_kept() -> None:
    events, kept = run([TextDelta("Hel")], fail=True)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["error"] == {"code": "upstream_error",
                                               "message": "The model's stream ended early."}
    assert kept == []
