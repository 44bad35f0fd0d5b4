"""Stream events -> OpenAI ``chat.completion.chunk`` server-sent events (pure).

As OpenAI streams: a first chunk with the assistant role, one chunk per
text or tool-call delta, a last chunk with ``finish_reason`` (``tool_calls``
when the completion made calls), a usage chunk when
``stream_options.include_usage`` asked for one, then ``data: [DONE]``. A
tool call's first delta carries its ``id``, ``type`` and ``name`` with empty
``arguments``; later deltas carry only argument text. A failure after the
first byte is one ``data: {"error": {...}}`` event (the envelope of the
error) and no ``[DONE]``: the official SDKs raise it as ``APIError``.

``render_text_chunks`` is the same for the legacy ``/v1/completions``:
``text_completion`` objects whose one choice carries ``text``, the last one
its ``finish_reason``.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from chalicelib.chat import Completion, StreamEnd, StreamEvent, TextDelta, ToolCallDelta
from chalicelib.errors import ApiError
from chalicelib.wire.openai import usage_field as usage
from chalicelib.streaming.sse import frame

DONE = "data: [DONE]\n\n"


def finish_reason(completion: Completion) -> str:
    return "tool_calls" if completion.tool_calls else completion.stop_reason


def tool_call_deltas(event: ToolCallDelta, started: set[int]) -> list[dict[str, Any]]:
    """The ``delta`` objects for one tool-call event, OpenAI's way."""
    deltas = []
    if event.index not in started:
        started.add(event.index)
        deltas.append({"tool_calls": [{"index": event.index, "id": event.id, "type": "function",
                                       "function": {"name": event.name, "arguments": ""}}]})
    if event.arguments:
        deltas.append({"tool_calls": [{"index": event.index,
                                       "function": {"arguments": event.arguments}}]})
    return deltas


def ending(last_chunk: str, base: dict[str, Any], completion: Completion,
           include_usage: bool) -> Iterator[str]:
    """After the chunk with ``finish_reason``: the usage chunk if asked, then [DONE]."""
    yield last_chunk
    if include_usage:
        yield frame({**base, "choices": [], "usage": usage(completion)})
    yield DONE


def render_chunks(events: Iterable[StreamEvent], completion_id: str, created: int, model: str,
                  include_usage: bool) -> Iterator[str]:
    """Each event's SSE text as soon as the event comes."""
    base: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk",
                            "created": created, "model": model, "system_fingerprint": None}
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return frame({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                           "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": ""})
    started: set[int] = set()
    try:
        for event in events:
            if isinstance(event, TextDelta):
                yield chunk({"content": event.text})
            elif isinstance(event, ToolCallDelta):
                for delta in tool_call_deltas(event, started):
                    yield chunk(delta)
            elif isinstance(event, StreamEnd):
                yield from ending(chunk({}, finish_reason(event.completion)), base,
                                  event.completion, include_usage)
                return
    except ApiError as error:
        yield frame(error.envelope())


def render_text_chunks(events: Iterable[StreamEvent], completion_id: str, created: int,
                       model: str, include_usage: bool) -> Iterator[str]:
    """``/v1/completions``' stream (text only: that route offers no tools)."""
    base: dict[str, Any] = {"id": completion_id, "object": "text_completion",
                            "created": created, "model": model, "system_fingerprint": None}
    if include_usage:
        base["usage"] = None

    def chunk(text: str, finish: str | None = None) -> str:
        return frame({**base, "choices": [{"text": text, "index": 0, "logprobs": None,
                                           "finish_reason": finish}]})

    try:
        for event in events:
            if isinstance(event, TextDelta):
                yield chunk(event.text)
            elif isinstance(event, StreamEnd):
                yield from ending(chunk("", finish_reason(event.completion)), base,
                                  event.completion, include_usage)
                return
    except ApiError as error:
        yield frame(error.envelope())
