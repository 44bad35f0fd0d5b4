"""Anthropic's Messages API (``POST /v1/messages``) <-> ChatRequest / Completion (pure).

The body becomes the one ChatRequest every route runs; the Completion comes
back as an Anthropic ``message``. Choices Anthropic's API leaves to us:

- ``system`` (a string or text blocks, joined with a newline) is the
  conversation's first system message; a ``system`` message among the
  others (today's API has them; Claude Code sends them) stays where it is.
- A user turn's ``tool_result`` blocks become tool results (``is_error``
  marks the result's text ``Error: …``, which every model reads alike), its text
  blocks one user message; an assistant turn's text is its content and its
  ``tool_use`` blocks its calls (the ``input`` object as JSON text).
- ``thinking`` / ``redacted_thinking`` blocks of earlier assistant turns are
  accepted and not shown to the model, as Anthropic itself drops them when
  thinking is not enabled. ``thinking: {"type": "enabled", "budget_tokens"}``
  (or ``adaptive``) is a budget the model may spend, not one it must: it is
  checked, and the model answers without thinking (extended thinking is not
  passed to Bedrock yet), so ``context_management`` edits that clear
  thinking are already done and accepted; other edits are a 400.
- ``max_tokens`` above the model's maximum output is served at that maximum
  (Claude Code asks 32,000 of every model; Llama writes at most 2,048), and an
  answer cut there says ``max_tokens``.
- Tools with ``defer_loading: true`` are not shown to the model: the client's
  own tool search loads them (Claude Code's ``ToolSearch``).
  ``eager_input_streaming`` is accepted: a call's input streams as
  ``input_json_delta`` pieces as it comes either way.
- ``image`` and ``document`` blocks are a 400: no served model gets them
  through this endpoint yet.
- ``tool_choice`` ``auto``/``any``/``tool``/``none`` are OpenAI's
  ``auto``/``required``/the named function/``none``;
  ``disable_parallel_tool_use`` keeps only the first call.
- ``temperature`` is 0..1 on both sides (Anthropic's default 1.0; today's
  anthropic SDK no longer sends it, older clients do); ``top_k`` is a 400
  (Bedrock's Llama body has none, and it is not passed to Converse models
  yet); ``metadata.user_id``, ``service_tier``, ``diagnostics``,
  ``user_profile_id`` and ``workspace_id`` are checked and ignored;
  ``speed`` only as ``standard`` and ``inference_geo`` not at all (the
  stage's region and profile decide where a model runs).
- ``output_config.format`` (``json_schema``) is the response format every
  model is held to (checked, one repair), as OpenAI's ``json_schema`` is;
  ``output_config.effort`` only as ``high``, Anthropic's default.
- Server tools (``web_search_…``, ``bash_…``, ``code_execution_…``…), which
  only Anthropic's own service runs, are a 400 naming them; so are
  ``mcp_servers`` and ``container``.
- ``cache_control`` is accepted on every block that takes it and at the top
  level, and is not yet sent to Bedrock (usage reports no cache writes or reads).
- Unknown fields are a 400, as Anthropic answers them.

Errors use Anthropic's envelope, ``{"type": "error", "error": {"type",
"message"}, "request_id"}``: ``error_type`` maps each domain error to
Anthropic's error type (app.py maps it to the status).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import errors
from chalicelib.chat import ChatRequest, Completion, Message, ResponseFormat, ToolCall, ToolChoice
from chalicelib.config import Settings
from chalicelib.errors import InvalidRequestError, UnsupportedParameterError
from chalicelib.models.registry import check_capabilities, get_model
from chalicelib.wire.native import usd
from chalicelib.wire.tool_fields import NAME, response_format_field, tools_field
from chalicelib.wire.validation import (DEFAULT_TOP_P, check_conversation, chat_model_field,
                                        int_field, number_field, reject_unknown, stop_field,
                                        text_field)

FIELDS = ("model", "max_tokens", "messages", "system", "tools", "tool_choice", "stop_sequences",
          "temperature", "top_p", "top_k", "metadata", "stream", "thinking", "service_tier",
          "mcp_servers", "container", "context_management", "cache_control", "output_config",
          "inference_geo", "speed", "diagnostics", "user_profile_id", "workspace_id")
# Accepted and ignored, in the type Anthropic takes.
IGNORED_STRINGS = ("user_profile_id", "workspace_id")
# Anthropic's service runs these; nothing here can.
UNSUPPORTED_FIELDS = ("mcp_servers", "container")
DEFAULT_TEMPERATURE = 1.0  # Anthropic's
CACHE_CONTROL = "cache_control"
MAX_TOOL_DESCRIPTION_CHARS = 100_000
MAX_CACHE_POINTS = 4  # Anthropic's and Bedrock's limit a request
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "refusal"}
# Domain error -> Anthropic's error type; the first class of an error's MRO
# found here wins, so subclasses follow their family.
ERROR_TYPES: dict[type[errors.ApiError], str] = {
    errors.InvalidRequestError: "invalid_request_error",
    errors.RequestTooLargeError: "request_too_large",
    errors.UnsupportedMediaTypeError: "invalid_request_error",
    errors.MethodNotAllowedError: "invalid_request_error",
    errors.ModelNotFoundError: "not_found_error",
    errors.NotFoundError: "not_found_error",
    errors.AuthenticationError: "authentication_error",
    errors.PermissionDeniedError: "permission_error",
    errors.UpstreamThrottledError: "rate_limit_error",
    errors.RateLimitExceededError: "rate_limit_error",
    errors.UpstreamTimeoutError: "timeout_error",
    errors.UpstreamUnavailableError: "overloaded_error",
    errors.LimiterUnavailableError: "overloaded_error",
    errors.QueueUnavailableError: "overloaded_error",
    errors.AuthUnavailableError: "overloaded_error",
    errors.ApiError: "api_error",
}


@dataclass(frozen=True)
class MessagesOptions:
    stream: bool


def error_type(error: errors.ApiError) -> str:
    for cls in type(error).__mro__:
        if cls in ERROR_TYPES:
            return ERROR_TYPES[cls]
    return "api_error"


def error_envelope(error: errors.ApiError, request_id: str) -> dict[str, Any]:
    """Anthropic's error body (the SDKs read ``error.type`` and ``error.message``)."""
    return {"type": "error", "error": {"type": error_type(error), "message": error.message},
            "request_id": request_id or None}


def _invalid(message: str, where: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=where)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"'{where}' must be an object.", where)
    return value


def _cache_control(block: Mapping[str, Any], where: str) -> None:
    value = block.get(CACHE_CONTROL)
    if value is None:
        return
    at = f"{where}.{CACHE_CONTROL}" if where else CACHE_CONTROL
    reject_unknown(_object(value, at), ("type", "ttl"), at)
    if value.get("type") != "ephemeral":
        raise _invalid(f"'{at}.type' must be \"ephemeral\".", f"{at}.type")
    if value.get("ttl") not in (None, "5m", "1h"):
        raise _invalid(f"'{at}.ttl' must be \"5m\" or \"1h\".", f"{at}.ttl")


def _block(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    block = _object(value, where)
    kind = block.get("type")
    if not isinstance(kind, str):
        raise _invalid(f"'{where}.type' is required.", f"{where}.type")
    if kind in ("image", "document", "search_result"):
        raise UnsupportedParameterError(
            f"'{where}' is a {kind} block: this endpoint serves text, tool and thinking "
            "blocks only.", param=f"{where}.type")
    if kind not in allowed:
        raise _invalid(f"'{where}.type' '{kind[:60]}' is not allowed here: expected one of "
                       f"{', '.join(allowed)}.", f"{where}.type")
    _cache_control(block, where)
    return block


def _text_block(block: Mapping[str, Any], where: str) -> str:
    reject_unknown(block, ("type", "text", CACHE_CONTROL, "citations"), where)
    return text_field(block.get("text"), f"{where}.text")


def _marked(block: Mapping[str, Any]) -> bool:
    return block.get(CACHE_CONTROL) is not None


def _system_messages(value: Any, where: str = "system") -> list[Message]:
    """System text as messages: one for each run of blocks that ends at a
    cache mark (a cache point after it), one for the rest; joined with a
    newline within each. ``_cache_points`` joins them again for a model
    that does not cache."""
    if value is None:
        return []
    if isinstance(value, str):
        return [Message("system", value)] if value.strip() else []
    if not isinstance(value, list):
        raise _invalid(f"'{where}' must be a string or a list of text blocks.", where)
    messages: list[Message] = []
    texts: list[str] = []
    for i, item in enumerate(value):
        block = _block(item, f"{where}[{i}]", ("text",))
        texts.append(_text_block(block, f"{where}[{i}]"))
        if _marked(block):
            messages.append(Message("system", "\n".join(texts), cache_point=True))
            texts = []
    if texts:
        messages.append(Message("system", "\n".join(texts)))
    return messages


def _result_content(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _invalid(f"'{where}' must be a string or a list of text blocks.", where)
    return "\n".join(_text_block(_block(item, f"{where}[{i}]", ("text",)), f"{where}[{i}]")
                     for i, item in enumerate(value))


def _tool_result(block: Mapping[str, Any], where: str) -> Message:
    reject_unknown(block, ("type", "tool_use_id", "content", "is_error", CACHE_CONTROL), where)
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"'{where}.tool_use_id' must be a non-empty string.", f"{where}.tool_use_id")
    is_error = block.get("is_error", False)
    if not isinstance(is_error, bool):
        raise _invalid(f"'{where}.is_error' must be true or false.", f"{where}.is_error")
    content = _result_content(block.get("content"), f"{where}.content")
    # Marked in the text, which every model reads alike (Llama's ipython turn
    # has no error flag).
    return Message("tool", f"Error: {content}" if is_error else content, tool_call_id=call_id)


def _tool_use(block: Mapping[str, Any], where: str) -> ToolCall:
    reject_unknown(block, ("type", "id", "name", "input", CACHE_CONTROL, "caller"), where)
    call_id = block.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"'{where}.id' must be a non-empty string.", f"{where}.id")
    name = block.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"'{where}.name' must be a non-empty string.", f"{where}.name")
    arguments = _object(block.get("input"), f"{where}.input")
    return ToolCall(call_id, name, json.dumps(arguments, ensure_ascii=False))


def _thinking(block: Mapping[str, Any], where: str) -> None:
    if block["type"] == "thinking":
        reject_unknown(block, ("type", "thinking", "signature"), where)
        fields = ("thinking", "signature")
    else:
        reject_unknown(block, ("type", "data"), where)
        fields = ("data",)
    for name in fields:
        if not isinstance(block.get(name), str):
            raise _invalid(f"'{where}.{name}' must be a string.", f"{where}.{name}")


USER_BLOCKS = ("text", "tool_result")
ASSISTANT_BLOCKS = ("text", "tool_use", "thinking", "redacted_thinking")


def _blocks(content: list[Any], where: str,
            allowed: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each block of a turn's content, checked, with its path."""
    for index, item in enumerate(content):
        at = f"{where}.content[{index}]"
        yield at, _block(item, at, allowed)


def _user_turn(content: Any, where: str) -> list[Message]:
    if isinstance(content, str):
        return [Message("user", text_field(content, f"{where}.content"))]
    if not isinstance(content, list) or not content:
        raise _invalid(f"'{where}.content' must be a string or a non-empty list of blocks.",
                       f"{where}.content")
    messages: list[Message] = []
    texts: list[str] = []
    marked = False
    for at, block in _blocks(content, where, USER_BLOCKS):
        if block["type"] == "tool_result":
            result = _tool_result(block, at)
            messages.append(dataclasses.replace(result, cache_point=_marked(block)))
        else:
            texts.append(_text_block(block, at))
            marked = marked or _marked(block)
    if texts:
        messages.append(Message("user", "\n".join(texts), cache_point=marked))
    return messages


def _assistant_turn(content: Any, where: str) -> Message:
    if isinstance(content, str):
        return Message("assistant", content)
    if not isinstance(content, list):
        raise _invalid(f"'{where}.content' must be a string or a list of blocks.",
                       f"{where}.content")
    texts: list[str] = []
    calls: list[ToolCall] = []
    marked = False
    for at, block in _blocks(content, where, ASSISTANT_BLOCKS):
        marked = marked or _marked(block)
        if block["type"] == "text":
            texts.append(_text_block(block, at))
        elif block["type"] == "tool_use":
            calls.append(_tool_use(block, at))
        else:
            _thinking(block, at)
    return Message("assistant", "\n".join(texts), tool_calls=tuple(calls), cache_point=marked)


def _messages(value: Any) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise _invalid("'messages' must be a non-empty list.", "messages")
    messages: list[Message] = []
    for index, item in enumerate(value):
        where = f"messages[{index}]"
        turn = _object(item, where)
        reject_unknown(turn, ("role", "content"), where)
        role = turn.get("role")
        if role == "user":
            messages += _user_turn(turn.get("content"), where)
        elif role == "assistant":
            messages.append(_assistant_turn(turn.get("content"), where))
        elif role == "system":  # a system message where it stands (Claude Code sends them)
            messages += _system_messages(turn.get("content"), f"{where}.content")
        else:
            raise _invalid(f"'{where}.role' must be \"user\", \"assistant\" or \"system\".",
                           f"{where}.role")
    if messages and messages[-1].role == "assistant" and not messages[-1].tool_calls \
            and not messages[-1].content.strip():
        messages.pop()  # an empty final assistant turn asks nothing: the model answers
    if all(message.role == "system" for message in messages):
        raise _invalid("'messages' must hold at least one user message.", "messages")
    return messages


def _tools(value: Any) -> tuple[Any, ...]:
    """Custom tools (``input_schema``) through the native reader; server tools are a 400."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _invalid("'tools' must be a list of tools.", "tools")
    native: list[dict[str, Any]] = []
    descriptions: list[str] = []
    for index, item in enumerate(value):
        where = f"tools[{index}]"
        tool = _object(item, where)
        kind = tool.get("type", "custom")
        if kind != "custom":
            name = str(tool.get("name", ""))[:64]
            raise UnsupportedParameterError(
                f"'{where}' is the server tool '{str(kind)[:60]}'{f' ({name})' if name else ''}: "
                "only Anthropic's own service runs server tools; send a custom tool with an "
                "'input_schema' instead.", param=f"{where}.type")
        reject_unknown(tool, ("type", "name", "description", "input_schema", CACHE_CONTROL,
                              "strict", "defer_loading", "eager_input_streaming"), where)
        _cache_control(tool, where)
        for flag in ("defer_loading", "eager_input_streaming"):
            if not isinstance(tool.get(flag, False), bool):
                raise _invalid(f"'{where}.{flag}' must be true or false.", f"{where}.{flag}")
        deferred = tool.get("defer_loading", False)
        if deferred:
            continue  # not shown to the model until a tool search loads it (the client's)
        if "input_schema" not in tool:
            raise _invalid(f"'{where}.input_schema' is required.", f"{where}.input_schema")
        description = tool.get("description") or ""
        if not isinstance(description, str) or len(description) > MAX_TOOL_DESCRIPTION_CHARS:
            raise _invalid(f"'{where}.description' must be a string of at most "
                           f"{MAX_TOOL_DESCRIPTION_CHARS} characters.", f"{where}.description")
        descriptions.append(text_field(description, f"{where}.description")
                            if description else "")
        native.append({key: tool[key] for key in ("name", "strict")
                       if tool.get(key) is not None} | {"parameters": tool["input_schema"]})
    # The native reader holds descriptions to OpenAI's 10,000 characters;
    # Anthropic's clients send longer ones (Claude Code's Bash tool).
    return tuple(dataclasses.replace(tool, description=description)
                 for tool, description in zip(tools_field(native, openai=False), descriptions))


def _tool_choice(value: Any, tools: tuple[Any, ...]) -> tuple[ToolChoice, bool]:
    """(choice, parallel calls allowed)."""
    if value is None:
        return ToolChoice("auto"), True
    choice = _object(value, "tool_choice")
    kind = choice.get("type")
    allowed = {"auto": ("type", "disable_parallel_tool_use"),
               "any": ("type", "disable_parallel_tool_use"),
               "tool": ("type", "name", "disable_parallel_tool_use"), "none": ("type",)}
    if kind not in allowed:
        raise _invalid("'tool_choice.type' must be one of auto, any, tool, none.",
                       "tool_choice.type")
    reject_unknown(choice, allowed[kind], "tool_choice")
    single = choice.get("disable_parallel_tool_use", False)
    if not isinstance(single, bool):
        raise _invalid("'tool_choice.disable_parallel_tool_use' must be true or false.",
                       "tool_choice.disable_parallel_tool_use")
    if kind != "none" and not tools:
        raise _invalid(f"'tool_choice' '{kind}' needs 'tools'.", "tool_choice")
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _invalid("'tool_choice.name' must name one of the tools.", "tool_choice.name")
        if all(tool.name != name for tool in tools):
            raise _invalid(f"'tool_choice.name' '{name}' is not one of the tools.",
                           "tool_choice.name")
        return ToolChoice("function", name), not single
    return ToolChoice({"auto": "auto", "any": "required", "none": "none"}[kind]), not single


def _check_ignored(payload: Mapping[str, Any]) -> None:
    for name in UNSUPPORTED_FIELDS:
        if payload.get(name) is not None:
            raise UnsupportedParameterError(
                f"'{name}' is not supported by this endpoint: only Anthropic's own service "
                "runs it.", param=name)
    _context_management(payload.get("context_management"))
    metadata = payload.get("metadata")
    if metadata is not None:
        reject_unknown(_object(metadata, "metadata"), ("user_id",), "metadata")
        user = metadata.get("user_id")
        if user is not None and (not isinstance(user, str) or len(user) > 256):
            raise _invalid("'metadata.user_id' must be a string of at most 256 characters.",
                           "metadata.user_id")
    for name in IGNORED_STRINGS:
        if payload.get(name) is not None and not isinstance(payload[name], str):
            raise _invalid(f"'{name}' must be a string.", name)
    if payload.get("diagnostics") is not None:
        _object(payload["diagnostics"], "diagnostics")
    _cache_control(payload, "")
    if payload.get("speed") not in (None, "standard"):
        raise UnsupportedParameterError("'speed' \"fast\" is not offered by this endpoint: "
                                        "leave it out or send \"standard\".", param="speed")
    if payload.get("inference_geo") is not None:
        raise UnsupportedParameterError("'inference_geo' is not supported by this endpoint: the "
                                        "stage's Bedrock region and inference profile decide "
                                        "where the model runs.", param="inference_geo")
    tier = payload.get("service_tier")
    if tier is not None and tier not in ("auto", "standard_only"):
        raise _invalid("'service_tier' must be \"auto\" or \"standard_only\".", "service_tier")
    if payload.get("top_k") is not None:
        raise UnsupportedParameterError("'top_k' is not supported by this endpoint: Bedrock's "
                                        "Llama body has none; leave it out.", param="top_k")


def _context_management(value: Any) -> None:
    """Only edits that clear thinking: this endpoint never shows the model
    earlier thinking, so they are already done. Clearing tool uses would
    change the conversation, which only Anthropic's service does."""
    if value is None:
        return
    config = _object(value, "context_management")
    reject_unknown(config, ("edits",), "context_management")
    edits = config.get("edits") or []
    if not isinstance(edits, list):
        raise _invalid("'context_management.edits' must be a list.", "context_management.edits")
    for index, edit in enumerate(edits):
        where = f"context_management.edits[{index}]"
        kind = str(_object(edit, where).get("type"))
        if not kind.startswith("clear_thinking_"):
            raise UnsupportedParameterError(
                f"'{where}.type' '{kind[:60]}' is not supported by this endpoint: only "
                "clear_thinking edits are (earlier thinking is never shown to the model).",
                param=f"{where}.type")


def _check_thinking(value: Any) -> None:
    """Extended thinking is a budget the model may use, not one it must: the
    served models answer without thinking blocks (docs/messages.md)."""
    if value is None:
        return
    thinking = _object(value, "thinking")
    kind = thinking.get("type")
    if kind == "disabled":
        reject_unknown(thinking, ("type",), "thinking")
        return
    if kind not in ("enabled", "adaptive"):
        raise _invalid("'thinking.type' must be \"enabled\", \"adaptive\" or \"disabled\".",
                       "thinking.type")
    reject_unknown(thinking, ("type", "budget_tokens", "display"), "thinking")
    budget = thinking.get("budget_tokens")
    if kind == "enabled" and (isinstance(budget, bool) or not isinstance(budget, int)
                              or budget < 1024):
        raise _invalid("'thinking.budget_tokens' must be an integer of at least 1024.",
                       "thinking.budget_tokens")
    if thinking.get("display") not in (None, "summarized", "omitted"):
        raise _invalid("'thinking.display' must be \"summarized\" or \"omitted\".",
                       "thinking.display")


def _output_config(value: Any) -> ResponseFormat:
    """``output_config.format`` (a JSON schema the answer must fit) as the
    response format every model is held to; ``effort`` only at Anthropic's
    default, ``high`` (these models take no effort level)."""
    if value is None:
        return ResponseFormat()
    config = _object(value, "output_config")
    reject_unknown(config, ("effort", "format"), "output_config")
    if config.get("effort") not in (None, "high"):
        raise UnsupportedParameterError("'output_config.effort' is not supported by this "
                                        "endpoint: leave it out or send \"high\".",
                                        param="output_config.effort")
    fmt = config.get("format")
    if fmt is None:
        return ResponseFormat()
    reject_unknown(_object(fmt, "output_config.format"), ("type", "schema"),
                   "output_config.format")
    if fmt.get("type") != "json_schema":
        raise _invalid("'output_config.format.type' must be \"json_schema\".",
                       "output_config.format.type")
    return response_format_field({"type": "json_schema", "schema": fmt.get("schema"),
                                  "strict": True}, openai=False, where="output_config.format")


def _stream(payload: Mapping[str, Any]) -> bool:
    stream = payload.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise _invalid("'stream' must be true or false.", "stream")
    return stream


def parse_messages_request(payload: Mapping[str, Any], settings: Settings, *,
                           counting: bool = False) -> tuple[ChatRequest, MessagesOptions]:
    """A Messages body as the one ChatRequest. ``counting``: count_tokens'
    body, where ``max_tokens`` is optional (clients send the body they will
    send to ``/v1/messages``, and what it asks for is checked the same)."""
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise _invalid(f"{unknown[0][:100]}: Extra inputs are not permitted", unknown[0][:100])
    _check_ignored(payload)
    if payload.get("model") is None:
        raise _invalid("model: Field required", "model")
    model = chat_model_field(payload["model"], settings)
    limit = get_model(model).max_output_tokens
    if counting and payload.get("max_tokens") is None:
        max_tokens = 1
    elif payload.get("max_tokens") is None:
        raise _invalid("max_tokens: Field required", "max_tokens")
    else:
        # Above the model's maximum output, the maximum: Claude Code asks
        # 32,000 of every model (Llama on Bedrock writes at most 2,048).
        max_tokens = min(int_field(payload, "max_tokens", 1, 2 ** 31 - 1, 1), limit)
    _check_thinking(payload.get("thinking"))
    messages = _system_messages(payload.get("system")) + _messages(payload.get("messages"))
    tools, tools_marked = _tools(payload.get("tools")), _tools_marked(payload.get("tools"))
    choice, parallel = _tool_choice(payload.get("tool_choice"), tools)
    stop = payload.get("stop_sequences")
    if stop is not None and not isinstance(stop, list):
        raise _invalid("'stop_sequences' must be a list of strings.", "stop_sequences")
    request = ChatRequest(
        messages=check_conversation(messages, settings),
        guardrail=settings.guardrail, fallbacks=settings.fallbacks.get(model, ()),
        model=model, max_tokens=max_tokens,
        temperature=number_field(payload, "temperature", 0, 1, DEFAULT_TEMPERATURE),
        top_p=number_field(payload, "top_p", 0, 1, DEFAULT_TOP_P),
        stop=stop_field(stop, "stop_sequences"), tools=tools, tool_choice=choice,
        parallel_tool_calls=parallel, response_format=_output_config(payload.get("output_config")))
    request = _cache_points(request, tools_marked, payload.get(CACHE_CONTROL) is not None)
    return check_capabilities(request), MessagesOptions(_stream(payload))


def _tools_marked(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(t, dict) and _marked(t) for t in value)


def _cache_points(request: ChatRequest, tools_marked: bool, last_marked: bool) -> ChatRequest:
    """The request's cache marks as cache points, on a model that caches
    prompts (a mark on a tool caches all the tools; a top-level mark, the
    whole conversation); on any other, none, and the system text as one
    message, so that its prompt is what it would be without the marks."""
    messages = list(request.messages)
    if not get_model(request.model).cache_min_tokens:
        joined: list[Message] = []
        for message in messages:
            plain = dataclasses.replace(message, cache_point=False)
            if joined and plain.role == "system" and joined[-1].role == "system":
                joined[-1] = Message("system", f"{joined[-1].content}\n{plain.content}")
            else:
                joined.append(plain)
        return dataclasses.replace(request, messages=tuple(joined))
    if last_marked:
        messages[-1] = dataclasses.replace(messages[-1], cache_point=True)
    points = sum(m.cache_point for m in messages) + tools_marked
    if points > MAX_CACHE_POINTS:
        raise _invalid(f"A maximum of {MAX_CACHE_POINTS} blocks with cache_control may be "
                       f"provided. Found {points}.", CACHE_CONTROL)
    return dataclasses.replace(request, messages=tuple(messages), tools_cache_point=tools_marked)


# --- answers


def stop_reason(completion: Completion) -> str:
    if completion.tool_calls:
        return "tool_use"
    if completion.stop_sequence is not None:
        return "stop_sequence"
    return STOP_REASONS.get(completion.stop_reason, "end_turn")


def usage_field(completion: Completion) -> dict[str, Any]:
    used = completion.usage
    return {"input_tokens": used.input_tokens, "output_tokens": used.output_tokens,
            "cache_creation_input_tokens": used.cache_write_tokens,
            "cache_read_input_tokens": used.cache_read_tokens,
            "cost_usd": usd(completion.cost_usd)}


def tool_input(arguments: str) -> dict[str, Any]:
    """A call's arguments as the object Anthropic's ``input`` is."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def content_blocks(completion: Completion) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if completion.text or not completion.tool_calls:
        blocks.append({"type": "text", "text": completion.text})
    blocks += [{"type": "tool_use", "id": call.id, "name": call.name,
                "input": tool_input(call.arguments)} for call in completion.tool_calls]
    return blocks


def render_message(completion: Completion, message_id: str) -> dict[str, Any]:
    return {"id": message_id, "type": "message", "role": "assistant",
            "model": completion.model, "content": content_blocks(completion),
            "stop_reason": stop_reason(completion), "stop_sequence": completion.stop_sequence,
            "usage": usage_field(completion)}
