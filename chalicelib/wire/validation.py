"""Request validation: raw HTTP body -> ChatRequest, each error naming its field.

The readers here are shared by the native ``/chat`` shape (``native``) and
the OpenAI shape (``openai``), so both answer the same mistake with the
same words.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib import jsontext
from chalicelib.chat import Message
from chalicelib.config import Settings
from chalicelib.errors import (InvalidRequestError, ModelNotFoundError, RequestTooLargeError)
from chalicelib.models.registry import get_model

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.5
DEFAULT_TOP_P = 0.9
# OpenAI takes up to 4 stop sequences; it documents no length. 128
# characters is far past any real one (the longest in common use are chat
# template tokens of 20 or so), and it bounds what the stream holds back and
# searches for on every chunk (completion.held_back).
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 128


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
        payload = jsontext.loads(text, parse_constant=_reject_constant)
    except jsontext.TooDeepError:
        raise InvalidRequestError(f"The request body nests JSON deeper than {jsontext.MAX_DEPTH} "
                                  "levels.") from None
    except ValueError:
        raise InvalidRequestError("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return payload


def reject_unknown(payload: Mapping[str, Any], allowed: Iterable[str],
                   where: str | None = None) -> None:
    """A 400 naming the first field not in ``allowed``, with its path when
    the object is nested (``messages[1].annotations``)."""
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        name = f"{where}.{unknown[0][:100]}" if where else unknown[0][:100]
        raise InvalidRequestError(f"Unknown field: '{name}'.", param=name)


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
    """None, one string, or up to four non-empty strings of at most
    ``MAX_STOP_CHARS`` characters."""
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
    if any(len(s) > MAX_STOP_CHARS for s in items):
        raise InvalidRequestError(f"'{name}' sequences may be at most {MAX_STOP_CHARS} "
                                  "characters long.", param=name)
    return tuple(_encodable(s, name) for s in items)


def model_field(value: Any, settings: Settings) -> str:
    if value is None:
        if settings.default_model not in settings.allowed_models:  # a key without chat models
            raise ModelNotFoundError("This key may use no chat model here: name one of "
                                     f"{', '.join(settings.allowed_models) or 'none'}.",
                                     param="model")
        return settings.default_model
    if not isinstance(value, str) or not value:
        raise InvalidRequestError("'model' must be a non-empty string.", param="model")
    if value not in settings.allowed_models:
        raise ModelNotFoundError(
            f"The model '{value[:200]}' does not exist or is not enabled here. "
            f"Available: {', '.join(settings.allowed_models)}.", param="model")
    return value


def chat_model_field(value: Any, settings: Settings) -> str:
    """``model_field`` for the chat routes: an embedding model is refused as
    such before anything reads its chat limits (its max_tokens range is empty,
    which would otherwise be the error)."""
    model = model_field(value, settings)
    if get_model(model).kind != "chat":
        raise InvalidRequestError(f"The model '{model}' is an embedding model: use "
                                  "/v1/embeddings.", param="model")
    return model


def check_conversation(messages: list[Message], settings: Settings) -> tuple[Message, ...]:
    """What OpenAI itself refuses, and the prompt size; nothing else.

    System messages may come anywhere, roles may repeat, and a conversation
    may end with an assistant message (the model continues it). A tool result
    must answer a call an earlier assistant turn made, and the last message
    cannot be calls still waiting for their results.
    """
    if not messages:
        raise InvalidRequestError("'messages' must not be empty.", param="messages")
    called: set[str] = set()
    for index, message in enumerate(messages):
        called.update(call.id for call in message.tool_calls)
        if message.role == "tool" and message.tool_call_id not in called:
            raise InvalidRequestError(
                f"'messages[{index}]' is a tool result for '{str(message.tool_call_id)[:100]}', "
                "which no earlier assistant message called: a tool message must answer a "
                "preceding 'tool_calls'.", param=f"messages[{index}].tool_call_id")
    if messages[-1].tool_calls:
        raise InvalidRequestError(
            "The last message makes tool calls: send their results as tool messages first.",
            param=f"messages[{len(messages) - 1}].tool_calls")
    size = sum(len(m.content) + sum(len(c.arguments) for c in m.tool_calls) for m in messages)
    if size > settings.max_prompt_chars:
        raise RequestTooLargeError(
            f"The prompt is {size} characters; the limit is {settings.max_prompt_chars}.")
    return tuple(messages)
