"""The one path from a ChatRequest to Bedrock and back, for every route.

Bedrock's InvokeModel for Llama takes no stop sequences, so they are applied
here to the generated text: the answer is cut before the first one and its
stop reason becomes ``"stop"``. Usage stays what Bedrock reported (what is
billed), even when the text was cut.

Tool calls and JSON formats are read from the answer by ``answers.shape``. An
answer that does not honour the request gets one repair attempt (a second
Bedrock call that is told what was wrong); the usage of both calls is billed,
and a fatal problem that survives the repair is an UnusableAnswerError.
"""
from __future__ import annotations

import dataclasses
from decimal import Decimal

from chalicelib import callstats, converse
from chalicelib.answers import find_stop, repair_request, shape
from chalicelib.bedrock import BedrockGateway
from chalicelib.cache import ResponseCache, cacheable
from chalicelib.chat import (ChatRequest, Completion, StreamEnd, StreamedCompletion, TextDelta,
                             Usage)
from chalicelib.errors import UnusableAnswerError, UpstreamError
from chalicelib.models import adapter_for, get_model
from chalicelib.prompting import may_repair, render
from chalicelib.pricing import DEFAULT_PRICES, Prices, cost_usd


def billable(answer: Completion | StreamedCompletion) -> tuple[int, Decimal | None]:
    """What an answer costs its key: (tokens, dollars). A cache hit costs nothing."""
    completion = answer.completion if isinstance(answer, StreamedCompletion) else answer
    if completion.cached:
        return 0, None
    return completion.usage.total_tokens, completion.cost_usd


__all__ = ["ChatService", "billable", "find_stop"]


class ChatService:
    def __init__(self, gateway: BedrockGateway, cache: ResponseCache | None = None,
                 prices: Prices = DEFAULT_PRICES) -> None:
        self._gateway = gateway
        self._cache = cache
        self._prices = prices

    @property
    def gateway(self) -> BedrockGateway:
        return self._gateway

    def complete(self, request: ChatRequest, tenant: str) -> Completion:
        """The answer, from ``tenant``'s cache when the request is
        deterministic, with its cost. Streams are never cached: they exist to
        show text as it comes."""
        use_cache = self._cache is not None and cacheable(request)
        if use_cache:
            completion = self._cache.get_or_compute(request, tenant,
                                                    lambda: self._invoke(request))
        else:
            completion = self._invoke(request)
        return self._priced(request, completion, "hit" if completion.cached else
                            ("miss" if use_cache else None))

    def _priced(self, request: ChatRequest, completion: Completion, cache: str | None) -> Completion:
        completion = dataclasses.replace(completion, cost_usd=cost_usd(
            self._prices, completion.model, completion.usage, completion.cached))
        stats = callstats.current()
        stats.model, stats.cache, stats.cost_usd = completion.model, cache, completion.cost_usd
        stats.input_tokens = completion.usage.input_tokens
        stats.output_tokens = completion.usage.output_tokens
        stats.messages, stats.answer = request.messages, completion.text
        return completion

    def _generate(self, request: ChatRequest) -> tuple[str, str, Usage]:
        adapter = adapter_for(request.model)
        raw = adapter.parse_body(self._gateway.invoke(request.model, adapter.build_body(request)))
        return raw.text, raw.stop_reason, raw.usage

    def _invoke(self, request: ChatRequest) -> Completion:
        if get_model(request.model).api == "converse":
            answer, usage = converse.generate(self._gateway, request)
        else:
            text, reason, usage = self._generate(request)
            answer = shape(request, render(request), text, reason)
            if answer.problem is not None and answer.repairable:
                retry = repair_request(request, render(request).prefix + text, answer.problem)
                text, reason, more = self._generate(retry)
                usage = Usage(usage.input_tokens + more.input_tokens,
                              usage.output_tokens + more.output_tokens)
                answer = shape(retry, render(retry), text, reason)
        if answer.problem is not None and answer.fatal:
            # Billed all the same: the limiter settles what the error says was spent.
            failed = self._priced(request, Completion(request.model, answer.text, "error", usage),
                                  None)
            raise UnusableAnswerError(f"The model's answer could not be used: {answer.problem}.",
                                      spent=billable(failed))
        return Completion(model=request.model, text=answer.text, stop_reason=answer.stop_reason,
                          usage=usage, tool_calls=answer.tool_calls)

    def stream(self, request: ChatRequest) -> StreamedCompletion:
        """Read the whole stream (API Gateway buffers it anyway), keeping the
        pieces so that a streamed answer can be replayed as chunks. An answer
        that must be read whole before it can be sent (tool calls, JSON) is
        made as a plain call and sent as one piece."""
        is_converse = get_model(request.model).api == "converse"
        if converse.streams_whole(request) if is_converse else may_repair(request):
            completion = self._priced(request, self._invoke(request), None)
            return StreamedCompletion(deltas=(completion.text,) if completion.text else (),
                                      completion=completion)
        if is_converse:
            return self._converse_stream(request)
        adapter = adapter_for(request.model)
        pieces: list[str] = []
        reason: str | None = None
        usage: Usage | None = None
        for payload in self._gateway.invoke_stream(request.model, adapter.build_body(request)):
            chunk = adapter.parse_chunk(payload)
            text = chunk.text if pieces else chunk.text.lstrip()
            if text:
                pieces.append(text)
            reason = chunk.stop_reason or reason
            usage = chunk.usage or usage
        if reason is None or usage is None:
            raise UpstreamError("The model's stream ended early.")
        kept, reason = _cut_pieces(pieces, request.stop, reason)
        completion = self._priced(request, Completion(model=request.model, text="".join(kept),
                                                      stop_reason=reason, usage=usage), None)
        return StreamedCompletion(deltas=tuple(kept), completion=completion)

    def _converse_stream(self, request: ChatRequest) -> StreamedCompletion:
        """ConverseStream, read through ``converse.stream_events`` (tool call
        pieces are joined by the stream's last event)."""
        events = self._gateway.converse_stream(request.model, converse.build_request(request))
        pieces: list[str] = []
        end: Completion | None = None
        for event in converse.stream_events(events, request):
            if isinstance(event, TextDelta):
                pieces.append(event.text)
            elif isinstance(event, StreamEnd):
                end = event.completion
        if end is None:
            raise UpstreamError("The model's stream ended early.")
        return StreamedCompletion(deltas=tuple(pieces), completion=self._priced(request, end, None))


def _cut_pieces(pieces: list[str], stops: tuple[str, ...],
                reason: str) -> tuple[list[str], str]:
    cut = find_stop("".join(pieces), stops)
    if cut < 0:
        return pieces, reason
    kept: list[str] = []
    length = 0
    for piece in pieces:
        if length + len(piece) >= cut:
            if cut > length:
                kept.append(piece[:cut - length])
            break
        kept.append(piece)
        length += len(piece)
    return kept, "stop"
