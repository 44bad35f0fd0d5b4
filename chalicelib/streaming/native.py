"""Stream events -> the native ``/chat`` server-sent events (pure).

``/chat`` with ``"stream": true`` answers ``text/event-stream``:

- ``event: start``, ``data: {"id", "model"}``: once, first;
- ``event: delta``, ``data: {"text"}``: each piece of text as it comes;
- ``event: tool_call``, ``data: {"index", "id", "name", "arguments": ""}`` for a
  call's first piece, then ``{"index", "arguments"}`` with more argument text;
- ``event: end``, ``data: {"id", "model", "stop_reason", "usage"}``: last, with
  the same ``usage`` object as the plain answer;
- ``event: error``, ``data: {"error": {...}}``: instead of ``end`` when the
  stream fails after it started (the envelope of the error).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from chalicelib.chat import StreamEnd, StreamEvent, TextDelta, ToolCallDelta
from chalicelib.errors import ApiError, InvalidRequestError
from chalicelib.wire.native import render_chat
from chalicelib.streaming.sse import frame


def split_stream_flag(payload: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """``/chat``'s ``stream`` field, and the body without it for validation."""
    body = dict(payload)
    stream = body.pop("stream", None)
    if stream is None:
        return body, False
    if not isinstance(stream, bool):
        raise InvalidRequestError("'stream' must be true or false.", param="stream")
    return body, stream


def render_events(events: Iterable[StreamEvent], request_id: str, model: str) -> Iterator[str]:
    chat_id = f"chat-{request_id}"
    yield frame({"id": chat_id, "model": model}, "start")
    started: set[int] = set()
    try:
        for event in events:
            if isinstance(event, TextDelta):
                yield frame({"text": event.text}, "delta")
            elif isinstance(event, ToolCallDelta):
                if event.index not in started:
                    started.add(event.index)
                    yield frame({"index": event.index, "id": event.id, "name": event.name,
                                 "arguments": ""}, "tool_call")
                if event.arguments:
                    yield frame({"index": event.index, "arguments": event.arguments}, "tool_call")
            elif isinstance(event, StreamEnd):
                answer = render_chat(event.completion, request_id)
                answer.pop("text")
                yield frame(answer, "end")
                return
    except ApiError as error:
        yield frame(error.envelope(), "error")
