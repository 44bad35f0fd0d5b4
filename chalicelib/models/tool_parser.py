"""Llama's answer -> tool calls and leftover text (pure).

What Llama 3.1 really emits for a call varies (Meta's own parser says so, and
SPEC.md lists the shapes): bare JSON ``{"name", "parameters"}``, ``"arguments"``
instead of ``"parameters"``, ``{"type": "function", ...}`` or OpenAI's nested
``{"function": {...}}``, a leading ``<|python_tag|>``, several calls separated
by ``;`` or newlines or given as a list, code fences, prose around the call,
and the ``<function=name>{...}</function>`` tag form. All of them are read
here. JSON that names no offered tool, and prose, stay text: only a call to a
tool the request offered is a call. A leading ``<|python_tag|>`` (Llama's mark
that code or a call follows) is never content, even when what follows is no
call to an offered tool (``without_python_tag``).
"""
from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from chalicelib import jsontext

# Special tokens Bedrock may hand back as text around a call.
_TOKENS = re.compile(r"<\|(?:python_tag|eom_id|eot_id)\|>")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)
_FUNCTION_TAG = re.compile(r"<function=([A-Za-z0-9_.-]{1,64})>\s*(.*?)\s*(?:</function>|$)",
                           re.DOTALL)
_SEPARATORS = " \t\r\n;,"
_CALL_KEYS = {"type", "name", "id"}
PYTHON_TAG = "<|python_tag|>"


def without_python_tag(text: str) -> str:
    """``text`` less a leading ``<|python_tag|>`` (and the blanks around it)."""
    head = text.lstrip()
    return head[len(PYTHON_TAG):].lstrip() if head.startswith(PYTHON_TAG) else text


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: Any  # a dict when the model wrote one; else what it wrote


@dataclass(frozen=True)
class ParsedAnswer:
    content: str  # the text that is not a call, stripped ("" when none)
    calls: tuple[ParsedCall, ...] = ()


def _arguments(value: Any) -> Any:
    if isinstance(value, str):  # OpenAI style: arguments as JSON text
        try:
            return jsontext.loads(value)
        except ValueError:
            return value
    return {} if value is None else value


def _one_call(value: Any, names: Collection[str]) -> ParsedCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}}
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or name not in names:
        return None
    for key in ("parameters", "arguments"):
        if key in value:
            return ParsedCall(name, _arguments(value[key]))
    # Some answers flatten the arguments next to the name.
    return ParsedCall(name, {k: v for k, v in value.items() if k not in _CALL_KEYS})


def calls_in(value: Any, names: Collection[str]) -> list[ParsedCall] | None:
    """The calls a decoded JSON value makes, or None when it is not (only) calls."""
    items = value if isinstance(value, list) else [value]
    calls = [_one_call(item, names) for item in items]
    if not calls or any(call is None for call in calls):
        return None
    return calls  # type: ignore[return-value]


def _unfence(text: str, names: Collection[str]) -> str:
    """Drop the fence around a block that holds calls, so only calls remain of it."""
    def inner(match: re.Match[str]) -> str:
        body = match.group(1)
        return body if parse_calls_only(body, names) else match.group(0)
    return _FENCE.sub(inner, text)


def parse_calls_only(text: str, names: Collection[str]) -> bool:
    answer = parse(text, names)
    return bool(answer.calls) and not answer.content


def _function_tags(text: str, names: Collection[str]) -> tuple[str, list[tuple[int, ParsedCall]]]:
    found: list[tuple[int, ParsedCall]] = []

    def take(match: re.Match[str]) -> str:
        name, body = match.group(1), match.group(2)
        if name not in names:
            return match.group(0)
        found.append((match.start(), ParsedCall(name, _arguments(body or "{}"))))
        return "\x00" * (match.end() - match.start())  # keeps offsets, removed below
    return _FUNCTION_TAG.sub(take, text), found


def parse(text: str, names: Collection[str]) -> ParsedAnswer:
    """Split ``text`` into the calls it makes to ``names`` and what else it says."""
    original = without_python_tag(text)
    if not names:
        return ParsedAnswer(original.strip())
    text = _unfence(_TOKENS.sub("", text), names)
    text, tagged = _function_tags(text, names)
    found: list[tuple[int, ParsedCall]] = list(tagged)
    gaps: list[str] = []
    start = index = 0
    while True:
        index = min((i for i in (text.find("{", index), text.find("[", index)) if i >= 0),
                    default=-1)
        if index < 0:
            break
        try:
            value, end = jsontext.raw_decode(text, index)
        except ValueError:
            index += 1
            continue
        calls = calls_in(value, names)
        if calls is not None:
            gaps.append(text[start:index])
            found += [(index, call) for call in calls]
            start = end
        index = end  # JSON that is not a call stays text, inner objects included
    if not found:
        return ParsedAnswer(original.strip())
    gaps.append(text[start:])
    pieces = (g.replace("\x00", "").strip(_SEPARATORS) for g in gaps)
    content = "\n".join(p for p in pieces if p)
    found.sort(key=lambda item: item[0])
    return ParsedAnswer(content.strip(_SEPARATORS), tuple(call for _, call in found))
