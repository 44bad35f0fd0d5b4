"""JSON text from clients and from the model, read within a nesting bound.

Python's json module parses nesting by recursion: a document nested deeper
than the interpreter's recursion limit (about 1,000 levels) raises
RecursionError, not ValueError, and one that parsed a few levels short of it
can still fail later, when it is written back (``json.dumps``) or validated
(jsonschema) from a deeper stack. Such text reaches us in request bodies, in
a tool call's ``arguments`` (JSON text that the client replays) and in the
model's own answers. Everything that reads such text goes through here, so
that too deep is always "not JSON" (ValueError) and never a 500.

``MAX_DEPTH`` is far above anything a real request or answer holds (a tool
schema may nest 32 levels, schemas.MAX_SCHEMA_DEPTH) and far below the limit.
"""
from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 128

_decoder = json.JSONDecoder()


class TooDeepError(ValueError):
    """The text is JSON nested deeper than MAX_DEPTH."""


def depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:  # deep enough to refuse: stop counting
            return deepest
        stack.extend((child, level) for child in children)
    return deepest


def _bounded(value: Any) -> Any:
    if depth(value) > MAX_DEPTH:
        raise TooDeepError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads``, raising ValueError (TooDeepError) for text too deep to handle."""
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raise TooDeepError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    return _bounded(value)


def raw_decode(text: str, index: int) -> tuple[Any, int]:
    """``JSONDecoder.raw_decode`` (one document starting at ``index``), bounded likewise."""
    try:
        value, end = _decoder.raw_decode(text, index)
    except RecursionError:
        raise TooDeepError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    return _bounded(value), end
