"""Model registry: Bedrock model id -> capabilities and request/response adapter.

Models are described with data so that adding one is a line, not a code path.
Every Llama 3.x instruct model on Bedrock shares one prompt format and one
body shape, hence one adapter (InvokeModel, ``api="invoke"``). Ids come as base ids
(``meta.llama3-1-8b-instruct-v1:0``) and US cross-region inference profile ids
(``us.meta.llama3-1-8b-instruct-v1:0``). Every other chat family (``catalog``)
goes through Converse (``api="converse"``, ``chalicelib.models.converse``), so no
family's template is written here; embedding models have ``kind="embedding"``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.models import guardrails
from chalicelib.models.catalog import CHAT_MODELS, EMBEDDING_MODELS
from chalicelib.chat import ChatRequest, Usage
from chalicelib.errors import InvalidRequestError, ModelNotFoundError, UpstreamError
from chalicelib.models.prompting import render

# Bedrock caps max_gen_len for Meta models at 2048 whatever the context size.
LLAMA_MAX_OUTPUT = 2048


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str
    context_window: int
    max_output_tokens: int
    supports_streaming: bool = True
    owned_by: str = "meta"
    released: int = 0  # Unix time of the model's public release
    api: str = "invoke"  # invoke (InvokeModel, our template) | converse
    kind: str = "chat"  # chat | embedding
    base_id: str = ""  # the foundation model behind a profile id ("" = id itself)
    profile: str | None = None  # us | eu | apac | global, for a profile id
    tools: bool = True
    tool_choice: bool = True
    stream_tools: bool = True
    prefill: bool = True
    top_p_with_temperature: bool = True
    dimensions: tuple[int, ...] = ()  # embedding sizes; the last is the default
    batch: int = 1  # embedding texts per call
    count_tokens: bool = False  # Bedrock's CountTokens counts its prompts
    cache_min_tokens: int = 0  # prompt caching (Converse cachePoint): a prefix's minimum; 0: none


@dataclass(frozen=True)
class RawCompletion:
    """A Bedrock answer translated, before stop sequences are applied."""

    text: str
    stop_reason: str
    usage: Usage


@dataclass(frozen=True)
class RawChunk:
    """One streamed piece; ``stop_reason`` and ``usage`` only on the last.
    ``prompt_tokens`` (first chunk) and ``generated_tokens`` (running total)
    count a stream that is cut before its last chunk."""

    text: str
    stop_reason: str | None
    usage: Usage | None
    prompt_tokens: int | None = None
    generated_tokens: int | None = None


_LLAMA_3_0, _LLAMA_3_1, _LLAMA_3_2, _LLAMA_3_3 = 1713398400, 1721692800, 1727222400, 1733443200
# base id -> (context window in tokens, release date)
_LLAMA_BASE_IDS: dict[str, tuple[int, int]] = {
    "meta.llama3-8b-instruct-v1:0": (8_192, _LLAMA_3_0),
    "meta.llama3-70b-instruct-v1:0": (8_192, _LLAMA_3_0),
    "meta.llama3-1-8b-instruct-v1:0": (128_000, _LLAMA_3_1),
    "meta.llama3-1-70b-instruct-v1:0": (128_000, _LLAMA_3_1),
    "meta.llama3-1-405b-instruct-v1:0": (128_000, _LLAMA_3_1),
    "meta.llama3-2-1b-instruct-v1:0": (128_000, _LLAMA_3_2),
    "meta.llama3-2-3b-instruct-v1:0": (128_000, _LLAMA_3_2),
    "meta.llama3-2-11b-instruct-v1:0": (128_000, _LLAMA_3_2),
    "meta.llama3-2-90b-instruct-v1:0": (128_000, _LLAMA_3_2),
    "meta.llama3-3-70b-instruct-v1:0": (128_000, _LLAMA_3_3),
}


def _build_registry() -> dict[str, ModelSpec]:
    registry: dict[str, ModelSpec] = {}
    for base_id, (context, released) in _LLAMA_BASE_IDS.items():
        for model_id in (base_id, f"us.{base_id}"):
            registry[model_id] = ModelSpec(
                id=model_id, family="llama3", context_window=context,
                max_output_tokens=LLAMA_MAX_OUTPUT, released=released, base_id=base_id,
                profile="us" if model_id.startswith("us.") else None)
    for row in CHAT_MODELS:
        for profile in ((None,) if row.on_demand_base else ()) + row.profiles:
            model_id = f"{profile}.{row.base_id}" if profile else row.base_id
            registry[model_id] = ModelSpec(
                id=model_id, family=row.family, context_window=row.context_window,
                max_output_tokens=row.max_output_tokens, owned_by=_OWNERS[row.family],
                released=row.released, api="converse", base_id=row.base_id, profile=profile,
                tools=row.tools, tool_choice=row.tool_choice, stream_tools=row.stream_tools,
                prefill=row.prefill, top_p_with_temperature=row.top_p_with_temperature,
                count_tokens=row.count_tokens, cache_min_tokens=row.cache_min_tokens)
    for embed in EMBEDDING_MODELS:
        for profile in (None, *embed.profiles):
            model_id = f"{profile}.{embed.base_id}" if profile else embed.base_id
            registry[model_id] = ModelSpec(
                id=model_id, family=embed.family, context_window=embed.max_input_tokens,
                max_output_tokens=0, owned_by=_OWNERS[embed.family], released=embed.released,
                api="invoke", kind="embedding", base_id=embed.base_id, profile=profile,
                tools=False, tool_choice=False, stream_tools=False, prefill=False,
                dimensions=embed.dimensions, batch=embed.batch)
    return registry


_OWNERS = {"claude": "anthropic", "nova": "amazon", "mistral": "mistral", "llama4": "meta",
           "deepseek": "deepseek", "cohere-command": "cohere", "titan-embed": "amazon",
           "cohere-embed": "cohere"}


REGISTRY: Mapping[str, ModelSpec] = _build_registry()


def get_model(model_id: str) -> ModelSpec:
    """The spec of a known model; ModelNotFoundError for anything else."""
    spec = REGISTRY.get(model_id)
    if spec is None:
        raise ModelNotFoundError(f"The model '{model_id}' does not exist.",
                                 param="model")
    return spec


def _lacks(model_id: str, feature: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"The model '{model_id}' does not support {feature}.", param=param)


def check_capabilities(request: ChatRequest) -> ChatRequest:
    """The request, or a 400 naming the model and the feature it lacks.

    Llama 3.x (InvokeModel) takes everything: the endpoint renders tools,
    formats and prefill itself. Converse models take what their row says.
    """
    spec = get_model(request.model)
    if spec.kind != "chat":
        raise InvalidRequestError(f"The model '{request.model}' is an embedding model: use "
                                  "/v1/embeddings.", param="model")
    if spec.api == "invoke":
        return request
    offered = bool(request.tools) and request.tool_choice.mode != "none"
    if offered and not spec.tools:
        raise _lacks(request.model, "tools", "tools")
    if offered and request.tool_choice.mode in ("required", "function") and not spec.tool_choice:
        raise _lacks(request.model, f"tool_choice '{request.tool_choice.mode}' (only 'auto' or "
                     "'none')", "tool_choice")
    last = request.messages[-1]
    if last.role == "assistant" and not last.tool_calls and not spec.prefill:
        raise _lacks(request.model, "a final assistant message to continue (prefill)",
                     "messages")
    return request


# --- Llama adapter: pure translation between ChatRequest and Bedrock bodies.

def build_llama_body(request: ChatRequest) -> dict[str, Any]:
    """The InvokeModel body for a Meta Llama model."""
    return {
        "prompt": render(request).text,
        "max_gen_len": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }


def _stop_reason(value: Any) -> str:
    # Bedrock documents "stop" and "length"; anything else is a model-side
    # end and reads best to clients as a normal stop.
    return "length" if value == "length" else "stop"


def _int_field(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UpstreamError("The model returned a malformed answer.")
    return value


def parse_llama_body(payload: Any) -> RawCompletion:
    """Translate an InvokeModel answer. The generation's leading whitespace
    is dropped: with Meta's template the model may still start with a newline."""
    if not isinstance(payload, dict) or not isinstance(payload.get("generation"), str):
        raise UpstreamError("The model returned a malformed answer.")
    return RawCompletion(
        text=payload["generation"].lstrip(),
        stop_reason=("content_filter" if guardrails.intervened(payload)
                     else _stop_reason(payload.get("stop_reason"))),
        usage=Usage(_int_field(payload, "prompt_token_count"),
                    _int_field(payload, "generation_token_count")),
    )


def parse_llama_chunk(payload: Any) -> RawChunk:
    """Translate one InvokeModelWithResponseStream chunk (already JSON-decoded).

    Usage comes from ``amazon-bedrock-invocationMetrics`` on the last chunk,
    which is where Bedrock reports the billed counts of a stream.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("generation") or "", str):
        raise UpstreamError("The model returned a malformed stream.")
    reason = payload.get("stop_reason")
    usage = None
    metrics = payload.get("amazon-bedrock-invocationMetrics")
    if isinstance(metrics, dict):
        usage = Usage(_int_field(metrics, "inputTokenCount"),
                      _int_field(metrics, "outputTokenCount"))
    if guardrails.intervened(payload):
        reason = "content_filter"  # the guardrail's own message, or the answer masked
    elif reason is not None:
        reason = _stop_reason(reason)
    return RawChunk(text=payload.get("generation") or "",
                    stop_reason=reason,
                    usage=usage, prompt_tokens=_optional_count(payload, "prompt_token_count"),
                    generated_tokens=_optional_count(payload, "generation_token_count"))


def _optional_count(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True)
class Adapter:
    """How one model family's bodies are built and read."""

    build_body: Callable[[ChatRequest], dict[str, Any]]
    parse_body: Callable[[Any], RawCompletion]
    parse_chunk: Callable[[Any], RawChunk]


_ADAPTERS: Mapping[str, Adapter] = {
    "llama3": Adapter(build_llama_body, parse_llama_body, parse_llama_chunk),
}


def adapter_for(model_id: str) -> Adapter:
    return _ADAPTERS[get_model(model_id).family]
