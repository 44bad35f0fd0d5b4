"""What client libraries write into prompts, read back so the emulator can answer in kind.

Each is what the library really sends (read from its source and from the prompts that
reached the emulator in the e2e tests):

- a JSON Schema or a JSON example in the messages, or keys named in prose ("respond in
  JSON with `setup` and `punchline` keys"): the shape a ``json_object`` answer takes
  (instructor's JSON mode puts the schema in the system message; LangChain's
  ``json_mode`` sends only what the user wrote);
- dspy's adapters: "Your output fields are: 1. `reasoning` (str) 2. `answer` (int)",
  answered between ``[[ ## field ## ]]`` markers (ChatAdapter, dspy's default) or as
  one JSON object ("Outputs will be a JSON object", JSONAdapter);
- smolagents: a tool's result comes back as a user message "Observation: ...", and
  the task ends with a call to the ``final_answer`` tool; its CodeAgent describes its
  tools as Python ``def`` lines and expects "Thought: ..." and a ``<code>`` block.

Pure and lenient: a prompt that follows none of them reads as "none".
"""
from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devstack.prompt_reading import Tool
from devstack.schema_instances import name_words

_DECODER = json.JSONDecoder()
MAX_OBJECTS = 200  # JSON objects tried per text: bounds the scan of a long prompt


# --- JSON shapes -------------------------------------------------------------

def json_objects(text: str) -> Iterable[dict[str, Any]]:
    """The JSON objects written in ``text``, outermost first, in order."""
    pos, tried = 0, 0
    while tried < MAX_OBJECTS:
        start = text.find("{", pos)
        if start < 0:
            return
        tried += 1
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            pos = start + 1
            continue
        if isinstance(value, dict):
            yield value
        pos = end


def is_schema(value: dict[str, Any]) -> bool:
    return isinstance(value.get("properties"), dict) and (
        value.get("type") in (None, "object") or "required" in value)


def schema_of_example(value: Any) -> dict[str, Any]:
    """A schema every value shaped like ``value`` meets (an example's keys all required)."""
    if isinstance(value, dict):
        return {"type": "object", "required": list(value),
                "properties": {k: schema_of_example(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"type": "array", "minItems": 1 if value else 0,
                "items": schema_of_example(value[0]) if value else {}}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if value is None:
        return {"type": "null"}
    return {"type": "string"}


_KEY_SENTENCE = re.compile(r"[^.!?\n]*\b(?:keys?|fields?|propert(?:y|ies)|attributes?)\b[^.!?\n]*",
                           re.IGNORECASE)
_NAMED_KEY = re.compile(r"[`'\"“]([A-Za-z_][\w-]{0,63})[`'\"”]")


def keys_in_prose(text: str) -> list[str]:
    """Keys a sentence names for the answer: "with `setup` and `punchline` keys"."""
    keys: list[str] = []
    for sentence in _KEY_SENTENCE.findall(text):
        keys += [k for k in _NAMED_KEY.findall(sentence) if k not in keys]
    return keys


def asked_shape(texts: Iterable[str]) -> dict[str, Any] | None:
    """The JSON Schema a JSON answer should meet, from the first text that gives one:
    a schema, else an example object (not a tool definition), else keys named in prose."""
    for text in texts:
        objects = list(json_objects(text))
        for value in objects:
            if is_schema(value):
                return value
        for value in objects:
            if value and value.get("type") != "function":
                return schema_of_example(value)
        keys = keys_in_prose(text)
        if keys:
            return {"type": "object", "required": keys,
                    "properties": {k: {"type": "string"} for k in keys}}
    return None


# --- dspy --------------------------------------------------------------------

@dataclass(frozen=True)
class DspyPrompt:
    outputs: tuple[tuple[str, str], ...]  # (field, Python type as dspy writes it)
    inputs: dict[str, str]  # the input fields' values, from the last user message
    as_json: bool  # JSONAdapter: one JSON object; else ChatAdapter's [[ ## field ## ]] markers


_DSPY_FIELD = re.compile(r"^\d+\. `(\w+)` \((.+?)\)(?::|$)", re.MULTILINE)
_DSPY_MARKER = re.compile(r"\[\[ ## (\w+) ## \]\]")


def read_dspy(system: str, user: str) -> DspyPrompt | None:
    if "Your output fields are:" not in system:
        return None
    section = system.split("Your output fields are:", 1)[1]
    section = section.split("All interactions will be structured", 1)[0]
    outputs = tuple((name, kind.strip()) for name, kind in _DSPY_FIELD.findall(section))
    if not outputs:
        return None
    # The closing instruction names the output markers: it is not part of the inputs.
    given = re.split(r"\n\s*\nRespond with ", user, maxsplit=1)[0]
    parts = _DSPY_MARKER.split(given)
    inputs = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    as_json = "Outputs will be a JSON object" in system or "[[ ## completed ## ]]" not in system
    return DspyPrompt(outputs, inputs, as_json)


def literal_options(kind: str) -> list[str]:
    """The options of ``Literal['a', 'b']``; [] for any other type."""
    if not kind.startswith("Literal["):
        return []
    return [a or b for a, b in re.findall(r"'([^']*)'|\"([^\"]*)\"", kind)]


# --- smolagents ----------------------------------------------------------------

FINAL_NAMES = frozenset({"final_answer", "finalanswer", "final", "finish", "submit_answer",
                         "submit_final_answer", "answer"})


def is_final_tool(tool: Tool) -> bool:
    return tool.name.lower() in FINAL_NAMES or "_".join(name_words(tool.name)) in FINAL_NAMES


def observation(text: str) -> str | None:
    """The result in a user message that reports one ("Observation: ..."), else None.
    A CodeAgent's observation keeps its execution logs, else the last output."""
    stripped = text.strip()
    if not stripped.startswith("Observation:"):
        return None
    body = stripped[len("Observation:"):].strip()
    if "Execution logs:" in body:
        logs, _, last = body.partition("Last output from code snippet:")
        logs = logs.split("Execution logs:", 1)[1].strip()
        last = last.strip()
        return logs or ("" if last == "None" else last)
    return body


@dataclass(frozen=True)
class CodeAgentPrompt:
    tools: tuple[Tool, ...]
    opening: str  # how a code block opens and closes
    closing: str


_CODE_DEF = re.compile(r"^def (\w+)\((.*?)\)\s*->\s*[\w\[\], ]+:\n\s*(?:\"\"\"|''')(.*?)(?:\"\"\"|''')",
                       re.MULTILINE | re.DOTALL)
_PY_TYPES = {"string": "string", "str": "string", "integer": "integer", "int": "integer",
             "number": "number", "float": "number", "boolean": "boolean", "bool": "boolean",
             "array": "array", "list": "array", "object": "object", "dict": "object"}


def read_code_agent(system: str) -> CodeAgentPrompt | None:
    """smolagents' CodeAgent system prompt: its tools as Python functions, its code fences."""
    if "Thought" not in system or "Observation" not in system or "final_answer" not in system:
        return None
    if "<code>" in system and "</code>" in system:
        opening, closing = "<code>\n", "\n</code>"
    elif "```py" in system and "<end_code>" in system:
        opening, closing = "```py\n", "\n```<end_code>"
    else:
        return None
    tools: list[Tool] = []
    for name, args, doc in _CODE_DEF.findall(system):
        properties: dict[str, Any] = {}
        for arg in filter(None, (a.strip() for a in args.split(","))):
            arg_name, _, kind = arg.partition(":")
            kind = kind.split("=")[0].strip().lower()
            properties[arg_name.strip()] = ({"type": _PY_TYPES[kind]} if kind in _PY_TYPES
                                            else {})
        description = doc.strip().split("\n\n")[0]
        tools.append(Tool(name, description, {"type": "object", "properties": properties,
                                              "required": list(properties)}))
    return CodeAgentPrompt(tuple(tools), opening, closing)


# --- arithmetic ------------------------------------------------------------------

_EXPRESSION = re.compile(r"[-(]*\d+(?:\.\d+)?(?:\s*[-+*/×x^]\s*[-(]*\d+(?:\.\d+)?\)*)+")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.Pow: operator.pow}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 16:
            raise ValueError("too large")
        return float(_OPS[type(node.op)](left, right))
    raise ValueError("not arithmetic")


def arithmetic(text: str) -> tuple[str, float] | None:
    """The first small arithmetic expression written in ``text`` and its value."""
    match = _EXPRESSION.search(text)
    if match is None:
        return None
    written = match.group().strip()
    source = written.replace("×", "*").replace("^", "**").replace("x", "*")
    try:
        return written, _evaluate(ast.parse(source, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.6g}"
