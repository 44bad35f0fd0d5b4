"""OpenAI chat.completions <-> ChatRequest / Completion (pure translation).

Choices that OpenAI's API leaves to us, documented in docs/openai.md too:

- ``temperature``: OpenAI's range is 0..2 and Llama's 0..1; we halve it, so
  OpenAI's default of 1 lands on Llama's default of 0.5 and 0 stays greedy.
- ``developer`` messages are system messages; leading system/developer
  messages are joined (blank line between) into Llama's one system turn, and
  later ones stay system turns where they are.
- Text parts of a list ``content`` are joined with a newline; an assistant's
  ``refusal`` parts are text too.
- ``name`` on a message is accepted and not shown to the model, and so is an
  assistant's ``annotations`` (output-only citations that the openai SDK's
  ``message.model_dump()`` and OpenAI's own answers carry back in).
- ``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``response_format``
  are honoured (``tool_fields``, ``prompting``, ``answers``); the legacy
  ``functions``/``function_call`` get a 400 naming what to send instead.
- ``user``, ``seed``, ``metadata``, ``store``, ``service_tier``,
  ``prompt_cache_key`` and ``safety_identifier`` are accepted and ignored
  (Bedrock's Llama API has no seed).
- What the backend cannot honour (``n`` > 1, logprobs, images, audio,
  penalties, a reasoning effort, a verbosity) is a 400 saying so; neutral
  values (``n: 1``, ``logprobs: false``, ``reasoning_effort: "none"``,
  ``verbosity: "medium"``...) are accepted.
- Unknown fields are a 400, as OpenAI answers them.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.chat import ChatRequest, Completion, Message, ToolCall
from chalicelib.config import Settings
from chalicelib.errors import InvalidRequestError, UnsupportedParameterError
from chalicelib.models.registry import REGISTRY, check_capabilities, get_model
from chalicelib.wire.native import usd
from chalicelib.wire.tool_fields import (legacy_functions, openai_tool_choice, response_format_field,
                                         tool_calls_field, tools_field)
from chalicelib.wire.validation import (DEFAULT_MAX_TOKENS, DEFAULT_TOP_P, check_conversation,
                                        int_field, chat_model_field, number_field, reject_unknown,
                                        stop_field, text_field)

HONOURED = ("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
            "stop", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls",
            "response_format")
# Accepted and ignored, but only in the type OpenAI takes: a client whose
# ``seed`` is a string has a bug that OpenAI would answer with a 400 too.
IGNORED: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "user": ("a string", lambda v: isinstance(v, str)),
    "seed": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "metadata": ("an object of strings",
                 lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values())),
    "store": ("true or false", lambda v: isinstance(v, bool)),
    "service_tier": ("a string", lambda v: isinstance(v, str)),
    "prompt_cache_key": ("a string", lambda v: isinstance(v, str)),
    "safety_identifier": ("a string", lambda v: isinstance(v, str)),
}
# Field -> the values that ask for nothing this backend lacks.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "frequency_penalty": (None, 0),
    "presence_penalty": (None, 0),
    "logit_bias": (None, {}),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    # "none" asks for no reasoning, which is what these models do; OpenAI's
    # non-reasoning models take verbosity "medium" (their only level) alone.
    "reasoning_effort": (None, "none"),
    "verbosity": (None, "medium"),
    "web_search_options": (None,),
}
FIELDS = (*HONOURED, *IGNORED, *NEUTRAL, "functions", "function_call")
MESSAGE_FIELDS = ("role", "content", "name", "tool_calls", "tool_call_id", "function_call",
                  "refusal", "audio", "annotations")
TEMPERATURE_SCALE = 0.5  # OpenAI 0..2 -> Llama 0..1


@dataclass(frozen=True)
class StreamOptions:
    stream: bool
    include_usage: bool


def _unsupported(field: str, what: str) -> UnsupportedParameterError:
    return UnsupportedParameterError(f"'{field}' is not supported by this endpoint: {what}.",
                                     param=field)


def _same(value: Any, neutral: Any) -> bool:
    """JSON equality: Python's ``True == 1`` and ``False == 0`` would let
    ``n: true`` or ``frequency_penalty: false`` through as neutral values."""
    return value == neutral and isinstance(value, bool) == isinstance(neutral, bool)


def check_ignored(payload: Mapping[str, Any]) -> None:
    """A 400 for a field accepted and ignored but sent in a type OpenAI refuses."""
    for field, (kind, fits) in IGNORED.items():
        if payload.get(field) is not None and not fits(payload[field]):
            raise InvalidRequestError(f"'{field}' must be {kind}.", param=field)


def check_neutral(payload: Mapping[str, Any],
                  table: Mapping[str, tuple[Any, ...]] = NEUTRAL) -> None:
    """A 400 for each field asking for what the backend lacks (a value not in ``table``)."""
    for field, neutral in table.items():
        if field in payload and not any(_same(payload[field], n) for n in neutral):
            raise _unsupported(field, "Llama on Bedrock cannot honour it; "
                               f"leave it out or use {json.dumps(neutral[-1])}")


def _text(value: Any, name: str, may_be_empty: bool) -> str:
    if may_be_empty and isinstance(value, str) and not value.strip():
        return value
    return text_field(value, name)


def _content(value: Any, where: str, may_be_empty: bool = False) -> str:
    """A string or text parts; tool results and assistant turns may be empty."""
    if isinstance(value, str):
        return _text(value, f"{where}.content", may_be_empty)
    if isinstance(value, list) and (value or may_be_empty):
        texts = []
        for index, part in enumerate(value):
            part_where = f"{where}.content[{index}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise InvalidRequestError(f"'{part_where}' must be a content part object.",
                                          param=part_where)
            kind = part["type"]
            if kind not in ("text", "refusal"):
                raise _unsupported(part_where, f"content parts of type '{kind[:40]}' "
                                   "(only text is supported)")
            reject_unknown(part, ("type", kind), part_where)
            texts.append(_text(part.get(kind), f"{part_where}.{kind}", may_be_empty))
        return "\n".join(texts)
    raise InvalidRequestError(f"'{where}.content' must be a string or a list of text parts.",
                              param=f"{where}.content")


def _message(item: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequestError(f"'{where}' must be an object.", param=where)
    reject_unknown(item, MESSAGE_FIELDS, where)
    role = item.get("role")
    if role == "function":
        raise _unsupported(f"{where}.role", "function messages are the legacy form of tool "
                           "results; send role 'tool' with a 'tool_call_id'")
    if role not in ("system", "developer", "user", "assistant", "tool"):
        raise InvalidRequestError(f"'{where}.role' must be one of system, developer, user, "
                                  "assistant, tool.", param=f"{where}.role")
    if item.get("function_call") is not None:
        raise _unsupported(f"{where}.function_call", "the legacy form of 'tool_calls'; send "
                           "'tool_calls' instead")
    if item.get("audio") is not None:
        raise _unsupported(f"{where}.audio", "audio")
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequestError(f"'{where}.name' must be a string.", param=f"{where}.name")
    calls = tool_calls_field(item.get("tool_calls"), openai=True, where=f"{where}.tool_calls")
    if calls and role != "assistant":
        raise InvalidRequestError(f"'{where}.tool_calls' belongs on assistant messages.",
                                  param=f"{where}.tool_calls")
    if role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str):
            raise InvalidRequestError(f"'{where}.tool_call_id' is required on tool messages.",
                                      param=f"{where}.tool_call_id")
        return Message("tool", _content(item.get("content"), where, may_be_empty=True),
                       tool_call_id=call_id, name=name)
    if role == "assistant":
        content = item.get("content")
        if content is None and not calls:
            raise InvalidRequestError(f"'{where}.content' is required unless 'tool_calls' is "
                                      "given.", param=f"{where}.content")
        text = "" if content is None else _content(content, where, may_be_empty=True)
        return Message("assistant", text, tool_calls=calls, name=name)
    return Message("system" if role == "developer" else role, _content(item.get("content"), where),
                   name=name)


def _merge_leading_system(messages: list[Message]) -> list[Message]:
    leading = 0
    while leading < len(messages) and messages[leading].role == "system":
        leading += 1
    if leading <= 1:
        return messages
    merged = Message("system", "\n\n".join(m.content.strip() for m in messages[:leading]))
    return [merged, *messages[leading:]]


def stream_options(payload: Mapping[str, Any]) -> StreamOptions:
    stream = payload.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequestError("'stream' must be true or false.", param="stream")
    options = payload.get("stream_options")
    if options is None:
        return StreamOptions(stream, False)
    if not stream:
        raise InvalidRequestError("'stream_options' is only allowed when 'stream' is true.",
                                  param="stream_options")
    if not isinstance(options, dict):
        raise InvalidRequestError("'stream_options' must be an object.", param="stream_options")
    reject_unknown(options, ("include_usage", "include_obfuscation"), "stream_options")
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise InvalidRequestError("'stream_options.include_usage' must be true or false.",
                                  param="stream_options.include_usage")
    return StreamOptions(stream, include)


def reject_unrecognized(payload: Mapping[str, Any], fields: Iterable[str]) -> None:
    """A top-level field OpenAI's API does not have: a 400 in OpenAI's own words."""
    unknown = sorted(set(payload) - set(fields))
    if unknown:
        raise InvalidRequestError(f"Unrecognized request argument supplied: {unknown[0][:100]}",
                                  param=unknown[0][:100])


def parse_openai_request(payload: Mapping[str, Any],
                         settings: Settings) -> tuple[ChatRequest, StreamOptions]:
    reject_unrecognized(payload, FIELDS)
    check_neutral(payload)
    check_ignored(payload)
    legacy_functions(payload)
    if payload.get("model") is None:
        raise InvalidRequestError("'model' is required.", param="model")
    model = chat_model_field(payload["model"], settings)
    raw = payload.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequestError("'messages' must be a non-empty list.", param="messages")
    messages = _merge_leading_system([_message(item, i) for i, item in enumerate(raw)])
    limit = get_model(model).max_output_tokens
    max_tokens = int_field(payload, "max_completion_tokens", 1, limit,
                           int_field(payload, "max_tokens", 1, limit, DEFAULT_MAX_TOKENS))
    temperature = number_field(payload, "temperature", 0, 2, 1.0) * TEMPERATURE_SCALE
    tools, tool_choice = openai_tool_choice(payload.get("tool_choice"),
                                            tools_field(payload.get("tools"), openai=True))
    parallel = payload.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequestError("'parallel_tool_calls' must be true or false.",
                                  param="parallel_tool_calls")
    request = ChatRequest(
        messages=check_conversation(messages, settings),
        guardrail=settings.guardrail, fallbacks=settings.fallbacks.get(model, ()),
        model=model, max_tokens=max_tokens,
        temperature=temperature, top_p=number_field(payload, "top_p", 0, 1, DEFAULT_TOP_P),
        stop=stop_field(payload.get("stop")), tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel is not False,
        response_format=response_format_field(payload.get("response_format"), openai=True))
    return check_capabilities(request), stream_options(payload)


def cached_tokens(completion: Completion) -> int:
    """The prompt tokens that were not processed afresh: all of them on a
    response-cache hit (which costs nothing), else the prefix Bedrock read from
    its prompt cache."""
    usage = completion.usage
    return usage.prompt_tokens if completion.cached else usage.cache_read_tokens


def usage_field(completion: Completion) -> dict[str, Any]:
    """OpenAI's ``usage``: ``prompt_tokens`` counts the whole prompt, cached
    part included, and ``prompt_tokens_details.cached_tokens`` says how much of
    it was cached, as OpenAI reports it; ``cost_usd`` is ours."""
    usage = completion.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens(completion)},
            "cost_usd": usd(completion.cost_usd)}


def render_tool_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments}}


def render_completion(completion: Completion, completion_id: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text, "refusal": None}
    if completion.tool_calls:
        # OpenAI: content is null when the answer is only calls.
        message["content"] = completion.text or None
        message["tool_calls"] = [render_tool_call(call) for call in completion.tool_calls]
    return {
        "id": completion_id, "object": "chat.completion", "created": created,
        "model": completion.model, "system_fingerprint": None,
        "choices": [{"index": 0, "logprobs": None, "finish_reason": completion.stop_reason,
                     "message": message}],
        "usage": usage_field(completion),
    }


def render_model(model_id: str) -> dict[str, Any]:
    spec = REGISTRY[model_id]
    # "kind" (chat | embedding) is this endpoint's addition, as vLLM and LM Studio add
    # theirs: OpenAI's clients ignore unknown fields, and the playground lists chat models only.
    return {"id": spec.id, "object": "model", "created": spec.released, "owned_by": spec.owned_by,
            "kind": spec.kind}


def render_models(settings: Settings) -> dict[str, Any]:
    return {"object": "list", "data": [render_model(m) for m in settings.allowed_models]}
