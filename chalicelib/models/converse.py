"""ChatRequest <-> Bedrock Converse / ConverseStream, for every family but Llama 3.x (pure:
completion.py makes the calls, their repair and their billing).

Bedrock applies each family's own template, so nothing here is family text;
the quirks Converse leaves to the caller are handled for all families alike:

- system messages go apart (``system=[{text}]``), in order, wherever they were;
- consecutive turns of one role are merged (Claude rejects two user turns in a
  row), tool results are ``toolResult`` blocks in a user turn, first in it
  (Anthropic wants results before any text), a leading assistant turn gets a
  user turn before it (a conversation must start with the user);
- assistant ``tool_calls`` become ``toolUse`` blocks, with their ids;
- tools -> ``toolConfig.tools[].toolSpec``; ``tool_choice`` -> ``toolChoice``
  (``auto``/``any``/``tool``) on models that take it (``models.check_capabilities``
  has already refused ``required``/named choices on the others); ``none``
  sends no tools, and then earlier calls and results are replayed as text,
  since Converse refuses ``toolUse`` blocks without a ``toolConfig``;
- stop sequences are native (``inferenceConfig.stopSequences``); models that
  refuse temperature and top_p together get the temperature only;
- a final assistant message is a prefill the model continues (trailing
  whitespace dropped: Claude refuses it); the answer is the continuation.

``response_format`` is held as on Llama (``answers``, ``schemas``): the
instruction (and schema) in the system prompt, the answer validated, one
repair. Answers: text blocks joined, ``toolUse`` blocks -> tool calls keeping
Bedrock's ``toolUseId`` as the call id, ``stopReason`` mapped to OpenAI's
finish reasons, usage from ``usage.inputTokens/outputTokens``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from chalicelib import jsontext
from chalicelib.models.answers import Shaped, shape
from chalicelib.chat import (ChatRequest, Completion, Message, StreamEnd, StreamEvent, TextDelta,
                             ToolCall, ToolCallDelta, Usage)
from chalicelib.errors import UpstreamError
from chalicelib.models import guardrails
from chalicelib.models.registry import get_model
from chalicelib.models.prompting import Prompt, format_instruction, offers_tools
from chalicelib.models.schemas import problems

# What a conversation that starts with the assistant (or has no user turn) is given first.
LEADING_USER = "Please begin."
EMPTY_RESULT = "(empty)"  # Converse refuses blank text blocks
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                "tool_use": "tool_calls", "content_filtered": "content_filter",
                "guardrail_intervened": "content_filter"}
STOP_SEQUENCE_PATH = "/stop_sequence"


def matched_stop(reason: Any, fields: Any, stops: tuple[str, ...]) -> str | None:
    """Which stop sequence ended a Converse answer: Claude's ``stop_sequence``
    (asked for through ``additionalModelResponseFieldPaths``), else the only
    one sent; None when Bedrock's ``stopReason`` is not ``stop_sequence`` or
    it cannot be known (several sequences, a model that does not say)."""
    if reason != "stop_sequence":
        return None
    named = fields.get("stop_sequence") if isinstance(fields, dict) else None
    if isinstance(named, str) and named in stops:
        return named
    return stops[0] if len(stops) == 1 else None


# --- request


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = jsontext.loads(arguments)
    except ValueError:
        return {"arguments": arguments}  # replayed as the client sent it
    return value if isinstance(value, dict) else {"arguments": value}


def _as_text(message: Message) -> Message:
    """A tool call or result as plain text, for a request that sends no tools."""
    if message.role == "tool":
        return Message("user", f"Result of tool call {message.tool_call_id}: "
                       f"{message.content.strip() or EMPTY_RESULT}")
    calls = "\n".join(f"[called {c.name} ({c.id}) with {c.arguments}]" for c in message.tool_calls)
    text = message.content.strip()
    return Message("assistant", f"{text}\n{calls}" if text else calls)


# Bedrock's toolUseId: 1-64 of [a-zA-Z0-9_-]. Clients replay ids of any
# shape (other providers', their own, OpenAI's up to 40 characters); one that
# does not fit goes as a stable stand-in, the same for its call and its result.
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def tool_use_id(call_id: str | None) -> str:
    text = call_id or ""
    if _TOOL_USE_ID.fullmatch(text):
        return text
    return "id_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


CACHE_POINT = {"cachePoint": {"type": "default"}}


def _blocks(message: Message) -> list[dict[str, Any]]:
    blocks = _content_blocks(message)
    return blocks + [dict(CACHE_POINT)] if blocks and message.cache_point else blocks


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"toolResult": {"toolUseId": tool_use_id(message.tool_call_id),
                                "content": [{"text": message.content if message.content.strip()
                                             else EMPTY_RESULT}]}}]
    blocks: list[dict[str, Any]] = []
    if message.content.strip():
        blocks.append({"text": message.content})
    blocks += [{"toolUse": {"toolUseId": tool_use_id(c.id), "name": c.name,
                            "input": _tool_input(c.arguments)}}
               for c in message.tool_calls]
    return blocks


def _turns(messages: list[Message]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue  # an empty assistant turn says nothing
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # tool results (and a cache point right after one) first; order kept
        content = turn["content"]
        first = [b for i, b in enumerate(content) if "toolResult" in b or (
            "cachePoint" in b and i and "toolResult" in content[i - 1])]
        turn["content"] = first + [b for b in content if not any(b is f for f in first)]
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"text": LEADING_USER}]})
    last = turns[-1]
    if last["role"] == "assistant":  # a prefill: Claude refuses trailing whitespace
        for block in last["content"]:
            if "text" in block:
                block["text"] = block["text"].rstrip()
    return turns


def _tool_config(request: ChatRequest, takes_choice: bool) -> dict[str, Any]:
    tools = []
    for tool in request.tools:
        spec: dict[str, Any] = {"name": tool.name,
                                "inputSchema": {"json": json.loads(tool.parameters)}}
        if tool.description:
            spec["description"] = tool.description
        tools.append({"toolSpec": spec})
    if request.tools_cache_point:
        tools.append(dict(CACHE_POINT))
    config: dict[str, Any] = {"tools": tools}
    choice = request.tool_choice
    if takes_choice:
        config["toolChoice"] = ({"any": {}} if choice.mode == "required" else
                                {"tool": {"name": choice.name}} if choice.mode == "function" else
                                {"auto": {}})
    return config


def build_request(request: ChatRequest, stream: bool = True) -> dict[str, Any]:
    """The ConverseStream arguments (all but ``modelId``) for ``request``;
    Converse's when not ``stream`` (its guardrail takes no stream mode)."""
    spec = get_model(request.model)
    offered = offers_tools(request)
    system: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            system += [{"text": message.content}, *([dict(CACHE_POINT)] if message.cache_point
                                                    else [])]
    instruction = format_instruction(request)
    if instruction:
        system.append({"text": instruction})
    rest = [m for m in request.messages if m.role != "system"]
    if not offered:
        rest = [_as_text(m) if m.role == "tool" or m.tool_calls else m for m in rest]
    config: dict[str, Any] = {"maxTokens": request.max_tokens, "temperature": request.temperature}
    if spec.top_p_with_temperature:
        config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = list(request.stop)
    body: dict[str, Any] = {"messages": _turns(rest), "inferenceConfig": config}
    if request.stop and len(request.stop) > 1 and spec.owned_by == "anthropic":
        # Converse's stopReason does not say which sequence matched; Claude's
        # own answer does, and Bedrock returns that field when asked.
        body["additionalModelResponseFieldPaths"] = [STOP_SEQUENCE_PATH]
    if system:
        body["system"] = system
    if offered:
        body["toolConfig"] = _tool_config(request, spec.tool_choice)
    body.update(guardrails.converse_config(request.guardrail, stream))
    return body


# --- answer


@dataclasses.dataclass(frozen=True)
class Answer:
    text: str
    tool_calls: tuple[ToolCall, ...]
    stop_reason: str  # stop | length | tool_calls | content_filter
    usage: Usage
    stop_sequence: str | None = None  # which of the request's stop sequences ended it


def _usage(value: Any) -> Usage:
    if not isinstance(value, dict):
        raise UpstreamError("The model returned a malformed answer.")
    counts = [value.get("inputTokens"), value.get("outputTokens"),
              value.get("cacheReadInputTokens", 0), value.get("cacheWriteInputTokens", 0)]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise UpstreamError("The model returned a malformed answer.")
    return Usage(*counts)


def parse_response(payload: Any, stops: tuple[str, ...] = ()) -> Answer:
    """A Converse answer: text blocks joined, toolUse blocks as calls (ids
    kept), and which of ``stops`` (the request's) ended it."""
    try:
        blocks = payload["output"]["message"]["content"]
        texts = [b["text"] for b in blocks if "text" in b]
        calls = tuple(ToolCall(b["toolUse"]["toolUseId"], b["toolUse"]["name"],
                               json.dumps(b["toolUse"].get("input", {}), ensure_ascii=False))
                      for b in blocks if "toolUse" in b)
        reason = payload["stopReason"]
    except (KeyError, TypeError) as exc:
        raise UpstreamError("The model returned a malformed answer.") from exc
    return Answer("".join(texts), calls, STOP_REASONS.get(reason, "stop"),
                  _usage(payload.get("usage")),
                  matched_stop(reason, payload.get("additionalModelResponseFields"), stops))


def _call_problems(request: ChatRequest, calls: tuple[ToolCall, ...]) -> tuple[str | None, bool]:
    tools = {tool.name: tool for tool in request.tools}
    found: list[str] = []
    strict = False
    for call in calls:
        tool = tools.get(call.name)
        if tool is None:
            found.append(f"{call.name} is not one of the offered functions")
            continue
        issues = problems(json.loads(call.arguments), tool.parameters)
        if issues:
            strict = strict or tool.strict
            found.append(f"the arguments of {call.name} do not fit its schema: "
                         + "; ".join(issues))
    return ("; ".join(found) or None), strict


def shape_answer(request: ChatRequest, answer: Answer) -> Shaped:
    """What the client gets, with the problem (if any) as ``answers.shape`` reports it."""
    if answer.stop_reason == "content_filter":  # the guardrail's text: nothing in it to read
        return Shaped(answer.text, answer.stop_reason)
    if answer.tool_calls and offers_tools(request):
        calls = answer.tool_calls if request.parallel_tool_calls else answer.tool_calls[:1]
        problem, strict = _call_problems(request, calls)
        return Shaped(answer.text, "tool_calls", calls, problem=problem, fatal=strict)
    choice = request.tool_choice
    if offers_tools(request) and choice.mode in ("required", "function"):
        wanted = f"the function {choice.name}" if choice.mode == "function" else "a function"
        return Shaped(answer.text, answer.stop_reason, fatal=True,
                      repairable=answer.stop_reason != "length",
                      problem=f"the answer is not a call to {wanted}")
    # JSON formats and stop sequences: the Llama path's own checks, on plain text.
    plain = dataclasses.replace(request, tools=())
    shaped = shape(plain, Prompt(""), answer.text, answer.stop_reason)
    if shaped.stop_sequence is None and shaped.stop_reason == "stop" and answer.stop_sequence:
        return dataclasses.replace(shaped, stop_sequence=answer.stop_sequence)
    return shaped


def repair_text(answer: Answer) -> str:
    """The unusable answer as the repair request replays it to the model."""
    if answer.text.strip() or not answer.tool_calls:
        return answer.text or EMPTY_RESULT
    return json.dumps([{"name": c.name, "arguments": c.arguments} for c in answer.tool_calls])


# --- streaming


def streams_whole(request: ChatRequest) -> bool:
    """Whether the answer must be read whole before it can be sent (it may
    need a repair), so a plain Converse call serves the stream."""
    spec = get_model(request.model)
    if request.response_format.type != "text":
        return True
    if not offers_tools(request):
        return False
    return (not spec.stream_tools or request.tool_choice.mode in ("required", "function")
            or any(tool.strict for tool in request.tools))


def stream_events(events: Iterable[dict[str, Any]], request: ChatRequest) -> Iterator[StreamEvent]:
    """ConverseStream's events as the endpoint's stream events: TextDelta per
    text delta, ToolCallDelta for a toolUse block's start (id, name) and each
    piece of its input, and StreamEnd with the stop reason and the usage of
    the ``metadata`` event."""
    texts: list[str] = []
    calls: list[list[str]] = []  # [id, name, arguments so far]
    by_block: dict[int, int] = {}  # contentBlockIndex -> call index
    reason: str | None = None
    matched: str | None = None
    usage: Usage | None = None
    for event in events:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"].get("start", {})
            if "toolUse" in start:
                index = len(calls)
                by_block[event["contentBlockStart"].get("contentBlockIndex", index)] = index
                calls.append([start["toolUse"]["toolUseId"], start["toolUse"]["name"], ""])
                yield ToolCallDelta(index, "", id=calls[index][0], name=calls[index][1])
        elif "contentBlockDelta" in event:
            delta = event["contentBlockDelta"].get("delta", {})
            if "text" in delta and delta["text"]:
                texts.append(delta["text"])
                yield TextDelta(delta["text"])
            elif "toolUse" in delta:
                index = by_block.get(event["contentBlockDelta"].get("contentBlockIndex", -1))
                if index is None:
                    raise UpstreamError("The model returned a malformed stream.")
                piece = delta["toolUse"].get("input", "")
                calls[index][2] += piece
                yield ToolCallDelta(index, piece)
        elif "messageStop" in event:
            stop = event["messageStop"]
            reason = STOP_REASONS.get(stop.get("stopReason"), "stop")
            matched = matched_stop(stop.get("stopReason"), stop.get("additionalModelResponseFields"),
                                   request.stop)
        elif "metadata" in event:
            usage = _usage(event["metadata"].get("usage"))
    if reason is None or usage is None:
        raise UpstreamError("The model's stream ended early.")
    tool_calls = tuple(ToolCall(i, n, a or "{}") for i, n, a in calls)
    if not request.parallel_tool_calls:
        tool_calls = tool_calls[:1]
    yield StreamEnd(Completion(model=request.model, text="".join(texts), stop_reason=reason,
                               usage=usage, tool_calls=tool_calls, stop_sequence=matched))
