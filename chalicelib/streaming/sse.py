"""Server-sent events framing (pure): ``event:``/``data:`` lines and the
error event clients get when a stream fails after its first byte."""
from __future__ import annotations

import json
from typing import Any


def frame(data: Any, event: str | None = None) -> str:
    """One event. ``data`` is JSON-encoded unless it is already a string."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
           # Tells proxies such as nginx not to buffer the stream.
           "X-Accel-Buffering": "no"}
