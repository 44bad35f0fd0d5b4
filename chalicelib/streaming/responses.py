"""Stream events -> OpenAI Responses server-sent events (pure but for ``on_done``).

Each event is ``event: <type>`` with ``data`` carrying the same ``type`` and a
``sequence_number`` that rises from 0, in OpenAI's order:
``response.created``, ``response.in_progress``; for text
``response.output_item.added`` (a message), ``response.content_part.added``,
``response.output_text.delta``..., ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done``; for a call
``response.output_item.added`` (a function_call with empty arguments),
``response.function_call_arguments.delta``..., ``.done``,
``response.output_item.done`` (a custom tool's input comes as one
``response.custom_tool_call_input.delta`` once the call is read whole); and
last ``response.completed`` or ``response.incomplete`` with the whole
response, whose output items carry the ids the stream used. A failure after
the first byte is an ``error`` event then ``response.failed``.

``on_done`` is given the final response object before its last event is
sent (the caller stores it), so a client that reads ``response.completed``
can continue from it at once.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from chalicelib.chat import StreamEnd, StreamEvent, TextDelta, ToolCall, ToolCallDelta
from chalicelib.errors import ApiError
from chalicelib.streaming.sse import frame
from chalicelib.wire.response_object import (ItemIds, call_item, completed, error_field,
                                             message_item, response_object)
from chalicelib.wire.responses import ParsedCall


class _Sequence:
    def __init__(self) -> None:
        self.number = 0

    def event(self, kind: str, **data: Any) -> str:
        text = frame({"type": kind, "sequence_number": self.number, **data}, event=kind)
        self.number += 1
        return text


def render_response_events(events: Iterable[StreamEvent], call: ParsedCall, response_id: str,
                           created_at: int,
                           on_done: Callable[[dict[str, Any]], None]) -> Iterator[str]:
    seq = _Sequence()
    ids = ItemIds()
    start = response_object(call, response_id, created_at, "in_progress")
    yield seq.event("response.created", response=start)
    yield seq.event("response.in_progress", response=start)
    index = 0  # the output index of the item now open
    text: list[str] | None = None  # the open message's text, while one is open
    calls: dict[int, dict[str, Any]] = {}  # the open calls by the model's index

    def open_message() -> Iterator[str]:
        yield seq.event("response.output_item.added", output_index=index,
                        item={**message_item(ids.message, "", "in_progress"), "content": []})
        yield seq.event("response.content_part.added", item_id=ids.message, output_index=index,
                        content_index=0, part={"type": "output_text", "text": "",
                                               "annotations": [], "logprobs": []})

    def close_message() -> Iterator[str]:
        nonlocal index, text
        if text is None:
            return
        joined = "".join(text)
        part = {"type": "output_text", "text": joined, "annotations": [], "logprobs": []}
        where = {"item_id": ids.message, "output_index": index, "content_index": 0}
        yield seq.event("response.output_text.done", **where, text=joined, logprobs=[])
        yield seq.event("response.content_part.done", **where, part=part)
        yield seq.event("response.output_item.done", output_index=index,
                        item=message_item(ids.message, joined, "completed"))
        text, index = None, index + 1

    def close_calls() -> Iterator[str]:
        nonlocal index
        for slot in calls.values():
            tool_call = ToolCall(slot["call_id"], slot["name"], "".join(slot["arguments"]))
            custom = slot["name"] in call.custom_tools
            item = call_item(slot["id"], tool_call, custom, "completed")
            if custom:
                yield seq.event("response.custom_tool_call_input.delta", item_id=slot["id"],
                                output_index=slot["output_index"], delta=item["input"])
                yield seq.event("response.custom_tool_call_input.done", item_id=slot["id"],
                                output_index=slot["output_index"], input=item["input"])
            else:
                yield seq.event("response.function_call_arguments.done", item_id=slot["id"],
                                output_index=slot["output_index"], name=slot["name"],
                                arguments=item["arguments"])
            yield seq.event("response.output_item.done", output_index=slot["output_index"],
                            item=item)
            index = slot["output_index"] + 1
        calls.clear()

    try:
        for event in events:
            if isinstance(event, TextDelta):
                if text is None:
                    yield from open_message()
                    text = []
                text.append(event.text)
                yield seq.event("response.output_text.delta", item_id=ids.message,
                                output_index=index, content_index=0, delta=event.text,
                                logprobs=[])
            elif isinstance(event, ToolCallDelta):
                yield from close_message()
                slot = calls.get(event.index)
                if slot is None:
                    custom = (event.name or "") in call.custom_tools
                    slot = calls[event.index] = {
                        "id": ids.call(event.index, custom), "call_id": event.id or "",
                        "name": event.name or "", "arguments": [],
                        "output_index": index + len(calls)}
                    added = call_item(slot["id"], ToolCall(slot["call_id"], slot["name"], ""),
                                      custom, "in_progress")
                    yield seq.event("response.output_item.added",
                                    output_index=slot["output_index"], item=added)
                if event.arguments:
                    slot["arguments"].append(event.arguments)
                    if slot["name"] not in call.custom_tools:
                        yield seq.event("response.function_call_arguments.delta",
                                        item_id=slot["id"], output_index=slot["output_index"],
                                        delta=event.arguments)
            elif isinstance(event, StreamEnd):
                completion = event.completion
                if text is None and not calls and not completion.tool_calls:
                    yield from open_message()  # an empty answer is still one (empty) message
                    text = []
                yield from close_message()
                yield from close_calls()
                final = completed(call, response_id, created_at, completion, ids)
                on_done(final)
                kind = ("response.incomplete" if final["status"] == "incomplete"
                        else "response.completed")
                yield seq.event(kind, response=final)
                return
    except ApiError as error:
        envelope = error.envelope()["error"]
        yield seq.event("error", code=envelope["code"], message=envelope["message"],
                        param=envelope["param"])
        failed = response_object(call, response_id, created_at, "failed",
                                 error=error_field(error.envelope()))
        yield seq.event("response.failed", response=failed)
