"""Bedrock Runtime's side of the wire, for the emulator: errors as Bedrock
words them, request validation for Llama and Converse bodies, and answers
shaped for each operation (JSON bodies or event-stream messages).
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.models.llama import format_prompt
from chalicelib.models.registry import REGISTRY
from devstack import eventstream
from devstack.generator import count_tokens

if TYPE_CHECKING:
    from devstack.emulator_state import Config


class StreamSink(Protocol):
    def stream_message(self, message: bytes) -> None: ...


# Bedrock's HTTP status for each error it can answer (botocore service model).
ERROR_STATUS: dict[str, int] = {
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
}
ERROR_MESSAGES: dict[str, str] = {
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ModelNotReadyException": "Model is not ready for inference. Wait and try your request again.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "InternalServerException": "The server encountered an internal error.",
    "ModelTimeoutException": "Model has timed out in processing the request. Try your request again.",
    "ModelErrorException": "The model encountered an error processing the request.",
    "ModelStreamErrorException": "The model stream encountered an error.",
    "ValidationException": "Malformed input request, please reformat your input and try again.",
    "ServiceQuotaExceededException": "Your request exceeds the service quotas for your account.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ResourceNotFoundException": "The requested resource could not be found.",
}
# Exceptions that each stream's event union can carry; others would reach
# boto3 with an empty code, so they are always answered as HTTP errors.
STREAM_EXCEPTIONS: dict[str, frozenset[str]] = {
    "InvokeModelWithResponseStream": frozenset({
        "InternalServerException", "ModelStreamErrorException", "ValidationException",
        "ThrottlingException", "ModelTimeoutException", "ServiceUnavailableException"}),
    "ConverseStream": frozenset({
        "InternalServerException", "ModelStreamErrorException", "ValidationException",
        "ThrottlingException", "ServiceUnavailableException"}),
}
# Llama 2 ids reached end of life; Bedrock answers them ResourceNotFound.
END_OF_LIFE = ("meta.llama2-13b-chat-v1", "meta.llama2-70b-chat-v1")
LLAMA_DEFAULTS = {"temperature": 0.5, "top_p": 0.9, "max_gen_len": 512}
CHUNKS_BEFORE_STREAM_FAULT = 2


class BedrockError(Exception):
    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.message = message or ERROR_MESSAGES[name]


# --- Request validation, as Bedrock words it.

def _malformed(detail: str) -> BedrockError:
    return BedrockError("ValidationException",
                        f"Malformed input request: {detail}, please reformat your input and try again.")


def check_model(model_id: str) -> int:
    """The model's context window; Bedrock's error for anything else."""
    spec = REGISTRY.get(model_id)
    if spec is not None:
        return spec.context_window
    if model_id in END_OF_LIFE:
        raise BedrockError("ResourceNotFoundException",
                           "This model version has reached the end of its life.")
    raise BedrockError("ValidationException", "The provided model identifier is invalid.")


def _range(body: dict[str, Any], key: str, low: float, high: float, integer: bool) -> float:
    value = body.get(key, LLAMA_DEFAULTS[key])
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise _malformed(f"#/{key}: expected type: {'Integer' if integer else 'Number'}")
    if value < low:
        raise _malformed(f"#/{key}: {value} is not greater or equal to {low}")
    if value > high:
        raise _malformed(f"#/{key}: {value} is not less or equal to {high}")
    return value


def parse_llama_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BedrockError("ValidationException") from None
    if not isinstance(body, dict):
        raise _malformed("#: expected type: JSONObject")
    for key in body:
        if key not in ("prompt", *LLAMA_DEFAULTS):
            raise _malformed(f"extraneous key [{key}] is not permitted")
    if "prompt" not in body:
        raise _malformed("#: required key [prompt] not found")
    if not isinstance(body["prompt"], str):
        raise _malformed("#/prompt: expected type: String")
    return {"prompt": body["prompt"],
            "temperature": _range(body, "temperature", 0, 1, integer=False),
            "top_p": _range(body, "top_p", 0, 1, integer=False),
            "max_gen_len": int(_range(body, "max_gen_len", 1, 2048, integer=True))}


@dataclass(frozen=True)
class _Msg:
    role: str
    content: str


def parse_converse_body(raw: bytes) -> dict[str, Any]:
    """Converse input, reduced to a Llama prompt as Bedrock would template it."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BedrockError("ValidationException") from None
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BedrockError("ValidationException", "A conversation must start with a user message.")
    messages: list[_Msg] = []
    for item in body.get("system") or []:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise BedrockError("ValidationException", "The system content must be text.")
        messages.append(_Msg("system", item["text"]))
    expected = "user"
    for msg in body["messages"]:
        if not isinstance(msg, dict) or msg.get("role") != expected:
            raise BedrockError(
                "ValidationException",
                "A conversation must alternate between user and assistant roles.")
        blocks = msg.get("content")
        if not isinstance(blocks, list) or not blocks or not all(
                isinstance(b, dict) and isinstance(b.get("text"), str) for b in blocks):
            raise BedrockError("ValidationException", "This model only supports text content.")
        messages.append(_Msg(msg["role"], "".join(b["text"] for b in blocks)))
        expected = "assistant" if expected == "user" else "user"
    cfg = body.get("inferenceConfig") or {}
    if not isinstance(cfg, dict):
        raise BedrockError("ValidationException", "inferenceConfig must be an object.")
    llama = {"prompt": format_prompt(messages),
             "temperature": cfg.get("temperature", LLAMA_DEFAULTS["temperature"]),
             "top_p": cfg.get("topP", LLAMA_DEFAULTS["top_p"]),
             "max_gen_len": cfg.get("maxTokens", LLAMA_DEFAULTS["max_gen_len"])}
    checked = parse_llama_body(json.dumps(llama).encode())
    stops = cfg.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise BedrockError("ValidationException", "stopSequences must be non-empty strings.")
    checked["stop"] = stops
    return checked


def apply_stop(pieces: list[str], reason: str,
               stops: list[str]) -> tuple[list[str], str, str | None]:
    """The pieces cut before the earliest stop sequence, Converse's reason, and
    which sequence it was (of those starting at one place, the first listed)."""
    text = "".join(pieces)
    found = [(i, n) for n, i in enumerate(text.find(s) for s in stops) if i >= 0]
    if not found:
        return pieces, reason, None
    cut, which = min(found)
    kept: list[str] = []
    length = 0
    for piece in pieces:
        if length + len(piece) > cut:
            kept.append(piece[:cut - length])
            break
        kept.append(piece)
        length += len(piece)
    return [p for p in kept if p], "stop_sequence", stops[which]


class Answer:
    """One successful answer, shaped for its operation."""

    def __init__(self, operation: str, pieces: list[str], stop_reason: str,
                 prompt_tokens: int, cfg: Config,
                 tool_use: tuple[str, str, dict[str, Any]] | None = None,
                 cache: tuple[int, int] | None = None,
                 extra: dict[str, Any] | None = None,
                 guardrail: tuple[str, int] | None = None) -> None:
        self.operation = operation
        self.pieces = pieces
        self.text = "".join(pieces)
        self.stop_reason = stop_reason
        self.prompt_tokens = prompt_tokens
        # A Converse answer that calls a tool: (toolUseId, name, input).
        self.tool_use = tool_use
        self.tool_input = json.dumps(tool_use[2]) if tool_use else ""
        if tool_use:
            self.stop_reason = "tool_use"
        self.output_tokens = count_tokens(self.text + self.tool_input)
        self.cfg = cfg
        self.started = time.monotonic()
        # (read, written) prompt-cache tokens, for a Converse request with cache points.
        self.cache = cache
        # Converse's additionalModelResponseFields: the model's own fields asked for.
        self.extra = extra
        # A guardrail's verdict: its guardrailAction (INTERVENED or NONE) and
        # the tokens the model generated (the text sent may be its message).
        self.guardrail_action = None
        if guardrail is not None:
            self.guardrail_action, self.output_tokens = guardrail
            if self.guardrail_action == "INTERVENED":
                self.stop_reason = "guardrail_intervened" if operation.startswith(
                    "Converse") else "stop"

    def _stop_event(self, reason: str) -> dict[str, Any]:
        event: dict[str, Any] = {"stopReason": reason}
        if self.extra is not None:
            event["additionalModelResponseFields"] = self.extra
        return event

    def _usage(self) -> dict[str, int]:
        """Converse's usage: with cache points, the cached prefix apart from inputTokens."""
        read, written = self.cache or (0, 0)
        uncached = max(0, self.prompt_tokens - read - written)
        usage = {"inputTokens": uncached, "outputTokens": self.output_tokens,
                 "totalTokens": uncached + read + written + self.output_tokens}
        if self.cache is not None:
            usage.update(cacheReadInputTokens=read, cacheWriteInputTokens=written)
        return usage

    def _latency_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000) + self.cfg.latency_ms

    def pace(self, tokens: int | None = None) -> None:
        if self.cfg.tokens_per_second:
            time.sleep((self.output_tokens if tokens is None else tokens) / self.cfg.tokens_per_second)

    def _converse_reason(self) -> str:
        return {"length": "max_tokens", "stop": "end_turn"}.get(self.stop_reason, self.stop_reason)

    def body(self) -> tuple[bytes, dict[str, str]]:
        if self.operation == "Converse":
            content: list[dict[str, Any]] = [{"text": self.text}] if self.text or not \
                self.tool_use else []
            if self.tool_use:
                content.append({"toolUse": {"toolUseId": self.tool_use[0],
                                            "name": self.tool_use[1], "input": self.tool_use[2]}})
            payload: dict[str, Any] = {
                "output": {"message": {"role": "assistant", "content": content}},
                **self._stop_event(self._converse_reason()),
                "usage": self._usage(),
                "metrics": {"latencyMs": self._latency_ms()}}
        else:
            payload = {"generation": self.text, "prompt_token_count": self.prompt_tokens,
                       "generation_token_count": self.output_tokens, "stop_reason": self.stop_reason}
            if self.guardrail_action is not None:
                payload["amazon-bedrock-guardrailAction"] = self.guardrail_action
        return json.dumps(payload).encode(), {
            "Content-Type": "application/json",
            "X-Amzn-Bedrock-Input-Token-Count": str(self.prompt_tokens),
            "X-Amzn-Bedrock-Output-Token-Count": str(self.output_tokens),
            "X-Amzn-Bedrock-Invocation-Latency": str(self._latency_ms())}

    def _stream_tool_use(self, sink: StreamSink) -> None:
        """A toolUse block: its start (id, name), then its input in pieces."""
        assert self.tool_use is not None
        tool_id, name, _ = self.tool_use
        sink.stream_message(eventstream.event("messageStart", {"role": "assistant"}))
        sink.stream_message(eventstream.event("contentBlockStart", {
            "contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": tool_id, "name": name}}}))
        step = max(1, len(self.tool_input) // 3)
        for i in range(0, len(self.tool_input), step):
            sink.stream_message(eventstream.event("contentBlockDelta", {
                "contentBlockIndex": 0,
                "delta": {"toolUse": {"input": self.tool_input[i:i + step]}}}))
        for name_, body in (
                ("contentBlockStop", {"contentBlockIndex": 0}),
                ("messageStop", self._stop_event("tool_use")),
                ("metadata", {"usage": self._usage(),
                              "metrics": {"latencyMs": self._latency_ms()}})):
            sink.stream_message(eventstream.event(name_, body))

    def stream(self, sink: StreamSink, fault: str | None) -> None:
        if self.tool_use and self.operation == "ConverseStream" and fault is None:
            self._stream_tool_use(sink)
            return
        pieces = self.pieces or [""]
        if self.operation == "ConverseStream":
            sink.stream_message(eventstream.event("messageStart", {"role": "assistant"}))
        sent = ""
        for index, piece in enumerate(pieces):
            if fault is not None and index == CHUNKS_BEFORE_STREAM_FAULT:
                break
            self.pace(count_tokens(sent + piece) - count_tokens(sent))
            sent += piece
            last = index == len(pieces) - 1
            sink.stream_message(self._chunk(piece, index, sent, last))
        if fault is not None:
            camel = fault[0].lower() + fault[1:]
            sink.stream_message(eventstream.exception(camel, ERROR_MESSAGES[fault]))
            return
        if self.operation == "ConverseStream":
            for name, body in (
                    ("contentBlockStop", {"contentBlockIndex": 0}),
                    ("messageStop", self._stop_event(self._converse_reason())),
                    ("metadata", {"usage": self._usage(),
                                  "metrics": {"latencyMs": self._latency_ms()}})):
                sink.stream_message(eventstream.event(name, body))

    def _chunk(self, piece: str, index: int, sent: str, last: bool) -> bytes:
        if self.operation == "ConverseStream":
            return eventstream.event("contentBlockDelta",
                                     {"contentBlockIndex": 0, "delta": {"text": piece}})
        chunk: dict[str, Any] = {"generation": piece,
                                 "generation_token_count": count_tokens(sent),
                                 "stop_reason": self.stop_reason if last else None}
        if index == 0:
            chunk["prompt_token_count"] = self.prompt_tokens
        if last and self.guardrail_action is not None:
            chunk["amazon-bedrock-guardrailAction"] = self.guardrail_action
        if last:
            chunk["amazon-bedrock-invocationMetrics"] = {
                "inputTokenCount": self.prompt_tokens, "outputTokenCount": self.output_tokens,
                "invocationLatency": self._latency_ms(),
                "firstByteLatency": self.cfg.latency_ms}
        data = base64.b64encode(json.dumps(chunk).encode()).decode()
        return eventstream.event("chunk", {"bytes": data})
