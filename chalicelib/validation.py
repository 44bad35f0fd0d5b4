"""Request validation: raw HTTP body -> ChatRequest, each error naming its field.

The readers here are shared by the native ``/chat`` shape and the OpenAI shape,
so both answer the same mistake with the same words.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.chat import ROLES, ChatRequest, Message
from chalicelib.config import Settings
from chalicelib.errors import (InvalidRequestError, ModelNotFoundError, RequestTooLargeError)
from chalicelib.models import get_model

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.5
DEFAULT_TOP_P = 0.9
MAX_STOP_SEQUENCES = 4
NATIVE_FIELDS = frozenset({"prompt", "messages", "system", "model", "max_tokens",
                           "temperature", "top_p", "stop"})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json_object(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, or a 4xx-class error saying what is wrong."""
    if not raw:
        raise InvalidRequestError("The request body is empty: send a JSON object.")
    if len(raw) > max_bytes:
        raise RequestTooLargeError(f"The request body is over {max_bytes} bytes.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("The request body is not valid UTF-8.") from None
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidRequestError("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return payload


def reject_unknown(payload: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        raise InvalidRequestError(f"Unknown field: '{unknown[0]}'.", param=unknown[0])


def _encodable(value: str, name: str) -> str:
    # JSON may carry lone surrogates ("\ud800") that no UTF-8 body can hold.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(f"'{name}' contains invalid Unicode.", param=name) from None
    return value


def text_field(value: Any, name: str) -> str:
    """A non-blank string that can be sent as UTF-8."""
    if not isinstance(value, str):
        raise InvalidRequestError(f"'{name}' must be a string.", param=name)
    if not value.strip():
        raise InvalidRequestError(f"'{name}' must not be empty.", param=name)
    return _encodable(value, name)


def number_field(payload: Mapping[str, Any], name: str, low: float, high: float,
                 default: float) -> float:
    value = payload.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequestError(f"'{name}' must be a number.", param=name)
    if not low <= value <= high:
        raise InvalidRequestError(f"'{name}' must be between {low:g} and {high:g}.", param=name)
    return float(value)


def int_field(payload: Mapping[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = payload.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"'{name}' must be an integer.", param=name)
    if not low <= value <= high:
        raise InvalidRequestError(f"'{name}' must be between {low} and {high}.", param=name)
    return value


def stop_field(value: Any, name: str = "stop") -> tuple[str, ...]:
    """None, one string, or up to four non-empty strings."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise InvalidRequestError(f"'{name}' must be a string or a list of strings.", param=name)
    if len(items) > MAX_STOP_SEQUENCES:
        raise InvalidRequestError(f"'{name}' takes at most {MAX_STOP_SEQUENCES} sequences.",
                                  param=name)
    if any(s == "" for s in items):
        raise InvalidRequestError(f"'{name}' sequences must not be empty.", param=name)
    return tuple(_encodable(s, name) for s in items)


def model_field(value: Any, settings: Settings) -> str:
    if value is None:
        return settings.default_model
    if not isinstance(value, str) or not value:
        raise InvalidRequestError("'model' must be a non-empty string.", param="model")
    if value not in settings.allowed_models:
        raise ModelNotFoundError(
            f"The model '{value[:200]}' does not exist or is not enabled here. "
            f"Available: {', '.join(settings.allowed_models)}.", param="model")
    return value


def check_conversation(messages: list[Message], settings: Settings) -> tuple[Message, ...]:
    """Llama's rules: system first if at all, and the user speaks last."""
    if not messages:
        raise InvalidRequestError("'messages' must not be empty.", param="messages")
    for index, message in enumerate(messages):
        if message.role == "system" and index != 0:
            raise InvalidRequestError("A system message may only come first.",
                                      param=f"messages[{index}].role")
    if messages[-1].role != "user":
        raise InvalidRequestError("The last message must be from the user.",
                                  param=f"messages[{len(messages) - 1}].role")
    size = sum(len(m.content) for m in messages)
    if size > settings.max_prompt_chars:
        raise RequestTooLargeError(
            f"The prompt is {size} characters; the limit is {settings.max_prompt_chars}.")
    return tuple(messages)


def _native_messages(payload: Mapping[str, Any]) -> list[Message]:
    has_prompt, has_messages = "prompt" in payload, "messages" in payload
    if has_prompt == has_messages:
        raise InvalidRequestError("Send exactly one of 'prompt' or 'messages'.",
                                  param="messages" if has_messages else "prompt")
    messages: list[Message] = []
    if has_prompt:
        messages.append(Message("user", text_field(payload["prompt"], "prompt")))
    else:
        raw = payload["messages"]
        if not isinstance(raw, list):
            raise InvalidRequestError("'messages' must be a list.", param="messages")
        for index, item in enumerate(raw):
            where = f"messages[{index}]"
            if not isinstance(item, dict):
                raise InvalidRequestError(f"'{where}' must be an object.", param=where)
            reject_unknown(item, ("role", "content"))
            role = item.get("role")
            if role not in ROLES:
                raise InvalidRequestError(f"'{where}.role' must be one of {', '.join(ROLES)}.",
                                          param=f"{where}.role")
            messages.append(Message(role, text_field(item.get("content"), f"{where}.content")))
    if payload.get("system") is not None:
        if any(m.role == "system" for m in messages):
            raise InvalidRequestError("Send the system prompt either as 'system' or as a "
                                      "system message, not both.", param="system")
        messages.insert(0, Message("system", text_field(payload["system"], "system")))
    return messages


def parse_chat_request(payload: Mapping[str, Any], settings: Settings) -> ChatRequest:
    """The native ``/chat`` body -> ChatRequest."""
    reject_unknown(payload, NATIVE_FIELDS)
    messages = _native_messages(payload)
    model = model_field(payload.get("model"), settings)
    limit = get_model(model).max_output_tokens
    return ChatRequest(
        messages=check_conversation(messages, settings),
        model=model,
        max_tokens=int_field(payload, "max_tokens", 1, limit, DEFAULT_MAX_TOKENS),
        temperature=number_field(payload, "temperature", 0, 1, DEFAULT_TEMPERATURE),
        top_p=number_field(payload, "top_p", 0, 1, DEFAULT_TOP_P),
        stop=stop_field(payload.get("stop")),
    )
