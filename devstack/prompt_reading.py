"""Reading a raw Llama 3.1 prompt back, as the emulator needs it.

The endpoint renders tools and response formats into the prompt as the
contract in FORMAT.md (the lead's ``chalicelib`` prompt format) says; this
module finds them again: the turns, the open assistant turn's prefill, the
tools offered (the sentence that introduces them, then one JSON object each),
the JSON Schema asked for, the json_object instruction, and the tool results
(``ipython`` turns) the model is answering. Pure, and lenient: a prompt in any
other shape reads as "no tools, no schema", never as an error.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"

TOOLS_MARKER = ("Given the following functions, please respond with a JSON for a function call "
                "with its proper arguments that best answers the given prompt.")
SCHEMA_MARKER = "It must be valid against this JSON Schema:\n"
JSON_OBJECT_MARKER = "Respond with a single JSON object and nothing else: no prose, no code fences."

_DECODER = json.JSONDecoder()
_LINE_BRACE = re.compile(r"\n[ \t]*\{")


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class PromptView:
    """What a prompt asks of the model."""

    turns: tuple[Turn, ...] = ()
    # The open assistant turn's text so far; None when the prompt leaves no
    # assistant turn open (then the emulator only writes plain text).
    prefill: str | None = None
    tools: tuple[Tool, ...] = ()
    schema: Any = None
    has_schema: bool = False
    json_object: bool = False
    user_text: str = ""  # the last user message, without the tool definitions
    tool_results: tuple[str, ...] = field(default=())  # the trailing ipython turns

    @property
    def after_tool_result(self) -> bool:
        return bool(self.tool_results)


def split_turns(prompt: str) -> tuple[list[Turn], str | None]:
    """The closed turns, and the open assistant turn's text (None if none is open)."""
    turns: list[Turn] = []
    prefill: str | None = None
    segments = prompt.split(START_HEADER)[1:]
    for index, segment in enumerate(segments):
        role, sep, rest = segment.partition(END_HEADER)
        if not sep:
            continue
        if rest.startswith("\n\n"):
            rest = rest[2:]
        if EOT in rest:
            turns.append(Turn(role.strip(), rest.split(EOT, 1)[0]))
        elif index == len(segments) - 1 and role.strip() == "assistant":
            prefill = rest
    return turns, prefill


def read_tools(content: str) -> tuple[list[Tool], int]:
    """The tools that follow the marker in ``content``, and where they end (-1: no marker)."""
    start = content.find(TOOLS_MARKER)
    if start < 0:
        return [], -1
    tools: list[Tool] = []
    pos = start + len(TOOLS_MARKER)
    # The first tool is the first JSON object at the start of a line that
    # reads as one (the format line's braces are not JSON); a few tries only.
    for attempt, match in enumerate(_LINE_BRACE.finditer(content, pos)):
        if attempt == 4:
            return [], pos
        try:
            first, _ = _DECODER.raw_decode(content, match.end() - 1)
        except (ValueError, RecursionError):
            continue
        if _as_tool(first) is not None:
            pos = match.end() - 1
            break
    else:
        return [], pos
    while pos < len(content) and content[pos] == "{":
        try:
            obj, end = _DECODER.raw_decode(content, pos)
        except (ValueError, RecursionError):
            break
        tool = _as_tool(obj)
        if tool is None:
            break  # the user's own message may start with JSON: tools are over
        tools.append(tool)
        pos = end
        rest = content[pos:]
        stripped = rest.lstrip()
        if not stripped.startswith("{"):
            break
        pos += len(rest) - len(stripped)
    return tools, pos


def _as_tool(obj: Any) -> Tool | None:
    if not isinstance(obj, dict) or obj.get("type") != "function":
        return None
    function = obj.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        return None
    description = function.get("description")
    parameters = function.get("parameters")
    return Tool(function["name"], description if isinstance(description, str) else "",
                parameters if isinstance(parameters, dict) else {})


def read_schema(text: str) -> tuple[bool, Any]:
    """Whether ``text`` asks for a JSON Schema, and the schema."""
    start = text.find(SCHEMA_MARKER)
    if start < 0:
        return False, None
    try:
        schema, _ = _DECODER.raw_decode(text, start + len(SCHEMA_MARKER))
    except (ValueError, RecursionError):
        return False, None
    return True, schema


def read_prompt(prompt: str) -> PromptView:
    turns, prefill = split_turns(prompt)
    systems = [t.content for t in turns if t.role == "system"]
    has_schema, schema = False, None
    for text in systems:
        has_schema, schema = read_schema(text)
        if has_schema:
            break
    tools: list[Tool] = []
    tools_turn, tools_end = -1, -1
    for index, turn in enumerate(turns):
        if turn.role == "user":
            found, end = read_tools(turn.content)
            if end >= 0:
                tools, tools_turn, tools_end = found, index, end
                break
    user_text = ""
    for index in range(len(turns) - 1, -1, -1):
        if turns[index].role == "user":
            content = turns[index].content
            user_text = content[tools_end:] if index == tools_turn else content
            break
    results: list[str] = []
    for turn in reversed(turns):
        if turn.role != "ipython":
            break
        results.insert(0, turn.content)
    return PromptView(turns=tuple(turns), prefill=prefill, tools=tuple(tools), schema=schema,
                      has_schema=has_schema,
                      json_object=any(JSON_OBJECT_MARKER in text for text in systems),
                      user_text=user_text.strip(), tool_results=tuple(results))
