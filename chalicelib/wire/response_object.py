"""Completion -> OpenAI's Responses ``response`` object and output items (pure).

The output is what OpenAI sends: a ``message`` item with one ``output_text``
part (``annotations: []``) when the model wrote text, then a
``function_call`` item (``fc_`` id, the call's ``call_id``, JSON
``arguments``) for each call, or a ``custom_tool_call`` (``input`` text) for
a call of a custom tool. An answer cut by ``max_output_tokens`` (or the
deadline) is ``incomplete`` with ``incomplete_details.reason``
``max_output_tokens``; one a guardrail intervened in, ``incomplete`` with
``content_filter`` (OpenAI's reason for its own filter). ``usage`` names OpenAI's counters (cached tokens: a
response-cache hit, which costs nothing; reasoning tokens: always 0) plus our
``cost_usd``. Item ids come from ``ItemIds`` so that a stream's events and its
final response name the same items.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.chat import Completion, ToolCall
from chalicelib.wire.native import usd
from chalicelib.wire.openai import cached_tokens
from chalicelib.wire.responses import ParsedCall, new_id


class ItemIds:
    """The ids of one response's output items, made on first use."""

    def __init__(self) -> None:
        self.message = new_id("msg")
        self._calls: dict[int, str] = {}

    def call(self, index: int, custom: bool) -> str:
        if index not in self._calls:
            self._calls[index] = new_id("ctc" if custom else "fc")
        return self._calls[index]


def custom_input(call: ToolCall) -> str:
    """A custom tool's freeform input, from the one-argument call the model made."""
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return call.arguments
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return value["input"]
    return call.arguments


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [],
                         "logprobs": []}]}


def call_item(item_id: str, call: ToolCall, custom: bool, status: str) -> dict[str, Any]:
    if custom:
        return {"type": "custom_tool_call", "id": item_id, "call_id": call.id,
                "name": call.name, "input": custom_input(call), "status": status}
    return {"type": "function_call", "id": item_id, "call_id": call.id, "name": call.name,
            "arguments": call.arguments, "status": status}


INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def status_of(completion: Completion) -> str:
    return "incomplete" if completion.stop_reason in INCOMPLETE else "completed"


def incomplete_details(completion: Completion | None) -> dict[str, str] | None:
    """Why an answer is incomplete (None: it is not, or there is none yet)."""
    reason = None if completion is None else INCOMPLETE.get(completion.stop_reason)
    return None if reason is None else {"reason": reason}


def output_items(completion: Completion, custom: frozenset[str], ids: ItemIds) -> list[dict[str, Any]]:
    status = status_of(completion)
    items = []
    if completion.text or not completion.tool_calls:
        items.append(message_item(ids.message, completion.text, status))
    for index, call in enumerate(completion.tool_calls):
        is_custom = call.name in custom
        items.append(call_item(ids.call(index, is_custom), call, is_custom, "completed"))
    return items


def usage_field(completion: Completion) -> dict[str, Any]:
    used = completion.usage
    return {"input_tokens": used.prompt_tokens,
            "input_tokens_details": {"cached_tokens": cached_tokens(completion)},
            "output_tokens": used.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": used.total_tokens, "cost_usd": usd(completion.cost_usd)}


def response_object(call: ParsedCall, response_id: str, created_at: int, status: str, *,
                    output: list[dict[str, Any]] | None = None,
                    usage: dict[str, Any] | None = None,
                    error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole object, in OpenAI's field order; ``output``/``usage`` are
    empty until the answer exists (queued, in progress, failed)."""
    echo = call.echo
    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": status,
        "background": echo["background"],
        "error": dict(error) if error is not None else None,
        "incomplete_details": ({"reason": "max_output_tokens"} if status == "incomplete"
                               else None),
        "instructions": echo["instructions"], "max_output_tokens": echo["max_output_tokens"],
        "max_tool_calls": echo["max_tool_calls"], "model": call.model, "output": output or [],
        "parallel_tool_calls": echo["parallel_tool_calls"],
        "previous_response_id": call.previous_response_id,
        "prompt_cache_key": echo["prompt_cache_key"], "reasoning": echo["reasoning"],
        "safety_identifier": echo["safety_identifier"], "service_tier": echo["service_tier"],
        "store": echo["store"], "temperature": echo["temperature"], "text": echo["text"],
        "tool_choice": echo["tool_choice"], "tools": echo["tools"], "top_logprobs": 0,
        "top_p": echo["top_p"], "truncation": echo["truncation"], "usage": usage,
        "user": echo["user"], "metadata": echo["metadata"],
    }


def answered(response: Mapping[str, Any], completion: Completion, custom: frozenset[str],
             ids: ItemIds | None = None) -> dict[str, Any]:
    """``response`` (queued or in progress) with its answer."""
    status = status_of(completion)
    return {**response, "status": status,
            "incomplete_details": incomplete_details(completion),
            "output": output_items(completion, custom, ids or ItemIds()),
            "usage": usage_field(completion)}


def completed(call: ParsedCall, response_id: str, created_at: int, completion: Completion,
              ids: ItemIds | None = None) -> dict[str, Any]:
    return answered(response_object(call, response_id, created_at, "in_progress"), completion,
                    call.custom_tools, ids)


def error_field(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """A failed response's ``error``: OpenAI's ``{code, message}``."""
    inner = envelope.get("error") or {}
    return {"code": inner.get("code") or "server_error", "message": inner.get("message", "")}


def item_list(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": has_more}
