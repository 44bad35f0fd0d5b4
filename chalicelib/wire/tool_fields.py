"""Request fields for tools and structured output, in both wire shapes (pure).

OpenAI's shape (``/v1/chat/completions``) and the native one (``/chat``) carry
the same things differently:

=================  ==========================================  ===============================
what               OpenAI                                      native /chat
=================  ==========================================  ===============================
a tool             ``{"type": "function", "function": {...}}``  ``{"name", "description", ...}``
forcing one tool   ``{"type": "function", "function":           ``{"name": ...}``
                   {"name": ...}}``
a subset of tools  ``{"type": "allowed_tools", ...}``          (send fewer tools)
a call's args      JSON text (``"arguments": "{...}"``)        a JSON object
a JSON schema      ``{"type": "json_schema", "json_schema":      ``{"type": "json_schema",
                   {"name", "schema", "strict"}}``              "schema", "name", "strict"}``
=================  ==========================================  ===============================

Both end as the same Tool, ToolChoice, ToolCall and ResponseFormat values, and
every error names the field it concerns.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chalicelib.chat import ResponseFormat, Tool, ToolCall, ToolChoice
from chalicelib.errors import InvalidRequestError, UnsupportedParameterError
from chalicelib.models.schemas import canonical, check_schema
from chalicelib.wire.validation import reject_unknown

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_TOOLS = 128
MAX_DESCRIPTION_CHARS = 10_000
EMPTY_PARAMETERS = {"type": "object", "properties": {}}


def _invalid(message: str, where: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=where)


def _string(value: Any, where: str, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _invalid(f"'{where}' must be a string.", where)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(f"'{where}' contains invalid Unicode.", where) from None
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise _invalid(f"'{where}' must match ^[a-zA-Z0-9_-]{{1,64}}$ (letters, digits, _ "
                       "and -, at most 64).", where)
    return value


def _bool(value: Any, where: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"'{where}' must be true or false.", where)
    return value


# The same readers for the Responses shape (wire/responses.py).
string_value = _string
bool_value = _bool


def _parameters(value: Any, where: str) -> str:
    if value is None:
        return canonical(EMPTY_PARAMETERS)
    if not isinstance(value, dict):
        raise _invalid(f"'{where}' must be a JSON Schema object.", where)
    kind = value.get("type", "object")
    if kind != "object" and kind != ["object"]:
        raise _invalid(f"'{where}.type' must be \"object\": a function takes named "
                       "arguments.", f"{where}.type")
    return check_schema(value, where)


def _function(item: Any, where: str) -> Tool:
    if not isinstance(item, dict):
        raise _invalid(f"'{where}' must be an object.", where)
    reject_unknown(item, ("name", "description", "parameters", "strict"), where)
    description = _string(item.get("description"), f"{where}.description", required=False)
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise _invalid(f"'{where}.description' is over {MAX_DESCRIPTION_CHARS} characters.",
                       f"{where}.description")
    return Tool(name=_name(item.get("name"), f"{where}.name"), description=description,
                parameters=_parameters(item.get("parameters"), f"{where}.parameters"),
                strict=_bool(item.get("strict"), f"{where}.strict", False))


def function_tool(item: Any, where: str) -> Tool:
    """One flat function tool (``{"name", "description", "parameters",
    "strict"}``), as the native shape and OpenAI's Responses carry it."""
    return _function(item, where)


def tools_field(value: Any, *, openai: bool, where: str = "tools") -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _invalid(f"'{where}' must be a list of tools.", where)
    if len(value) > MAX_TOOLS:
        raise _invalid(f"'{where}' takes at most {MAX_TOOLS} tools.", where)
    tools: list[Tool] = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise _invalid(f"'{at}' must be an object.", at)
        # The native shape is flat; OpenAI's wrapped form is taken there too.
        if openai or "function" in item:
            if item.get("type") != "function":
                kind = str(item.get("type"))[:40]
                raise UnsupportedParameterError(
                    f"'{at}.type' '{kind}' is not supported: only function tools are.",
                    param=f"{at}.type")
            reject_unknown(item, ("type", "function"), at)
            tool = _function(item.get("function"), f"{at}.function")
        else:
            tool = _function(item, at)
        if any(t.name == tool.name for t in tools):
            raise _invalid(f"'{at}' repeats the tool name '{tool.name}': names must be unique.",
                           at)
        tools.append(tool)
    return tuple(tools)


def tool_choice_field(value: Any, tools: tuple[Tool, ...], *, openai: bool,
                      where: str = "tool_choice") -> ToolChoice:
    if value is None:
        return ToolChoice("auto")
    if value in ("auto", "none", "required"):
        if value == "required" and not tools:
            raise _invalid(f"'{where}' is 'required' but no tools are given.", where)
        return ToolChoice(value)
    if isinstance(value, dict):
        if openai:
            reject_unknown(value, ("type", "function"), where)
            if value.get("type") != "function" or not isinstance(value.get("function"), dict):
                raise _invalid(f"'{where}' must be auto, none, required or "
                               '{"type": "function", "function": {"name": ...}}.', where)
            inner, at = value["function"], f"{where}.function"
        else:
            inner, at = value, where
        reject_unknown(inner, ("name",), at)
        name = _name(inner.get("name"), f"{at}.name")
        if all(tool.name != name for tool in tools):
            raise _invalid(f"'{at}.name' names '{name}', which is not among the tools.",
                           f"{at}.name")
        return ToolChoice("function", name)
    raise _invalid(f"'{where}' must be auto, none, required or a function to call.", where)


def _allowed_name(item: Any, tools: tuple[Tool, ...], where: str) -> str:
    if (not isinstance(item, dict) or item.get("type") != "function"
            or not isinstance(item.get("function"), dict)):
        raise _invalid(f"'{where}' must be {{\"type\": \"function\", \"function\": "
                       "{\"name\": ...}}.", where)
    reject_unknown(item, ("type", "function"), where)
    reject_unknown(item["function"], ("name",), f"{where}.function")
    name = _name(item["function"].get("name"), f"{where}.function.name")
    if all(tool.name != name for tool in tools):
        raise _invalid(f"'{where}.function.name' names '{name}', which is not among the tools.",
                       f"{where}.function.name")
    return name


def openai_tool_choice(value: Any, tools: tuple[Tool, ...],
                       where: str = "tool_choice") -> tuple[tuple[Tool, ...], ToolChoice]:
    """OpenAI's ``tool_choice``, with its ``allowed_tools`` form.

    ``{"type": "allowed_tools", "allowed_tools": {"mode", "tools"}}`` lets a
    client keep one long tool list and allow a subset per request. The model
    here has no prompt cache to keep warm, so the subset is simply what is
    offered (the other tools stay out of the prompt), with mode auto or
    required."""
    if not (isinstance(value, dict) and value.get("type") == "allowed_tools"):
        return tools, tool_choice_field(value, tools, openai=True, where=where)
    reject_unknown(value, ("type", "allowed_tools"), where)
    at = f"{where}.allowed_tools"
    allowed = value.get("allowed_tools")
    if not isinstance(allowed, dict):
        raise _invalid(f"'{at}' must be an object with 'mode' and 'tools'.", at)
    reject_unknown(allowed, ("mode", "tools"), at)
    mode = allowed.get("mode")
    if mode not in ("auto", "required"):
        raise _invalid(f"'{at}.mode' must be auto or required.", f"{at}.mode")
    listed = allowed.get("tools")
    if not isinstance(listed, list) or not listed:
        raise _invalid(f"'{at}.tools' must be a non-empty list of tools.", f"{at}.tools")
    names = {_allowed_name(item, tools, f"{at}.tools[{index}]") for index, item in enumerate(listed)}
    return tuple(tool for tool in tools if tool.name in names), ToolChoice(mode)


def _arguments(value: Any, where: str, openai: bool) -> str:
    if openai:
        return _string(value, where)  # JSON text, replayed as the client sent it
    if not isinstance(value, dict):
        raise _invalid(f"'{where}' must be an object.", where)
    return json.dumps(value, ensure_ascii=False)


def tool_calls_field(value: Any, *, openai: bool, where: str) -> tuple[ToolCall, ...]:
    """The calls an earlier assistant turn made."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _invalid(f"'{where}' must be a list of tool calls.", where)
    calls: list[ToolCall] = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise _invalid(f"'{at}' must be an object.", at)
        if openai:
            reject_unknown(item, ("id", "type", "function"), at)
            if item.get("type", "function") != "function" or not isinstance(
                    item.get("function"), dict):
                raise _invalid(f"'{at}' must be {{\"id\", \"type\": \"function\", "
                               "\"function\": {\"name\", \"arguments\"}}.", at)
            function, fat = item["function"], f"{at}.function"
            reject_unknown(function, ("name", "arguments"), fat)
        else:
            reject_unknown(item, ("id", "name", "arguments"), at)
            function, fat = item, at
        calls.append(ToolCall(id=_string(item.get("id"), f"{at}.id"),
                              name=_string(function.get("name"), f"{fat}.name"),
                              arguments=_arguments(function.get("arguments"),
                                                   f"{fat}.arguments", openai)))
    return tuple(calls)


def response_format_field(value: Any, *, openai: bool,
                          where: str = "response_format") -> ResponseFormat:
    if value is None:
        return ResponseFormat()
    if not isinstance(value, dict):
        raise _invalid(f"'{where}' must be an object.", where)
    kind = value.get("type")
    if kind in ("text", "json_object"):
        reject_unknown(value, ("type",), where)
        return ResponseFormat(kind)
    if kind != "json_schema":
        raise _invalid(f"'{where}.type' must be text, json_object or json_schema.",
                       f"{where}.type")
    if openai:
        reject_unknown(value, ("type", "json_schema"), where)
        spec, at = value.get("json_schema"), f"{where}.json_schema"
        if not isinstance(spec, dict):
            raise _invalid(f"'{at}' must be an object with 'name' and 'schema'.", at)
        reject_unknown(spec, ("name", "description", "schema", "strict"), at)
        name = _name(spec.get("name"), f"{at}.name")
    else:
        spec, at = value, where
        reject_unknown(spec, ("type", "name", "description", "schema", "strict"), where)
        name = _name(spec["name"], f"{at}.name") if spec.get("name") is not None else None
    schema = spec.get("schema")
    if schema is None:
        raise _invalid(f"'{at}.schema' is required: the JSON Schema the answer must fit.",
                       f"{at}.schema")
    return ResponseFormat("json_schema", name=name, schema=check_schema(schema, f"{at}.schema"),
                          strict=_bool(spec.get("strict"), f"{at}.strict", False))


def legacy_functions(payload: Mapping[str, Any]) -> None:
    """``functions``/``function_call`` predate tools: say what to send instead."""
    for field, instead in (("functions", "tools"), ("function_call", "tool_choice")):
        if payload.get(field) not in (None, [], "none", "auto"):
            raise UnsupportedParameterError(
                f"'{field}' is deprecated and not supported: send '{instead}' instead "
                "(see docs/tools.md).", param=field)
