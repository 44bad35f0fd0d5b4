"""The emulator's Converse input and its embedding models, as Bedrock checks them.

``parse_converse`` reads a Converse body for any registered chat model: text,
``toolUse`` (assistant) and ``toolResult`` (user) blocks, ``system``,
``toolConfig`` (tools, ``toolChoice`` where the model takes it),
``inferenceConfig``. Turns must alternate, starting with the user (Bedrock's
rule for every model; Claude's own API insists on it too), and a final
assistant turn must not end in whitespace. The conversation is reduced to a
Llama 3.1 prompt in the endpoint's tool format (calls as ``{"name",
"parameters"}``, results as ``ipython`` turns), so the generator answers it
as it answers InvokeModel: JSON formats from the system prompt, a sentence
quoting a tool result. When tools are offered and the conversation does not
end with tool results, ``tool_use`` says which tool to call and with what
input, decided as for Llama (``llama_answers.tool_decision``: values from the
conversation where they fit the ``inputSchema``; after tool results, the
final-answer tool when one is offered).

``embed`` answers Titan Text Embeddings v2 and Cohere Embed v3 bodies with
deterministic unit vectors of the right size, and the input token count.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
from typing import Any

from chalicelib.models.llama import format_prompt
from chalicelib.models.registry import REGISTRY
from devstack.bedrock_wire import LLAMA_DEFAULTS, BedrockError, _Msg, parse_llama_body
from devstack.generator import count_tokens
from devstack.prompt_tokens import count_prompt_tokens
from dataclasses import asdict, replace

from devstack.llama_answers import tool_decision
from devstack.prompt_reading import Tool, read_prompt

COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")


def _invalid(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def _tools(config: Any, model_id: str, streaming: bool) -> tuple[list[Tool], Any]:
    spec = REGISTRY[model_id]
    if not isinstance(config, dict) or not isinstance(config.get("tools"), list) \
            or not config["tools"]:
        raise _invalid("The toolConfig field must contain at least one tool.")
    if not spec.tools:
        raise _invalid("This model doesn't support tool use.")
    if streaming and not spec.stream_tools:
        raise _invalid("This model doesn't support tool use in streaming mode.")
    tools = []
    for item in config["tools"]:
        tool = item.get("toolSpec") if isinstance(item, dict) else None
        schema = (tool.get("inputSchema") or {}).get("json") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) \
                or not isinstance(schema, dict):
            raise _invalid("Each tool needs a toolSpec with a name and an inputSchema.json object.")
        tools.append(Tool(tool["name"], str(tool.get("description", "")), schema))
    choice = config.get("toolChoice")
    if choice is not None:
        if not spec.tool_choice:
            raise _invalid("This model doesn't support the toolChoice field. Remove toolChoice "
                           "and try again.")
        if not isinstance(choice, dict) or len(choice) != 1 or not (
                "auto" in choice or "any" in choice or "tool" in choice):
            raise _invalid("toolChoice must be one of auto, any or tool.")
        if "tool" in choice and choice["tool"].get("name") not in {t.name for t in tools}:
            raise _invalid("The tool named in toolChoice is not in toolConfig.tools.")
    return tools, choice


# ToolUseBlock / ToolResultBlock toolUseId: 1-64 of [a-zA-Z0-9_-] (Bedrock API reference).
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _tool_use_id(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _TOOL_USE_ID.fullmatch(value):
        raise _invalid(f"1 validation error detected: Value at '{where}.toolUseId' failed to "
                       "satisfy constraint: Member must satisfy regular expression pattern: "
                       "[a-zA-Z0-9_-]+ and length between 1 and 64")


def _result_text(block: dict[str, Any]) -> str:
    parts = []
    for item in block.get("content") or []:
        if isinstance(item, dict) and "text" in item:
            parts.append(str(item["text"]))
        elif isinstance(item, dict) and "json" in item:
            parts.append(json.dumps(item["json"]))
    return "\n".join(parts)


def parse_converse(raw: bytes, model_id: str, streaming: bool) -> dict[str, Any]:
    """Converse input checked and reduced: prompt, sampling, stops, and the tool to call."""
    if REGISTRY[model_id].kind != "chat":
        raise _invalid("This action doesn't support the model that you provided. Try again "
                       "with a supported text or chat model.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BedrockError("ValidationException") from None
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) \
            or not body["messages"]:
        raise _invalid("A conversation must start with a user message.")
    tools: list[Tool] = []
    choice = None
    marks: list[dict[str, Any]] = []
    config = body.get("toolConfig")
    if config is not None:
        if isinstance(config, dict) and isinstance(config.get("tools"), list):
            marks = [t for t in config["tools"] if isinstance(t, dict) and "cachePoint" in t]
            config = {**config, "tools": [t for t in config["tools"] if t not in marks]}
        tools, choice = _tools(config, model_id, streaming)
    # The tool definitions are part of the input Bedrock counts, and come
    # first in the prefix a cache point caches (tools, system, messages).
    head = _Prefix(json.dumps([asdict(t) for t in tools]) if tools else "")
    turns: list[_Msg] = []
    points: list[tuple[str, int]] = [_cache_point(mark, model_id, head, None) for mark in marks]
    for item in body.get("system") or []:
        if isinstance(item, dict) and "cachePoint" in item:
            points.append(_cache_point(item, model_id, head, turns))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise _invalid("The system content must be text.")
        turns.append(_Msg("system", item["text"]))
    expected, uses_tools = "user", False
    for index, msg in enumerate(body["messages"]):
        if not isinstance(msg, dict) or msg.get("role") != expected:
            raise _invalid("A conversation must alternate between user and assistant roles.")
        blocks = msg.get("content")
        if not isinstance(blocks, list) or not blocks:
            raise _invalid("The content field in the Message object is empty.")
        texts: list[str] = []
        for block in blocks:
            kind = next(iter(block), "") if isinstance(block, dict) and len(block) == 1 else ""
            if kind == "cachePoint":
                done = [*turns, _Msg(expected, "\n".join(texts))] if texts else turns
                points.append(_cache_point(block, model_id, head, done))
                continue
            if kind == "text" and isinstance(block["text"], str) and block["text"].strip():
                texts.append(block["text"])
            elif kind == "toolUse" and expected == "assistant":
                uses_tools = True
                use = block["toolUse"]
                _tool_use_id(use.get("toolUseId"), f"messages.{index}.toolUse")
                texts.append(json.dumps({"name": use.get("name"),
                                         "parameters": use.get("input", {})}))
            elif kind == "toolResult" and expected == "user":
                uses_tools = True
                _tool_use_id(block["toolResult"].get("toolUseId"), f"messages.{index}.toolResult")
                turns.append(_Msg("ipython", _result_text(block["toolResult"])))
            elif kind == "text":
                raise _invalid("The text field in the ContentBlock object is blank. Add text "
                               "to the text field, and try again.")
            else:
                raise _invalid(f"This model doesn't support the {kind or 'given'} content block "
                               "in this position.")
        if texts:
            turns.append(_Msg(expected, "\n".join(texts)))
        expected = "assistant" if expected == "user" else "user"
    final = body["messages"][-1]
    if final["role"] == "assistant" and any(
            isinstance(b.get("text"), str) and b["text"] != b["text"].rstrip()
            for b in final["content"]):
        raise _invalid("The final assistant content cannot end with trailing whitespace.")
    if config is None and uses_tools:
        raise _invalid("The toolConfig field must be defined when using toolUse and toolResult "
                       "content blocks.")
    cfg = body.get("inferenceConfig") or {}
    if not isinstance(cfg, dict):
        raise _invalid("inferenceConfig must be an object.")
    if not REGISTRY[model_id].top_p_with_temperature and "temperature" in cfg and "topP" in cfg:
        raise _invalid("temperature and top_p cannot both be specified for this model. Please "
                       "use only one.")
    max_tokens = cfg.get("maxTokens", LLAMA_DEFAULTS["max_gen_len"])
    if isinstance(max_tokens, int) and max_tokens > REGISTRY[model_id].max_output_tokens:
        raise _invalid(f"The maximum tokens you requested exceeds the model limit of "
                       f"{REGISTRY[model_id].max_output_tokens}.")
    llama = {"prompt": format_prompt(turns),
             "temperature": cfg.get("temperature", LLAMA_DEFAULTS["temperature"]),
             "top_p": cfg.get("topP", LLAMA_DEFAULTS["top_p"]),
             "max_gen_len": min(max_tokens, 2048) if isinstance(max_tokens, int) else max_tokens}
    checked = parse_llama_body(json.dumps(llama).encode())
    stops = cfg.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _invalid("stopSequences must be non-empty strings.")
    checked["stop"] = stops
    checked["response_fields"] = _response_fields(body.get("additionalModelResponseFieldPaths"))
    checked["cache_points"] = points
    checked["prompt_tokens"] = head.tokens + count_prompt_tokens(checked["prompt"])
    checked["tool_use"] = _tool_use(tools, choice, checked["prompt"]) if tools else None
    return checked


POINTER = re.compile(r"(/([^~/]|~[01])*)+")


def _response_fields(paths: Any) -> list[str]:
    """``additionalModelResponseFieldPaths``: JSON Pointers into the model's
    own answer; an empty or malformed one is a 400, as Bedrock answers it."""
    if paths is None:
        return []
    if not isinstance(paths, list) or len(paths) > 10 or not all(
            isinstance(p, str) and POINTER.fullmatch(p) for p in paths):
        raise _invalid("additionalModelResponseFieldPaths must be a list of JSON Pointers, "
                       "such as \"/stop_sequence\".")
    return paths


def response_fields(model_id: str, paths: list[str], matched: str | None) -> dict[str, Any] | None:
    """What Converse returns for ``paths``: the fields of the model's native
    answer that they name (Claude's ``stop_sequence``); paths the answer has
    not are ignored, as Bedrock ignores them. None when none were asked."""
    if not paths:
        return None
    native: dict[str, Any] = ({"stop_sequence": matched}
                              if REGISTRY[model_id].owned_by == "anthropic" else {})
    return {p[1:]: native[p[1:]] for p in paths if p[1:] in native}


class _Prefix:
    """The tool definitions' text, which opens every cached prefix, and its tokens."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = count_prompt_tokens(text) if text else 0


def _cache_point(block: dict[str, Any], model_id: str, head: _Prefix,
                 before: list[_Msg] | None) -> tuple[str, int]:
    """A cachePoint, as Bedrock checks it: (the key of the prefix before it,
    that prefix's tokens). A prefix is the tool definitions, then the prompt
    text of the turns before the point (``before`` is None for a point in
    the tools, which caches the tools alone)."""
    spec = REGISTRY[model_id]
    if not spec.cache_min_tokens:
        raise _invalid("This model doesn't support prompt caching.")
    point = block.get("cachePoint")
    if not isinstance(point, dict) or point.get("type") != "default" or \
            point.get("ttl") not in (None, "5m") or set(point) - {"type", "ttl"}:
        raise _invalid("cachePoint must be {\"type\": \"default\"} (ttl 5m on this model).")
    text = format_prompt(before) if before else ""
    key = hashlib.sha256(f"{spec.base_id}\n{head.text}\n{text}".encode()).hexdigest()
    return key, head.tokens + (count_prompt_tokens(text) if text else 0)


def _tool_use(tools: list[Tool], choice: Any, prompt: str) -> tuple[str, str, dict[str, Any]] | None:
    """(toolUseId, name, input), decided as for Llama (``llama_answers.tool_decision``): the
    named tool, else the best-matching one, with arguments from the conversation; after tool
    results, the final-answer tool when one is offered, else None (the answer is text)."""
    if isinstance(choice, dict) and "tool" in choice:
        tools = [t for t in tools if t.name == choice["tool"]["name"]]
    rng = random.Random(hashlib.sha256(prompt.encode()).digest())
    decision = tool_decision(replace(read_prompt(prompt), tools=tuple(tools), prefill=""), rng)
    if decision is None:
        return None
    tool, arguments = decision
    seed = hashlib.sha256(f"{tool.name}\n{prompt}".encode()).digest()
    return "tooluse_" + hashlib.sha256(seed).hexdigest()[:22], tool.name, arguments


# --- embeddings


def _vector(model_id: str, text: str, size: int) -> list[float]:
    rng = random.Random(hashlib.sha256(f"{model_id}\n{size}\n{text}".encode()).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(size)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"Malformed input request: #/{name}: expected type: String, please "
                       "reformat your input and try again.")
    if not value:
        raise _invalid(f"Malformed input request: #/{name}: expected minLength: 1, please "
                       "reformat your input and try again.")
    return value


def embed(model_id: str, raw: bytes) -> tuple[dict[str, Any], int]:
    """The answer body of an embedding model, and its input token count."""
    spec = REGISTRY[model_id]
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BedrockError("ValidationException") from None
    if not isinstance(body, dict):
        raise _invalid("Malformed input request: #: expected type: JSONObject, please reformat "
                       "your input and try again.")
    if spec.family == "titan-embed":
        extra = set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
        if extra:
            raise _invalid(f"Malformed input request: extraneous key [{sorted(extra)[0]}] is not "
                           "permitted, please reformat your input and try again.")
        text = _text(body.get("inputText"), "inputText")
        size = body.get("dimensions", spec.dimensions[-1])
        if size not in spec.dimensions:
            raise _invalid(f"Malformed input request: #/dimensions: {size} is not a valid enum "
                           "value, please reformat your input and try again.")
        tokens = count_tokens(text)
        if tokens > spec.context_window:
            raise _invalid("Too many input tokens. Max input tokens: 8192, request input token "
                           f"count: {tokens}")
        return {"embedding": _vector(model_id, text, size), "inputTextTokenCount": tokens,
                "embeddingsByType": {}}, tokens
    texts = body.get("texts")
    if not isinstance(texts, list) or not 1 <= len(texts) <= spec.batch:
        raise _invalid(f"Malformed input request: #/texts: expected 1 to {spec.batch} items, "
                       "please reformat your input and try again.")
    if body.get("input_type") not in COHERE_INPUT_TYPES:
        raise _invalid("Malformed input request: #/input_type: is not a valid enum value, "
                       "please reformat your input and try again.")
    texts = [_text(t, f"texts/{i}") for i, t in enumerate(texts)]
    return {"embeddings": [_vector(model_id, t, spec.dimensions[-1]) for t in texts],
            "id": hashlib.sha256("\n".join(texts).encode()).hexdigest()[:36],
            "response_type": "embeddings_floats", "texts": texts}, \
        sum(count_tokens(t) for t in texts)
