"""``POST /v1/embeddings``: OpenAI's shape <-> Titan Text Embeddings v2 and Cohere Embed v3.

Pure translation (``parse_request``, ``build_bodies``, ``parse_vectors``,
``render``) apart from ``EmbeddingService``, which makes the InvokeModel calls:

- ``input`` is a string or a list of strings (at most ``MAX_INPUTS``); token
  arrays (lists of integers, as tiktoken-based clients send) get a 400 that
  says what to send instead;
- ``encoding_format`` ``float`` (default) or ``base64`` (little-endian float32,
  as OpenAI encodes it, and as the openai SDK asks for by default);
- ``dimensions`` only where the model has a choice (Titan v2: 256, 512, 1024);
- Titan takes one text a call: the texts are embedded by a few threads at a
  time (``TITAN_CONCURRENCY``), each call bounded by the client's timeouts;
- an answer must fit Lambda's 6 MB: inputs x dimensions is capped
  (``MAX_ANSWER_NUMBERS``, more for base64), a 400 saying what to lower;
  Cohere takes up to 96 a call, with ``input_type`` ``search_document``;
- tokens come from the ``X-Amzn-Bedrock-Input-Token-Count`` header (Titan's
  body count when the header is absent); every vector is rounded to float32,
  so a float answer, a base64 answer and a cached answer carry the same numbers.

Deterministic, so cacheable, per tenant like chat (``cache.ResponseCache``),
when the answer fits a DynamoDB item.
"""
from __future__ import annotations

import base64
import contextvars
import dataclasses
import json
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from chalicelib.observe import callstats
from chalicelib.cache import ResponseCache
from chalicelib.chat import Usage
from chalicelib.errors import InvalidRequestError, ModelNotFoundError, UpstreamError
from chalicelib.models import tokens
from chalicelib.models.registry import REGISTRY, ModelSpec
from chalicelib.models.pricing import Prices, cost_usd
from chalicelib.wire.validation import reject_unknown

FIELDS = ("model", "input", "encoding_format", "dimensions", "user")
MAX_INPUTS = 2048  # OpenAI's own limit per request
COHERE_INPUT_TYPE = "search_document"
TITAN_CONCURRENCY = 8
# Lambda answers at most 6 MB: a float is ~20 JSON characters, base64 float32
# 5.33 bytes. These caps keep an answer under ~5.6 MB (LangChain's default
# chunk of 1000 texts of 1024 dimensions fits as base64, which it asks for).
MAX_ANSWER_NUMBERS = {"float": 200_000, "base64": 1_048_576}
# A cached answer is one DynamoDB item (400 KB): base64 float32 is ~5.4 bytes a number.
MAX_CACHED_NUMBERS = 60_000
TOKEN_HEADER = "x-amzn-bedrock-input-token-count"


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[str, ...]
    encoding_format: str = "float"
    dimensions: int | None = None  # None: the model's default


@dataclass(frozen=True)
class Embeddings:
    model: str
    vectors: tuple[tuple[float, ...], ...]
    usage: Usage
    cached: bool = False
    cost_usd: Decimal | None = None


def _model(value: Any, allowed: tuple[str, ...]) -> ModelSpec:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError("'model' is required: the id of an embedding model.",
                                  param="model")
    embedding = [m for m in allowed if REGISTRY[m].kind == "embedding"]
    if value not in allowed:
        raise ModelNotFoundError(
            f"The model '{value[:200]}' does not exist or is not enabled here. Embedding models: "
            f"{', '.join(embedding) or 'none'}.", param="model")
    spec = REGISTRY[value]
    if spec.kind != "embedding":
        raise InvalidRequestError(f"The model '{value}' is a chat model and cannot embed. "
                                  f"Embedding models: {', '.join(embedding) or 'none'}.",
                                  param="model")
    return spec


def _inputs(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise InvalidRequestError("'input' must be a string or a non-empty list of strings.",
                                  param="input")
    if any(isinstance(i, int) or (isinstance(i, list) and all(isinstance(t, int) for t in i))
           for i in items):
        raise InvalidRequestError(
            "'input' holds token arrays, which this endpoint cannot read (Bedrock's embedding "
            "models have their own tokenizers): send the text itself. LangChain's "
            "OpenAIEmbeddings sends token arrays unless check_embedding_ctx_length=False.",
            param="input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequestError(f"'input' takes at most {MAX_INPUTS} texts.", param="input")
    for index, item in enumerate(items):
        where = f"input[{index}]" if isinstance(value, list) else "input"
        if not isinstance(item, str):
            raise InvalidRequestError(f"'{where}' must be a string.", param=where)
        if not item.strip():
            raise InvalidRequestError(f"'{where}' must not be empty.", param=where)
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(f"'{where}' contains invalid Unicode.", param=where) from None
    return tuple(items)


def parse_request(payload: Mapping[str, Any], allowed: tuple[str, ...]) -> EmbeddingRequest:
    reject_unknown(payload, FIELDS)
    spec = _model(payload.get("model"), allowed)
    encoding = payload.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequestError("'encoding_format' must be 'float' or 'base64'.",
                                  param="encoding_format")
    dimensions = payload.get("dimensions")
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            raise InvalidRequestError("'dimensions' must be an integer.", param="dimensions")
        if dimensions not in spec.dimensions:
            sizes = ", ".join(map(str, spec.dimensions))
            raise InvalidRequestError(
                f"The model '{spec.id}' does not support dimensions={dimensions}: it makes "
                f"vectors of {sizes} dimensions.", param="dimensions")
    request = EmbeddingRequest(spec.id, _inputs(payload.get("input")), encoding, dimensions)
    numbers = len(request.inputs) * dimensions_of(request)
    if numbers > MAX_ANSWER_NUMBERS[encoding]:
        most = MAX_ANSWER_NUMBERS[encoding] // dimensions_of(request)
        raise InvalidRequestError(
            f"This request would answer {len(request.inputs)} vectors of "
            f"{dimensions_of(request)} numbers, more than one answer can carry: send at most "
            f"{most} inputs a request (with encoding_format '{encoding}'"
            + (", or use 'base64'" if encoding == "float" else "") + ").", param="input")
    return request


def dimensions_of(request: EmbeddingRequest) -> int:
    return request.dimensions or REGISTRY[request.model].dimensions[-1]


def build_bodies(request: EmbeddingRequest) -> list[dict[str, Any]]:
    """One InvokeModel body per call, in input order."""
    spec = REGISTRY[request.model]
    if spec.family == "titan-embed":
        return [{"inputText": text, "dimensions": dimensions_of(request), "normalize": True}
                for text in request.inputs]
    return [{"texts": list(request.inputs[i:i + spec.batch]), "input_type": COHERE_INPUT_TYPE}
            for i in range(0, len(request.inputs), spec.batch)]


def _float32(vector: Any, size: int) -> tuple[float, ...]:
    if not isinstance(vector, list) or len(vector) != size or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in vector):
        raise UpstreamError("The model returned a malformed embedding.")
    return struct.unpack(f"<{size}f", struct.pack(f"<{size}f", *vector))


def parse_vectors(family: str, payload: Any, size: int) -> list[tuple[float, ...]]:
    """The vectors of one answer, rounded to float32."""
    if not isinstance(payload, dict):
        raise UpstreamError("The model returned a malformed embedding.")
    if family == "titan-embed":
        return [_float32(payload.get("embedding"), size)]
    vectors = payload.get("embeddings")
    if isinstance(vectors, dict):  # embedding_types asked for: {"float": [[...]]}
        vectors = vectors.get("float")
    if not isinstance(vectors, list):
        raise UpstreamError("The model returned a malformed embedding.")
    return [_float32(v, size) for v in vectors]


def input_tokens(headers: Mapping[str, str], payload: Any) -> int:
    raw = headers.get(TOKEN_HEADER)
    if raw is not None and raw.isdigit():
        return int(raw)
    count = payload.get("inputTextTokenCount") if isinstance(payload, dict) else None
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    raise UpstreamError("The model's answer did not say how many tokens it read.")


def encode(vector: tuple[float, ...], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return list(vector)


def render(result: Embeddings, encoding_format: str) -> dict[str, Any]:
    cost = None if result.cost_usd is None else round(float(result.cost_usd), 8)
    return {"object": "list", "model": result.model,
            "data": [{"object": "embedding", "index": i, "embedding": encode(v, encoding_format)}
                     for i, v in enumerate(result.vectors)],
            "usage": {"prompt_tokens": result.usage.input_tokens,
                      "total_tokens": result.usage.input_tokens, "cost_usd": cost}}


# Start and end markers an embedding model may add to each text it reads.
SPECIAL_TOKENS_PER_INPUT = 2


def reservation_size(request: EmbeddingRequest) -> int:
    """The limiter's worst case: at most a token per UTF-8 byte of each text
    (true of any byte-level tokenizer, Titan's and Cohere's included; the
    old three bytes a token was beaten by digits, base64 or CJK text), plus
    its markers. Settling gives back what Bedrock did not count."""
    return sum(tokens.byte_bound(t) + SPECIAL_TOKENS_PER_INPUT for t in request.inputs)


def billable(result: Embeddings) -> tuple[int, Decimal | None]:
    return (0, None) if result.cached else (result.usage.input_tokens, result.cost_usd)


# --- the calls


class InvokeGateway(Protocol):
    def invoke_with_headers(self, model_id: str,
                            body: dict[str, Any]) -> tuple[Any, dict[str, str]]: ...


def _to_json(result: Embeddings) -> str:
    flat = [x for v in result.vectors for x in v]
    packed = base64.b64encode(struct.pack(f"<{len(flat)}f", *flat)).decode("ascii")
    return json.dumps({"model": result.model, "count": len(result.vectors), "vectors": packed,
                       "usage": [result.usage.input_tokens, 0]})


def _from_json(text: str) -> Embeddings:
    data = json.loads(text)
    raw = base64.b64decode(data["vectors"])
    flat = struct.unpack(f"<{len(raw) // 4}f", raw)
    size = len(flat) // data["count"]
    vectors = tuple(tuple(flat[i * size:(i + 1) * size]) for i in range(data["count"]))
    return Embeddings(data["model"], vectors, Usage(*data["usage"]), cached=True)


class EmbeddingService:
    def __init__(self, gateway: InvokeGateway, cache: ResponseCache | None, prices: Prices,
                 concurrency: int = TITAN_CONCURRENCY) -> None:
        self._gateway = gateway
        self._cache = cache
        self._prices = prices
        self._concurrency = concurrency

    def embed(self, request: EmbeddingRequest, tenant: str) -> Embeddings:
        """The vectors, from ``tenant``'s cache when they fit in it, with their cost."""
        use_cache = (self._cache is not None and
                     len(request.inputs) * dimensions_of(request) <= MAX_CACHED_NUMBERS)
        if use_cache:
            assert self._cache is not None
            # The encoding is only how the answer is written: one entry serves both.
            key = dataclasses.replace(request, encoding_format="float")
            result = self._cache.get_or_compute(key, tenant, lambda: self._compute(request),
                                                encode=_to_json, decode=_from_json)
        else:
            result = self._compute(request)
        cost = cost_usd(self._prices, result.model, result.usage, result.cached)
        stats = callstats.current()
        stats.model, stats.cost_usd = result.model, cost
        stats.cache = ("hit" if result.cached else "miss") if use_cache else None
        stats.input_tokens, stats.output_tokens = result.usage.input_tokens, 0
        return Embeddings(result.model, result.vectors, result.usage, result.cached, cost)

    def _call(self, family: str, size: int,
              body: dict[str, Any], model: str) -> tuple[list[tuple[float, ...]], int]:
        payload, headers = self._gateway.invoke_with_headers(model, body)
        return parse_vectors(family, payload, size), input_tokens(headers, payload)

    def _compute(self, request: EmbeddingRequest) -> Embeddings:
        spec = REGISTRY[request.model]
        size = dimensions_of(request)
        bodies = build_bodies(request)
        call: Callable[[dict[str, Any]], tuple[list[tuple[float, ...]], int]] = \
            lambda body: self._call(spec.family, size, body, request.model)  # noqa: E731
        if len(bodies) == 1:
            results = [call(bodies[0])]
        else:
            # Imported here: only Titan batches need threads, and cold starts
            # should not pay for concurrent.futures.
            from concurrent.futures import ThreadPoolExecutor
            # Each thread runs in a copy of this request's context, so the
            # gateway's timings and retries land in this request's stats.
            with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
                futures = [pool.submit(contextvars.copy_context().run, call, body)
                           for body in bodies]
            failed = [f.exception() for f in futures if f.exception() is not None]
            if failed:
                # The calls that succeeded were billed by Bedrock: the key pays for them.
                spent = sum(f.result()[1] for f in futures if f.exception() is None)
                error = failed[0]
                cost = cost_usd(self._prices, request.model, Usage(spent, 0))
                setattr(error, "spent", (spent, cost))
                raise error
            results = [future.result() for future in futures]
        vectors = tuple(v for found, _ in results for v in found)
        if len(vectors) != len(request.inputs):
            raise UpstreamError("The model returned a malformed embedding.")
        return Embeddings(request.model, vectors, Usage(sum(t for _, t in results), 0))
