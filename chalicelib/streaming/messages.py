"""Stream events -> Anthropic's Messages server-sent events (pure).

As Anthropic streams: ``message_start`` (the message with no content yet),
a ``ping``, then for each content block ``content_block_start``, its
``content_block_delta`` events (``text_delta`` for text, ``input_json_delta``
with ``partial_json`` for a ``tool_use`` block's input) and
``content_block_stop``; then ``message_delta`` with the ``stop_reason`` and
the usage, and ``message_stop``. The input token count is known only at the
end of a Bedrock stream, so ``message_start`` reports 0 and ``message_delta``
carries the whole usage (the anthropic SDK takes ``input_tokens`` from
either). A failure after the first byte is one ``error`` event in
Anthropic's envelope and no ``message_stop``: the SDKs raise it.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from chalicelib.chat import StreamEnd, StreamEvent, TextDelta, ToolCallDelta
from chalicelib.errors import ApiError
from chalicelib.streaming.sse import frame
from chalicelib.wire.messages import error_envelope, stop_reason, usage_field


def _event(name: str, data: dict[str, Any]) -> str:
    return frame({"type": name, **data}, name)


class _Blocks:
    """The open content block, so each is started and stopped once, in order."""

    def __init__(self) -> None:
        self.count = 0
        self.open: tuple[str, int] | None = None  # ("text", -1) or ("tool", call index)

    def start(self, kind: tuple[str, int], block: dict[str, Any]) -> Iterator[str]:
        yield from self.stop()
        self.open = kind
        yield _event("content_block_start", {"index": self.count, "content_block": block})

    def delta(self, delta: dict[str, Any]) -> str:
        return _event("content_block_delta", {"index": self.count, "delta": delta})

    def stop(self) -> Iterator[str]:
        if self.open is not None:
            yield _event("content_block_stop", {"index": self.count})
            self.open = None
            self.count += 1


def render_events(events: Iterable[StreamEvent], message_id: str, model: str,
                  request_id: str) -> Iterator[str]:
    """Each event's SSE text as soon as the event comes."""
    yield _event("message_start", {"message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0}}})
    yield _event("ping", {})
    blocks = _Blocks()
    try:
        for event in events:
            if isinstance(event, TextDelta):
                if blocks.open != ("text", -1):
                    yield from blocks.start(("text", -1), {"type": "text", "text": ""})
                yield blocks.delta({"type": "text_delta", "text": event.text})
            elif isinstance(event, ToolCallDelta):
                if blocks.open != ("tool", event.index):
                    yield from blocks.start(("tool", event.index), {
                        "type": "tool_use", "id": event.id, "name": event.name, "input": {}})
                if event.arguments:
                    yield blocks.delta({"type": "input_json_delta",
                                        "partial_json": event.arguments})
            elif isinstance(event, StreamEnd):
                if blocks.count == 0 and blocks.open is None:  # an empty answer is one text block
                    yield from blocks.start(("text", -1), {"type": "text", "text": ""})
                yield from blocks.stop()
                completion = event.completion
                yield _event("message_delta", {
                    "delta": {"stop_reason": stop_reason(completion),
                              "stop_sequence": completion.stop_sequence},
                    "usage": usage_field(completion)})
                yield _event("message_stop", {})
                return
    except ApiError as error:
        yield frame(error_envelope(error, request_id), "error")
