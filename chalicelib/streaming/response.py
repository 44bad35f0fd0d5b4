"""A response whose body is sent piece by piece as it is produced.

What the streaming entry point returns: the local server writes it with
chunked transfer encoding, the Lambda Runtime API loop after API Gateway's
metadata prelude. Other routes' answers (Chalice's proxy response dicts)
become one-piece bodies, so one entry point serves both.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StreamedResponse:
    status: int
    headers: dict[str, str]
    body: Iterable[bytes]
    # Headers with several values (Chalice's multiValueHeaders).
    multi_headers: dict[str, list[str]] = field(default_factory=dict)

    def chunks(self) -> Iterator[bytes]:
        """The body's non-empty pieces; closing it closes the body."""
        body = iter(self.body)
        try:
            for piece in body:
                if piece:
                    yield piece
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


def from_proxy(result: Mapping[str, Any]) -> StreamedResponse:
    """A Lambda proxy integration answer (what ``app(event, context)`` returns)."""
    raw = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = raw.encode("utf-8") if isinstance(raw, str) else json.dumps(raw).encode()
    return StreamedResponse(int(result.get("statusCode", 200)),
                            {str(k): str(v) for k, v in (result.get("headers") or {}).items()},
                            [body], dict(result.get("multiValueHeaders") or {}))


def single(status: int, headers: Mapping[str, str], body: bytes) -> StreamedResponse:
    return StreamedResponse(status, dict(headers), [body])
