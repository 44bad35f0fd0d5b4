"""OpenAI Responses (``POST /v1/responses``) -> the one ChatRequest (pure).

A body is read in two steps, because ``previous_response_id`` and
``item_reference`` name stored items that only the responses store can fetch:

1. ``parse_responses_body`` checks every field and returns a ``ParsedCall``:
   the new input as items in OpenAI's output shape (the shape they are stored,
   listed and replayed in), and everything else the request asks for.
2. ``chat_request`` turns the whole conversation (stored items, then the new
   ones) into the ChatRequest that ``ChatService`` runs.

Choices OpenAI's API leaves to us (docs/responses.md says the same):

- ``instructions`` become the system turn, joined with leading
  system/developer messages; they are not carried over by
  ``previous_response_id`` (as OpenAI does it).
- ``temperature`` is OpenAI's 0..2, halved onto Llama's 0..1 (as on
  ``/v1/chat/completions``); ``max_output_tokens`` is ``max_tokens``.
- Function tools are flat; ``strict`` defaults to true, as OpenAI's does.
- ``custom`` (freeform) tools are offered as functions of one string
  argument ``input``; their calls come back as ``custom_tool_call`` items.
  A grammar ``format`` is shown to the model in the tool's description.
- Hosted tools (``web_search``, ``file_search``, ``mcp``, ``namespace``...)
  cannot run here: they are not offered, and a ``tool_choice`` that requires
  one is a 400.
- ``reasoning`` items in the input are dropped: these models keep no
  reasoning state. ``reasoning.effort`` is accepted and echoed (the models
  answer as they do); ``reasoning_tokens`` is always 0.
- ``metadata``, ``client_metadata``, ``user``, ``safety_identifier``,
  ``prompt_cache_key``, ``service_tier``, ``include``, ``truncation``,
  ``max_tool_calls`` and ``text.verbosity`` are accepted (the answer does not depend on them).
- Images, files, audio, ``conversation``, ``prompt`` templates and logprobs
  are a 400 naming the field; unknown fields are a 400 in OpenAI's words.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.chat import ChatRequest, Message, Tool, ToolCall, ToolChoice
from chalicelib.config import Settings
from chalicelib.errors import InvalidRequestError, UnsupportedParameterError
from chalicelib.models.registry import check_capabilities, get_model
from chalicelib.models.schemas import canonical
from chalicelib.wire.openai import (TEMPERATURE_SCALE, _merge_leading_system, check_ignored,
                                    check_neutral, reject_unrecognized)
from chalicelib.wire.tool_fields import (MAX_DESCRIPTION_CHARS, MAX_TOOLS, bool_value,
                                         function_tool, response_format_field, string_value)
from chalicelib.wire.validation import (DEFAULT_MAX_TOKENS, DEFAULT_TOP_P, chat_model_field,
                                        check_conversation, int_field, number_field,
                                        reject_unknown, text_field)

HONOURED = ("model", "input", "instructions", "max_output_tokens", "temperature", "top_p",
            "tools", "tool_choice", "parallel_tool_calls", "text", "stream", "stream_options",
            "store", "previous_response_id", "background", "metadata", "reasoning")
IGNORED_EXTRA = {
    "include": ("a list of strings",
                lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "truncation": ("auto or disabled", lambda v: v in ("auto", "disabled")),
    "max_tool_calls": ("a positive integer",
                       lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0),
    # Codex sends its session's ids here; like metadata, it is for the caller.
    "client_metadata": ("an object of strings",
                        lambda v: isinstance(v, dict) and all(isinstance(x, str)
                                                              for x in v.values())),
}
NEUTRAL = {"top_logprobs": (None, 0), "prompt": (None,), "conversation": (None,)}
FIELDS = (*HONOURED, "user", "metadata", "service_tier", "prompt_cache_key", "safety_identifier",
          *IGNORED_EXTRA, *NEUTRAL)
# Tools OpenAI runs itself; nothing here can run them, so they are not offered.
HOSTED_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26",
    "file_search", "code_interpreter", "computer_use_preview", "computer", "image_generation",
    "mcp", "local_shell", "shell", "apply_patch", "namespace", "tool_search"})
EFFORTS = (None, "none", "minimal", "low", "medium", "high", "xhigh")
# A custom tool's one argument: the freeform text the model writes.
CUSTOM_PARAMETERS = canonical({"type": "object", "properties": {"input": {
    "type": "string", "description": "The tool's whole input, as free text."}},
    "required": ["input"]})
INPUT_PART_TYPES = ("input_text", "output_text", "text", "refusal")
MESSAGE_ROLES = ("user", "assistant", "system", "developer")


def new_id(prefix: str) -> str:
    """An id in OpenAI's shape (``resp_``, ``msg_``, ``fc_``... and hex)."""
    return f"{prefix}_{os.urandom(24).hex()}"


@dataclass(frozen=True)
class ParsedCall:
    """A checked Responses body, before its stored history is joined in."""

    model: str
    items: tuple[dict[str, Any], ...]  # the new input, in stored shape
    references: tuple[str, ...]  # ids of item_reference items, in order of appearance
    instructions: str | None
    max_tokens: int
    temperature: float  # Llama's scale
    top_p: float
    tools: tuple[Tool, ...]
    custom_tools: frozenset[str]
    tool_choice: ToolChoice
    parallel_tool_calls: bool
    text_format: Any  # chat.ResponseFormat
    stream: bool
    store: bool
    background: bool
    previous_response_id: str | None
    # What the response object echoes back, as the client sent it.
    echo: dict[str, Any] = field(default_factory=dict)


def _invalid(message: str, where: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=where)


def _unsupported(where: str, what: str) -> UnsupportedParameterError:
    return UnsupportedParameterError(f"'{where}' is not supported by this endpoint: {what}.",
                                     param=where)


def _bool(payload: Mapping[str, Any], name: str, default: bool) -> bool:
    return bool_value(payload.get(name), name, default)


# --- input items -----------------------------------------------------------

def _parts(value: Any, where: str, role: str) -> list[dict[str, Any]]:
    """A message's content as text parts in stored shape (input_text, or
    output_text for the assistant's own)."""
    kind = "output_text" if role == "assistant" else "input_text"
    if isinstance(value, str):
        return [_text_part(kind, string_value(value, where))]
    if not isinstance(value, list):
        raise _invalid(f"'{where}' must be a string or a list of content parts.", where)
    parts = []
    for index, part in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _invalid(f"'{at}' must be a content part object.", at)
        if part["type"] not in INPUT_PART_TYPES:
            raise _unsupported(f"{at}.type", f"content parts of type '{part['type'][:40]}' "
                               "(only input_text and output_text are)")
        key = "refusal" if part["type"] == "refusal" else "text"
        reject_unknown(part, ("type", key, "annotations", "logprobs"), at)
        parts.append(_text_part(kind, string_value(part.get(key), f"{at}.{key}")))
    return parts


def _text_part(kind: str, text: str) -> dict[str, Any]:
    return {"type": kind, "text": text, **({"annotations": []} if kind == "output_text" else {})}


def _output(value: Any, where: str) -> str:
    """A tool result: a string, or text parts joined."""
    if isinstance(value, str):
        return string_value(value, where)
    if isinstance(value, list):
        return "\n".join(p["text"] for p in _parts(value, where, "user"))
    raise _invalid(f"'{where}' must be a string or a list of text parts.", where)


def _item_id(item: Mapping[str, Any], where: str, prefix: str) -> str:
    value = item.get("id")
    if value is None:
        return new_id(prefix)
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise _invalid(f"'{where}.id' must be a string of at most 128 characters.", f"{where}.id")
    return value


def _item(item: Any, where: str) -> dict[str, Any] | None:
    """One input item in stored shape; None for what is dropped (reasoning)."""
    if not isinstance(item, dict):
        raise _invalid(f"'{where}' must be an object.", where)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        reject_unknown(item, ("type", "role", "content", "id", "status"), where)
        role = item.get("role")
        if role not in MESSAGE_ROLES:
            raise _invalid(f"'{where}.role' must be one of {', '.join(MESSAGE_ROLES)}.",
                           f"{where}.role")
        return {"type": "message", "id": _item_id(item, where, "msg"), "status": "completed",
                "role": role, "content": _parts(item.get("content"), f"{where}.content", role)}
    if kind in ("function_call", "custom_tool_call"):
        key = "arguments" if kind == "function_call" else "input"
        reject_unknown(item, ("type", "id", "call_id", "name", key, "status", "namespace"), where)
        return {"type": kind, "id": _item_id(item, where, "fc" if key == "arguments" else "ctc"),
                "call_id": string_value(item.get("call_id"), f"{where}.call_id"),
                "name": string_value(item.get("name"), f"{where}.name"),
                key: string_value(item.get(key), f"{where}.{key}"), "status": "completed"}
    if kind in ("function_call_output", "custom_tool_call_output"):
        reject_unknown(item, ("type", "id", "call_id", "output", "status"), where)
        return {"type": kind, "id": _item_id(item, where, "fco" if kind[0] == "f" else "ctco"),
                "call_id": string_value(item.get("call_id"), f"{where}.call_id"),
                "output": _output(item.get("output"), f"{where}.output"), "status": "completed"}
    if kind == "reasoning":
        return None
    if kind == "item_reference":
        reject_unknown(item, ("type", "id"), where)
        return {"type": "item_reference", "id": string_value(item.get("id"), f"{where}.id")}
    raise _unsupported(f"{where}.type", f"input items of type '{str(kind)[:40]}' (message, "
                       "function_call, function_call_output, custom_tool_call, "
                       "custom_tool_call_output, reasoning and item_reference are)")


def _input(value: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(value, str):
        text_field(value, "input")
        return ({"type": "message", "id": new_id("msg"), "status": "completed", "role": "user",
                 "content": [_text_part("input_text", value)]},)
    if not isinstance(value, list):
        raise _invalid("'input' must be a string or a list of items.", "input")
    items = (_item(item, f"input[{index}]") for index, item in enumerate(value))
    return tuple(item for item in items if item is not None)


# --- tools -----------------------------------------------------------------

def _custom_tool(item: Mapping[str, Any], where: str) -> Tool:
    reject_unknown(item, ("type", "name", "description", "format"), where)
    base = function_tool({"name": item.get("name"), "description": item.get("description")},
                         where)
    described = base.description
    spec = item.get("format")
    if spec is not None:
        if not isinstance(spec, dict) or spec.get("type") not in ("text", "grammar"):
            raise _invalid(f"'{where}.format' must be {{\"type\": \"text\"}} or a grammar.",
                           f"{where}.format")
        if spec["type"] == "grammar":
            reject_unknown(spec, ("type", "syntax", "definition"), f"{where}.format")
            definition = string_value(spec.get("definition"), f"{where}.format.definition")
            syntax = str(spec.get("syntax") or "lark")[:20]
            described = (f"{described}\n\nThe input must follow this {syntax} grammar:\n"
                         f"{definition}")[:MAX_DESCRIPTION_CHARS]
    return Tool(name=base.name, description=described, parameters=CUSTOM_PARAMETERS,
                strict=True)


def _tools(value: Any) -> tuple[tuple[Tool, ...], frozenset[str], frozenset[str]]:
    """(offered tools, custom tool names, hosted tool types dropped)."""
    if value is None:
        return (), frozenset(), frozenset()
    if not isinstance(value, list):
        raise _invalid("'tools' must be a list of tools.", "tools")
    if len(value) > MAX_TOOLS:
        raise _invalid(f"'tools' takes at most {MAX_TOOLS} tools.", "tools")
    tools: list[Tool] = []
    custom: set[str] = set()
    hosted: set[str] = set()
    for index, item in enumerate(value):
        at = f"tools[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise _invalid(f"'{at}' must be a tool object with a 'type'.", at)
        kind = item["type"]
        if kind in HOSTED_TOOLS:
            hosted.add(kind)
            continue
        if kind == "function":
            flat = {k: v for k, v in item.items() if k != "type"}
            flat.setdefault("strict", True)
            tool = function_tool(flat, at)
        elif kind == "custom":
            tool = _custom_tool(item, at)
            custom.add(tool.name)
        else:
            raise _unsupported(f"{at}.type", f"tools of type '{kind[:40]}' (function and custom "
                               "tools are offered; hosted tools are left out)")
        if any(t.name == tool.name for t in tools):
            raise _invalid(f"'{at}' repeats the tool name '{tool.name}': names must be unique.",
                           at)
        tools.append(tool)
    return tuple(tools), frozenset(custom), frozenset(hosted)


def _named(value: Mapping[str, Any], tools: tuple[Tool, ...], where: str) -> str:
    name = value.get("name")
    if not isinstance(name, str) or all(tool.name != name for tool in tools):
        raise _invalid(f"'{where}.name' must name one of the function or custom tools.",
                       f"{where}.name")
    return name


def _tool_choice(value: Any, tools: tuple[Tool, ...],
                 hosted: frozenset[str]) -> tuple[tuple[Tool, ...], ToolChoice]:
    if value is None or value == "auto":
        return tools, ToolChoice("auto")
    if value == "none":
        return tools, ToolChoice("none")
    if value == "required":
        if not tools:
            raise _invalid("'tool_choice' is 'required' but no function or custom tools are "
                           "given.", "tool_choice")
        return tools, ToolChoice("required")
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise _invalid("'tool_choice' must be auto, none, required or a tool object.",
                       "tool_choice")
    kind = value["type"]
    if kind in ("function", "custom"):
        reject_unknown(value, ("type", "name"), "tool_choice")
        return tools, ToolChoice("function", _named(value, tools, "tool_choice"))
    if kind == "allowed_tools":
        reject_unknown(value, ("type", "mode", "tools"), "tool_choice")
        mode = value.get("mode")
        if mode not in ("auto", "required"):
            raise _invalid("'tool_choice.mode' must be auto or required.", "tool_choice.mode")
        listed = value.get("tools")
        if not isinstance(listed, list) or not listed:
            raise _invalid("'tool_choice.tools' must be a non-empty list.", "tool_choice.tools")
        names = set()
        for index, item in enumerate(listed):
            at = f"tool_choice.tools[{index}]"
            if isinstance(item, dict) and item.get("type") in HOSTED_TOOLS:
                continue
            if not isinstance(item, dict) or item.get("type") not in ("function", "custom"):
                raise _invalid(f"'{at}' must be a function or custom tool.", at)
            names.add(_named(item, tools, at))
        if not names and mode == "required":
            raise _unsupported("tool_choice", "it requires a hosted tool, which this endpoint "
                               "cannot run")
        return tuple(t for t in tools if t.name in names), ToolChoice(mode if names else "none")
    if kind in HOSTED_TOOLS or kind.startswith("web_search") or kind in ("mcp",):
        raise _unsupported("tool_choice", f"it requires the hosted tool '{kind[:40]}', which "
                           "this endpoint cannot run")
    raise _invalid("'tool_choice.type' must be function, custom or allowed_tools.",
                   "tool_choice.type")


# --- the other fields ------------------------------------------------------

def _text(value: Any) -> Any:
    if value is None:
        return response_format_field(None, openai=False)
    if not isinstance(value, dict):
        raise _invalid("'text' must be an object.", "text")
    reject_unknown(value, ("format", "verbosity"), "text")
    if value.get("verbosity") not in (None, "low", "medium", "high"):
        raise _invalid("'text.verbosity' must be low, medium or high.", "text.verbosity")
    return response_format_field(value.get("format"), openai=False, where="text.format")


def _reasoning(value: Any) -> dict[str, Any]:
    if value is None:
        return {"effort": None, "summary": None}
    if not isinstance(value, dict):
        raise _invalid("'reasoning' must be an object.", "reasoning")
    reject_unknown(value, ("effort", "summary", "generate_summary"), "reasoning")
    if value.get("effort") not in EFFORTS:
        raise _invalid("'reasoning.effort' must be none, minimal, low, medium, high or xhigh.",
                       "reasoning.effort")
    for name in ("summary", "generate_summary"):
        if value.get(name) not in (None, "auto", "concise", "detailed"):
            raise _invalid(f"'reasoning.{name}' must be auto, concise or detailed.",
                           f"reasoning.{name}")
    return {"effort": value.get("effort"), "summary": value.get("summary")}


def _stream(payload: Mapping[str, Any]) -> bool:
    stream = _bool(payload, "stream", False)
    options = payload.get("stream_options")
    if options is not None:
        if not stream:
            raise _invalid("'stream_options' is only allowed when 'stream' is true.",
                           "stream_options")
        if not isinstance(options, dict):
            raise _invalid("'stream_options' must be an object.", "stream_options")
        reject_unknown(options, ("include_obfuscation",), "stream_options")
    return stream


def _previous(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _invalid("'previous_response_id' must be a response id.", "previous_response_id")
    return value


def parse_responses_body(payload: Mapping[str, Any], settings: Settings) -> ParsedCall:
    reject_unrecognized(payload, FIELDS)
    check_neutral(payload, NEUTRAL)
    check_ignored(payload)
    for name, (kind, fits) in IGNORED_EXTRA.items():
        if payload.get(name) is not None and not fits(payload[name]):
            raise _invalid(f"'{name}' must be {kind}.", name)
    if payload.get("model") is None:
        raise _invalid("'model' is required.", "model")
    model = chat_model_field(payload["model"], settings)
    if payload.get("input") is None:
        raise _invalid("'input' is required: a string or a list of items.", "input")
    items = _input(payload["input"])
    instructions = payload.get("instructions")
    if instructions is not None:
        instructions = string_value(instructions, "instructions")
    limit = get_model(model).max_output_tokens
    max_tokens = int_field(payload, "max_output_tokens", 1, limit, DEFAULT_MAX_TOKENS)
    temperature = number_field(payload, "temperature", 0, 2, 1.0)
    top_p = number_field(payload, "top_p", 0, 1, DEFAULT_TOP_P)
    offered, custom, hosted = _tools(payload.get("tools"))
    tools, choice = _tool_choice(payload.get("tool_choice"), offered, hosted)
    background = _bool(payload, "background", False)
    store = _bool(payload, "store", True)
    if background and payload.get("stream") is True:
        raise _unsupported("background", "a background response is read back with GET, not "
                           "streamed; send one or the other")
    if background and not store:
        raise _invalid("'background' needs 'store': a background response is read back "
                       "later.", "background")
    reasoning = _reasoning(payload.get("reasoning"))
    text = payload.get("text") or {}
    fmt = _text(payload.get("text"))
    echo = {
        "instructions": instructions, "max_output_tokens": payload.get("max_output_tokens"),
        "temperature": temperature, "top_p": payload.get("top_p", 1.0),
        "tool_choice": payload.get("tool_choice", "auto"), "tools": payload.get("tools") or [],
        "parallel_tool_calls": _bool(payload, "parallel_tool_calls", True),
        "metadata": payload.get("metadata") or {}, "reasoning": reasoning,
        "text": {"format": text.get("format") or {"type": "text"},
                 "verbosity": text.get("verbosity", "medium")},
        "truncation": payload.get("truncation") or "disabled",
        "user": payload.get("user"), "store": store, "background": background,
        "service_tier": payload.get("service_tier") or "default",
        "prompt_cache_key": payload.get("prompt_cache_key"),
        "safety_identifier": payload.get("safety_identifier"),
        "max_tool_calls": payload.get("max_tool_calls"),
    }
    return ParsedCall(
        model=model, items=items,
        references=tuple(i["id"] for i in items if i["type"] == "item_reference"),
        instructions=instructions, max_tokens=max_tokens,
        temperature=temperature * TEMPERATURE_SCALE, top_p=top_p, tools=tools,
        custom_tools=custom, tool_choice=choice,
        parallel_tool_calls=echo["parallel_tool_calls"], text_format=fmt,
        stream=_stream(payload), store=store, background=background,
        previous_response_id=_previous(payload.get("previous_response_id")), echo=echo)


# --- items -> messages -----------------------------------------------------

def _call(item: Mapping[str, Any]) -> ToolCall:
    if item["type"] == "custom_tool_call":
        arguments = json.dumps({"input": item["input"]}, ensure_ascii=False)
    else:
        arguments = item["arguments"]
    return ToolCall(id=item["call_id"], name=item["name"], arguments=arguments)


def _joined(item: Mapping[str, Any]) -> str:
    return "\n".join(part["text"] for part in item["content"])


def items_to_messages(items: tuple[Mapping[str, Any], ...]) -> list[Message]:
    """Stored-shape items -> chat turns: calls join the assistant turn before
    them (or make one), their outputs become tool turns."""
    messages: list[Message] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            messages.append(Message(role, _joined(item)))
        elif kind in ("function_call", "custom_tool_call"):
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                messages[-1] = Message("assistant", last.content,
                                       tool_calls=(*last.tool_calls, _call(item)))
            else:
                messages.append(Message("assistant", "", tool_calls=(_call(item),)))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append(Message("tool", item["output"], tool_call_id=item["call_id"]))
    return messages


def check_calls(items: tuple[Mapping[str, Any], ...]) -> None:
    """OpenAI's own refusals, in its terms: an output must answer an earlier
    call, and a call must have its output before the model is asked again."""
    pending: dict[str, str] = {}
    for item in items:
        if item["type"] in ("function_call", "custom_tool_call"):
            pending[item["call_id"]] = item["name"]
        elif item["type"] in ("function_call_output", "custom_tool_call_output"):
            if pending.pop(item["call_id"], None) is None:
                raise _invalid(f"No tool call found for the output with call_id "
                               f"'{item['call_id'][:100]}'.", "input")
    if pending and items[-1]["type"] in ("function_call", "custom_tool_call"):
        call_id = next(iter(pending))
        raise _invalid(f"No tool output found for the call with call_id '{call_id[:100]}'.",
                       "input")


def chat_request(call: ParsedCall, items: tuple[Mapping[str, Any], ...],
                 settings: Settings) -> ChatRequest:
    """The conversation (``items``: history and new input, references
    resolved) as the ChatRequest the one path runs."""
    check_calls(items)
    messages = items_to_messages(items)
    if call.instructions is not None and call.instructions.strip():
        messages.insert(0, Message("system", call.instructions))
    if not any(m.role != "system" for m in messages):
        raise _invalid("'input' must hold at least one message or tool output.", "input")
    messages = _merge_leading_system(messages)
    request = ChatRequest(
        messages=check_conversation(messages, settings),
        guardrail=settings.guardrail, fallbacks=settings.fallbacks.get(call.model, ()), model=call.model,
        max_tokens=call.max_tokens, temperature=call.temperature, top_p=call.top_p,
        tools=call.tools, tool_choice=call.tool_choice,
        parallel_tool_calls=call.parallel_tool_calls, response_format=call.text_format)
    return check_capabilities(request)
