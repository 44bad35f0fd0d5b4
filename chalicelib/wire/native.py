"""The native ``/chat`` shape, both ways (pure): body -> ChatRequest, Completion -> answer.

Native bodies are OpenAI's ideas in a flatter form (see ``tool_fields``):
``prompt`` or ``messages`` (roles system, user, assistant, tool), ``system``,
``tools`` as ``{"name", "description", "parameters", "strict"}``,
``tool_choice`` ``auto``/``none``/``required``/``{"name": ...}``, assistant
``tool_calls`` and answers' ``tool_calls`` as ``{"id", "name", "arguments"}``
with the arguments as a JSON object, and ``response_format``
``{"type": "json_object"}`` or ``{"type": "json_schema", "schema": {...}}``.
The temperature is Llama's own (0..1).
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from chalicelib import jsontext
from chalicelib.chat import ROLES, ChatRequest, Completion, Message, ToolCall
from chalicelib.config import Settings
from chalicelib.errors import InvalidRequestError
from chalicelib.models.registry import check_capabilities, get_model
from chalicelib.wire.tool_fields import (response_format_field, tool_calls_field, tool_choice_field,
                                         tools_field)
from chalicelib.wire.validation import (DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P,
                                        check_conversation, int_field, chat_model_field, number_field,
                                        reject_unknown, stop_field, text_field)

FIELDS = frozenset({"prompt", "messages", "system", "model", "max_tokens", "temperature",
                    "top_p", "stop", "tools", "tool_choice", "parallel_tool_calls",
                    "response_format"})


def _content(item: Mapping[str, Any], role: str, where: str, has_calls: bool) -> str:
    value = item.get("content")
    if role == "tool" or (role == "assistant" and (has_calls or value == "")):
        if value is None:
            if role == "tool":
                raise InvalidRequestError(f"'{where}.content' must be a string.",
                                          param=f"{where}.content")
            return ""
        if not isinstance(value, str):
            raise InvalidRequestError(f"'{where}.content' must be a string.",
                                      param=f"{where}.content")
        return text_field(value, f"{where}.content") if value.strip() else value
    return text_field(value, f"{where}.content")


def _message(item: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequestError(f"'{where}' must be an object.", param=where)
    reject_unknown(item, ("role", "content", "tool_calls", "tool_call_id", "name"), where)
    role = item.get("role")
    if role not in ROLES:
        raise InvalidRequestError(f"'{where}.role' must be one of {', '.join(ROLES)}.",
                                  param=f"{where}.role")
    calls = tool_calls_field(item.get("tool_calls"), openai=False, where=f"{where}.tool_calls")
    if calls and role != "assistant":
        raise InvalidRequestError(f"'{where}.tool_calls' belongs on assistant messages.",
                                  param=f"{where}.tool_calls")
    call_id = item.get("tool_call_id")
    if role == "tool" and not isinstance(call_id, str):
        raise InvalidRequestError(f"'{where}.tool_call_id' is required on tool messages.",
                                  param=f"{where}.tool_call_id")
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequestError(f"'{where}.name' must be a string.", param=f"{where}.name")
    return Message(role, _content(item, role, where, bool(calls)), tool_calls=calls,
                   tool_call_id=call_id if role == "tool" else None, name=name)


def _messages(payload: Mapping[str, Any]) -> list[Message]:
    has_prompt, has_messages = "prompt" in payload, "messages" in payload
    if has_prompt == has_messages:
        raise InvalidRequestError("Send exactly one of 'prompt' or 'messages'.",
                                  param="messages" if has_messages else "prompt")
    if has_prompt:
        messages = [Message("user", text_field(payload["prompt"], "prompt"))]
    else:
        raw = payload["messages"]
        if not isinstance(raw, list):
            raise InvalidRequestError("'messages' must be a list.", param="messages")
        messages = [_message(item, index) for index, item in enumerate(raw)]
    if payload.get("system") is not None:
        if messages and messages[0].role == "system":
            raise InvalidRequestError("Send the system prompt either as 'system' or as a "
                                      "first system message, not both.", param="system")
        messages.insert(0, Message("system", text_field(payload["system"], "system")))
    return messages


def parse_chat_request(payload: Mapping[str, Any], settings: Settings) -> ChatRequest:
    """The native ``/chat`` body -> ChatRequest."""
    reject_unknown(payload, FIELDS)
    messages = _messages(payload)
    model = chat_model_field(payload.get("model"), settings)
    limit = get_model(model).max_output_tokens
    tools = tools_field(payload.get("tools"), openai=False)
    parallel = payload.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise InvalidRequestError("'parallel_tool_calls' must be true or false.",
                                  param="parallel_tool_calls")
    return check_capabilities(ChatRequest(
        messages=check_conversation(messages, settings),
        guardrail=settings.guardrail, fallbacks=settings.fallbacks.get(model, ()),
        model=model,
        max_tokens=int_field(payload, "max_tokens", 1, limit, DEFAULT_MAX_TOKENS),
        temperature=number_field(payload, "temperature", 0, 1, DEFAULT_TEMPERATURE),
        top_p=number_field(payload, "top_p", 0, 1, DEFAULT_TOP_P),
        stop=stop_field(payload.get("stop")),
        tools=tools,
        tool_choice=tool_choice_field(payload.get("tool_choice"), tools, openai=False),
        parallel_tool_calls=parallel,
        response_format=response_format_field(payload.get("response_format"), openai=False),
    ))


def usd(cost: Decimal | None) -> float | None:
    """Dollars as a JSON number, to the micro-cent."""
    return None if cost is None else round(float(cost), 8)


def _call(call: ToolCall) -> dict[str, Any]:
    try:
        arguments: Any = jsontext.loads(call.arguments)
    except ValueError:
        arguments = call.arguments
    return {"id": call.id, "name": call.name, "arguments": arguments}


def render_chat(completion: Completion, request_id: str) -> dict[str, Any]:
    usage = completion.usage
    body: dict[str, Any] = {
        "id": f"chat-{request_id}",
        "model": completion.model,
        "text": completion.text,
        "stop_reason": completion.stop_reason,
        "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                  "total_tokens": usage.total_tokens, "cost_usd": usd(completion.cost_usd)},
    }
    if completion.tool_calls:
        body["tool_calls"] = [_call(call) for call in completion.tool_calls]
    return body
