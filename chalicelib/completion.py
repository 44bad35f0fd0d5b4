"""The one path from a ChatRequest to Bedrock and back, for every route.

Bedrock's InvokeModel for Llama takes no stop sequences, so they are applied
here to the generated text: the answer is cut before the first one and its
stop reason becomes ``"stop"``. Usage stays what Bedrock reported (what is
billed), even when the text was cut.

Tool calls and JSON formats are read from the answer by ``answers.shape``. An
answer that does not honour the request gets one repair attempt (a second
Bedrock call that is told what was wrong); the usage of both calls is billed,
and a fatal problem that survives the repair is an UnusableAnswerError.

Every call reads Bedrock's response stream (InvokeModelWithResponseStream
for Llama, ConverseStream for the others, even for a plain call), under the
request's deadline (deadline.py), so that the tokens of a call cut short are
always known and billed (``ApiError.spent``). Where Bedrock's own count never
arrives (the deadline, a reset, an in-stream error, a corrupted event), the
call is billed at least its prompt (Bedrock's count from Llama's first chunk,
else ``limits.prompt_estimate``) plus the output received (``_so_far``). Only
a Converse request that ConverseStream refuses (tools, on models that cannot
stream them) is a plain Converse call; cut after it was sent, it is billed its
prompt and ``max_tokens``, since nothing of the answer arrived to count.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from chalicelib import deadline
from chalicelib.observe import callstats
from chalicelib.models import converse
from chalicelib.models.answers import Shaped, first_stop, repair_request, shape, unreadable
from chalicelib.models.bedrock import BedrockGateway
from chalicelib.cache import ResponseCache, cacheable
from chalicelib.chat import (ChatRequest, Completion, StreamEnd, StreamEvent, StreamedCompletion,
                             TextDelta, Usage)
from chalicelib.errors import (ApiError, ContentFilteredError, DeadlineExceededError,
                               InvalidRequestError, UnusableAnswerError, UpstreamError)
from chalicelib.models.registry import RawChunk, adapter_for, check_capabilities, get_model
from chalicelib.models.prompting import may_repair, offers_tools, render
from chalicelib.models.tool_stream import completion_events, detect_calls
from chalicelib.models.tool_parser import PYTHON_TAG, without_python_tag
from chalicelib.models.pricing import DEFAULT_PRICES, Prices, cost_usd
from chalicelib.resilience.cooldowns import Cooldowns
from chalicelib.resilience.links import Link, chain
from chalicelib.resilience.routing import Spent, first_answer, first_stream, ordered
from chalicelib.tenancy.limits import prompt_estimate

log = logging.getLogger(__name__)
T = TypeVar("T")


def billable(answer: Completion | StreamedCompletion) -> tuple[int, Decimal | None]:
    """What an answer costs its key: (tokens, dollars). A cache hit costs nothing."""
    completion = answer.completion if isinstance(answer, StreamedCompletion) else answer
    before_tokens, before_cost = completion.spent_before
    if completion.cached:
        return before_tokens, before_cost
    tokens = completion.usage.total_tokens + before_tokens
    return tokens, add_costs(completion.cost_usd, before_cost)


def add_costs(first: Decimal | None, second: Decimal | None) -> Decimal | None:
    """Two costs, either of which may be unknown (None: no price)."""
    return None if first is None and second is None else (first or Decimal(0)) + (second or 0)


__all__ = ["ChatService", "billable"]


class ChatService:
    def __init__(self, gateway: BedrockGateway, cache: ResponseCache | None = None,
                 prices: Prices = DEFAULT_PRICES, call_deadline_s: float = 30.0, *,
                 regional: Callable[[str], BedrockGateway] | None = None,
                 cooldowns: Cooldowns | None = None) -> None:
        self._gateway = gateway
        self._cache = cache
        self._prices = prices
        self._call_deadline_s = call_deadline_s
        # Fallback chains (resilience/): a gateway per other region, and the
        # cooldowns every process shares.
        self._regional = regional
        self._cooldowns = cooldowns
        self._regions: dict[str, ChatService] = {}

    @property
    def gateway(self) -> BedrockGateway:
        return self._gateway

    def complete(self, request: ChatRequest, tenant: str,
                 wait_s: float | None = None) -> Completion:
        """The answer, from ``tenant``'s cache when the request is
        deterministic, with its cost. Streams are never cached: they exist to
        show text as it comes. Single flight: should this caller lead, its
        lease on the cache entry covers its whole deadline (the request's or
        job's, else one call's worst case); should it follow, it waits at most
        ``wait_s``, by default that same deadline, never past it."""
        # Named before the call, so that a failed request's metrics (throttles,
        # latency, errors) count under the model it asked for.
        callstats.current().model = request.model
        use_cache = self._cache is not None and cacheable(request)
        if use_cache:
            left = deadline.current().remaining()
            own = left if math.isfinite(left) else self._call_deadline_s
            completion = self._cache.get_or_compute(
                request, tenant, lambda: self._routed(request), lease_s=own,
                wait_s=own if wait_s is None else min(wait_s, own))
        else:
            completion = self._routed(request)
        return self._priced(request, completion, "hit" if completion.cached else
                            ("miss" if use_cache else None))

    def _priced(self, request: ChatRequest, completion: Completion, cache: str | None) -> Completion:
        """``completion`` at the prices of the model that served it."""
        completion = dataclasses.replace(completion, cost_usd=cost_usd(
            self._prices, completion.served_model or completion.model, completion.usage,
            completion.cached))
        stats = callstats.current()
        stats.model, stats.cache, stats.cost_usd = completion.model, cache, completion.cost_usd
        stats.served_model = completion.served_model or completion.model
        stats.served_region = completion.served_region or self.gateway.region
        stats.input_tokens = completion.usage.input_tokens
        stats.output_tokens = completion.usage.output_tokens
        stats.messages, stats.answer = request.messages, completion.text
        return completion

    def _generate(self, request: ChatRequest) -> tuple[str, str, Usage]:
        """The whole answer, read from Bedrock's stream even for a plain call:
        InvokeModel tells nothing of a generation cut at the deadline, while
        the stream's chunks count its tokens as they come, so a cut call is
        billed for what Bedrock generated (``ApiError.spent``)."""
        meter = _Meter()
        pieces: list[str] = []
        try:
            for chunk in self._chunks(request, meter):
                pieces.append(chunk.text)
        except ApiError as error:
            raise self._charged(request, error, meter) from error.__cause__
        return "".join(pieces).lstrip(), meter.reason or "stop", meter.usage()

    # --- fallback chains (resilience/): each link is this same path

    def _via(self, link: Link) -> ChatService:
        """The service that calls through ``link``'s region (this one for its own)."""
        if link.region is None or self._regional is None:
            return self
        if link.region not in self._regions:
            self._regions[link.region] = ChatService(self._regional(link.region), None,
                                                     self._prices, self._call_deadline_s)
        return self._regions[link.region]

    def _links(self, request: ChatRequest) -> list[Link]:
        """The chain's links that can take this request (a link whose model
        lacks a feature it uses is left out), cooling ones last."""
        links = tuple(k for k in chain(request.model, request.fallbacks)
                      if k.model == request.model or _capable(_for_link(request, k)))
        cooling = self._cooldowns.cooling(map(str, links)) if self._cooldowns else set()
        return ordered(links, cooling)

    def _failed(self, link: Link, error: ApiError) -> None:
        log.warning("link %s failed (%s); trying the next", link, error.code)
        callstats.current().fallbacks += 1
        if self._cooldowns is not None:
            self._cooldowns.failed(str(link), getattr(error, "retry_after", None))

    def _as_served(self, request: ChatRequest, link: Link, completion: Completion,
                   spent: Spent) -> Completion:
        """``completion`` of ``link``, as the answer to ``request``: the model
        asked for stays ``model``; what answered is ``served_*``."""
        return dataclasses.replace(completion, model=request.model, served_model=link.model,
                                   served_region=self._via(link).gateway.region,
                                   spent_before=spent)

    def _routed(self, request: ChatRequest) -> Completion:
        """``_invoke`` through the request's fallback chain (none: its model)."""
        if not request.fallbacks:
            return self._invoke(request)
        link, completion, spent = first_answer(
            self._links(request), lambda k: self._via(k)._invoke(_for_link(request, k)),
            self._failed)
        assert isinstance(completion, Completion)
        return self._as_served(request, link, completion, spent)

    def _invoke(self, request: ChatRequest) -> Completion:
        if get_model(request.model).api == "converse":
            answer, usage = self._converse_answer(request)
        else:
            answer, usage = self._llama_answer(request)
        return self._unblocked(request, self._completion(request, answer, usage))

    def _unblocked(self, request: ChatRequest, completion: Completion) -> Completion:
        """``completion``, unless the guardrail blocked the prompt: then
        ContentFilteredError, billed what Bedrock reported (a blocked prompt
        generates nothing, so it is never cached either). An answer the
        guardrail blocked or masked after generating is an answer, ending
        with ``content_filter``."""
        if completion.stop_reason != "content_filter" or completion.usage.output_tokens:
            return completion
        priced = self._priced(request, completion, None)
        error = ContentFilteredError("The request was blocked by a guardrail: "
                                     + (completion.text.strip()[:500] or "no reason given."),
                                     param="messages")
        error.spent = billable(priced)
        raise error

    def _completion(self, request: ChatRequest, answer: Shaped, usage: Usage) -> Completion:
        if answer.problem is not None and answer.fatal:
            # Billed all the same: the limiter settles what the error says was spent.
            failed = self._priced(request, Completion(request.model, answer.text, "error", usage),
                                  None)
            raise UnusableAnswerError(f"The model's answer could not be used: {answer.problem}.",
                                      spent=billable(failed))
        return Completion(model=request.model, text=answer.text, stop_reason=answer.stop_reason,
                          usage=usage, tool_calls=answer.tool_calls,
                          stop_sequence=answer.stop_sequence)

    def _llama_answer(self, request: ChatRequest) -> tuple[Shaped, Usage]:
        """Llama's answer, read by ``answers.shape``, with one repair attempt."""
        text, reason, usage = self._generate(request)
        answer = self._shape(request, text, reason, usage)
        if answer.problem is not None and answer.repairable:
            return self._repair(request, text, usage, answer.problem)
        return answer, usage

    def _repair(self, request: ChatRequest, text: str, usage: Usage,
                problem: str) -> tuple[Shaped, Usage]:
        """One more attempt at an answer (``text``, which cost ``usage``) that
        did not honour the request, told what was wrong; both calls billed."""
        retry = repair_request(request, render(request).prefix + text, problem)
        text, reason, more = self._after(request, usage, lambda: self._generate(retry))
        usage = _sum(usage, more)
        return self._shape(retry, text, reason, usage), usage

    def _after(self, request: ChatRequest, usage: Usage, call: Callable[[], T]) -> T:
        """``call``, a repair attempt after an answer that cost ``usage``: should
        it fail, its error carries that first answer's tokens too (in a
        request, and in a job, which is charged them before it is retried)."""
        try:
            return call()
        except ApiError as error:  # the first answer was generated too
            first = self._cost(request, usage)
            spent = error.spent or (0, None)
            error.spent = (usage.total_tokens + spent[0],
                           None if first is None and spent[1] is None
                           else (first or 0) + (spent[1] or 0))
            raise

    def _converse_answer(self, request: ChatRequest) -> tuple[Shaped, Usage]:
        """A Converse model's answer, read by ``converse.shape_answer``, with
        one repair attempt, as ``_llama_answer``."""
        answer = self._converse_call(request)
        shaped = self._shape_converse(request, answer, answer.usage)
        if shaped.problem is None or not shaped.repairable:
            return shaped, answer.usage
        retry = repair_request(request, converse.repair_text(answer), shaped.problem)
        more = self._after(request, answer.usage, lambda: self._converse_call(retry))
        usage = _sum(answer.usage, more.usage)
        return self._shape_converse(retry, more, usage), usage

    def _shape_converse(self, request: ChatRequest, answer: converse.Answer,
                        usage: Usage) -> Shaped:
        try:
            return converse.shape_answer(request, answer)
        except Exception as exc:  # noqa: BLE001 - a bug of ours, but Bedrock billed the tokens
            raise unreadable(exc, (usage.total_tokens, self._cost(request, usage))) from exc

    def _converse_call(self, request: ChatRequest) -> converse.Answer:
        """One Converse call, read from ConverseStream and folded into the
        answer (as ``_generate`` for Llama), so that a call cut short knows
        what it generated; a plain Converse call where ConverseStream refuses
        the request."""
        if offers_tools(request) and not get_model(request.model).stream_tools:
            return self._converse_whole(request, converse.build_request(request, stream=False))
        body = converse.build_request(request)
        meter = _Meter()
        end: Completion | None = None
        try:
            events = meter.watch(self._gateway.converse_stream(request.model, body))
            for event in converse.stream_events(events, request):
                if isinstance(event, StreamEnd):
                    end = event.completion
                else:
                    meter.add_delta(event)
        except ApiError as error:
            raise self._charged(request, error, meter) from error.__cause__
        if end is None:  # stream_events ends with StreamEnd or raises
            raise self._charged(request, UpstreamError("The model's stream ended early."), meter)
        return converse.Answer(end.text, end.tool_calls, end.stop_reason, end.usage,
                               end.stop_sequence)

    def _converse_whole(self, request: ChatRequest, body: dict[str, Any]) -> converse.Answer:
        payload = None
        try:
            payload = self._gateway.converse(request.model, body)
            return converse.parse_response(payload, request.stop)
        except ApiError as error:
            if error.spent is None and (error.generating or payload is not None):
                # Sent, and nothing of the answer counted: its worst case.
                self._bill(request, error, Usage(prompt_estimate(request), request.max_tokens))
            raise

    def _repair_streamed(self, request: ChatRequest, streamed: Completion,
                         problem: str) -> Completion:
        """``tool_stream.detect_calls``' repair: the held-back calls of a live
        stream did not fit their schemas, and none of them was sent yet."""
        answer, usage = self._repair(request, streamed.text, streamed.usage, problem)
        return self._priced(request, self._completion(request, answer, usage), None)

    def _shape(self, request: ChatRequest, text: str, reason: str, usage: Usage) -> Shaped:
        """``answers.shape``; should reading fail unexpectedly, the tokens are still billed."""
        try:
            return shape(request, render(request), text, reason)
        except Exception as exc:  # noqa: BLE001 - a bug of ours, but Bedrock billed the tokens
            raise unreadable(exc, (usage.total_tokens, self._cost(request, usage))) from exc

    def _cost(self, request: ChatRequest, usage: Usage) -> Decimal | None:
        return cost_usd(self._prices, request.model, usage, False)

    def _chunks(self, request: ChatRequest, meter: _Meter) -> Iterator[RawChunk]:
        adapter = adapter_for(request.model)
        payloads = self._gateway.invoke_stream(request.model, adapter.build_body(request),
                                               request.guardrail)
        for payload in meter.watch(payloads):
            chunk = adapter.parse_chunk(payload)
            meter.add(chunk)
            yield chunk
        if meter.reason is None or meter.final is None:
            raise UpstreamError("The model's stream ended early.")

    def _so_far(self, request: ChatRequest, meter: _Meter) -> Usage:
        """What a call cut short is billed: Bedrock's own usage if it came,
        else at least the prompt (Bedrock's count from Llama's first chunk,
        else the reserved estimate) plus the output received."""
        if meter.final is not None:
            return meter.final
        prompt = prompt_estimate(request) if meter.prompt_tokens is None else meter.prompt_tokens
        return Usage(prompt, meter.generated_tokens)

    def _charged(self, request: ChatRequest, error: ApiError, meter: _Meter) -> ApiError:
        """``error``, carrying the tokens generated before it, priced: once
        Bedrock had the request (the stream opened, or the answer was waited
        for past its timeout), never nothing."""
        if error.spent is None and (meter.payloads or error.generating):
            self._bill(request, error, self._so_far(request, meter))
        return error

    def _bill(self, request: ChatRequest, error: ApiError, usage: Usage) -> None:
        error.spent = (usage.total_tokens, self._cost(request, usage))
        stats = callstats.current()
        stats.model, stats.cost_usd = request.model, error.spent[1]
        stats.input_tokens, stats.output_tokens = usage.input_tokens, usage.output_tokens

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        """The answer as it comes: a TextDelta for each piece Bedrock sends,
        then StreamEnd with the completion (stop reason, usage, cost).

        Stop sequences are applied live: only the text that could still be the
        start of one is held back. Once one is found nothing more is sent, but
        Bedrock's stream is still read to its end, because Bedrock generates
        (and bills) those tokens and only the last chunk reports them. A
        stream that reaches its deadline ends cleanly with ``"length"`` and the
        tokens counted so far. Other failures raise, carrying those tokens;
        before the first chunk, even the deadline raises (the caller still
        answers an HTTP error then).

        Tools offered with ``tool_choice: auto`` (strict ones too, no JSON
        format) stream live through ``tool_stream.detect_calls``: text as it
        comes, calls as OpenAI's deltas once read, and calls that do not fit
        their schemas repaired before any of them is sent. Any other answer
        that must be read whole before any of it may be sent (a forced call,
        a JSON format: it may need a repair) is made as a plain call, under
        the same deadline, and sent as events once done."""
        stats = callstats.current()
        stats.model = request.model  # failures count under it too
        if not request.fallbacks:
            stats.served_model, stats.served_region = request.model, self.gateway.region
            yield from self._link_events(request)
            return

        def opened(link: Link) -> None:
            # Known before the response's headers go out (x-served-*).
            stats.served_model, stats.served_region = link.model, self._via(link).gateway.region

        def finish(link: Link, end: StreamEnd, spent: Spent) -> StreamEnd:
            served = self._as_served(request, link, end.completion, spent)
            stats.model, stats.served_model = served.model, served.served_model
            stats.served_region = served.served_region
            return StreamEnd(served)
        yield from first_stream(self._links(request),
                                lambda k: self._via(k)._link_events(_for_link(request, k)),
                                self._failed, finish, opened)

    def _link_events(self, request: ChatRequest) -> Iterator[StreamEvent]:
        events = self._events(request)
        yield from events if request.guardrail is None else self._guarded(request, events)

    def _guarded(self, request: ChatRequest, events: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
        """A guardrailed stream, its first delta held back until a second
        event shows the model is generating: a blocked prompt's stream is the
        guardrail's message and its end, and must raise ContentFilteredError
        (an HTTP 400, or the stream's error event) with nothing sent."""
        held: TextDelta | None = None
        generating = False
        for event in events:
            if isinstance(event, StreamEnd):
                self._unblocked(request, event.completion)  # raises for a blocked prompt
            elif not generating and held is None and isinstance(event, TextDelta):
                held = event
                continue
            generating = True
            if held is not None:
                yield held
                held = None
            yield event

    def _events(self, request: ChatRequest) -> Iterator[StreamEvent]:
        is_converse = get_model(request.model).api == "converse"
        if is_converse:
            if converse.streams_whole(request):
                yield from completion_events(self._priced(request, self._invoke(request), None))
            else:
                yield from self._converse_stream(request)
            return
        if not may_repair(request):
            yield from self._llama_stream(request)
        elif _calls_stream_live(request):
            repair = functools.partial(self._repair_streamed, request)
            yield from detect_calls(request, self._llama_stream(request), repair=repair)
        else:
            yield from completion_events(self._priced(request, self._invoke(request), None))

    def _llama_stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        """Bedrock's chunks as TextDeltas (stop sequences applied), then StreamEnd."""
        meter = _Meter()
        sent: list[str] = []
        held = ""
        stopped: str | None = None  # the stop sequence the stream was cut at
        try:
            for chunk in self._chunks(request, meter):
                text = chunk.text if (sent or held) else chunk.text.lstrip()
                if stopped or not text:
                    continue
                held += text
                if not sent:  # a leading <|python_tag|> is never content
                    held = without_python_tag(held)
                cut, matched = first_stop(held, request.stop)
                if cut >= 0:
                    held, stopped = held[:cut], matched
                    if held:
                        sent.append(held)
                        yield TextDelta(held)
                    held = ""
                    continue
                keep = held_back(held, request.stop + (() if sent else (PYTHON_TAG,)))
                if len(held) > keep:
                    piece, held = held[:len(held) - keep], held[len(held) - keep:]
                    sent.append(piece)
                    yield TextDelta(piece)
            reason = meter.reason or "stop"
        except DeadlineExceededError as error:
            if not meter.chunks:
                raise self._charged(request, error, meter) from error.__cause__
            log.warning("stream cut at its deadline after %s chunks: %s", meter.chunks, error)
            reason = "length"
        except ApiError as error:
            raise self._charged(request, error, meter) from error.__cause__
        if held:  # the stream ended: what was held back is no stop sequence
            sent.append(held)
            yield TextDelta(held)
        completion = Completion(model=request.model, text="".join(sent),
                                stop_reason="stop" if stopped else reason,
                                usage=self._so_far(request, meter), stop_sequence=stopped)
        yield StreamEnd(self._priced(request, completion, None))

    def _converse_stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        """ConverseStream, read through ``converse.stream_events`` (text and
        tool call pieces as they come; usage on the last event). As Llama's
        stream: cut at its deadline after the first delta, it ends with
        ``"length"`` and the usage so far; any other failure raises, billed."""
        meter = _Meter()
        texts: list[str] = []
        try:
            events = self._gateway.converse_stream(request.model, converse.build_request(request))
            for event in converse.stream_events(meter.watch(events), request):
                if isinstance(event, StreamEnd):
                    yield StreamEnd(self._priced(request, event.completion, None))
                    return
                meter.add_delta(event)
                if isinstance(event, TextDelta):
                    texts.append(event.text)
                yield event
        except DeadlineExceededError as error:
            if not meter.chunks:
                raise self._charged(request, error, meter) from error.__cause__
            log.warning("stream cut at its deadline after %s deltas: %s", meter.chunks, error)
        except ApiError as error:
            raise self._charged(request, error, meter) from error.__cause__
        completion = Completion(model=request.model, text="".join(texts), stop_reason="length",
                                usage=self._so_far(request, meter))
        yield StreamEnd(self._priced(request, completion, None))


def _capable(request: ChatRequest) -> bool:
    try:
        check_capabilities(request)
    except InvalidRequestError:
        return False
    return True


def _for_link(request: ChatRequest, link: Link) -> ChatRequest:
    """``request`` as one link makes it: that link's model, no chain of its own."""
    return dataclasses.replace(request, model=link.model, fallbacks=())


def _calls_stream_live(request: ChatRequest) -> bool:
    """Whether a tools request can stream as it comes: only calls, which are
    held back until read, may need a repair, never text already sent. (A
    strict tool's calls are checked and repaired as they are held back.)"""
    return (offers_tools(request) and request.tool_choice.mode == "auto"
            and request.response_format.type == "text")


def _sum(first: Usage, second: Usage) -> Usage:
    return Usage(first.input_tokens + second.input_tokens,
                 first.output_tokens + second.output_tokens,
                 first.cache_read_tokens + second.cache_read_tokens,
                 first.cache_write_tokens + second.cache_write_tokens)


# ConverseStream's deltas carry no token counts: what was received is counted
# at four characters a token (and at least one a delta) until its last event.
CHARS_PER_TOKEN = 4


@dataclass
class _Meter:
    """What a stream has said so far: how many payloads arrived at all; for
    Llama, token counts from every chunk (the prompt's on the first, a
    running total of generated ones on each); for Converse, the deltas
    received; and Bedrock's own final usage and stop reason from the last."""

    payloads: int = 0
    chunks: int = 0
    prompt_tokens: int | None = None
    generated_tokens: int = 0
    final: Usage | None = None
    reason: str | None = None
    chars: int = 0

    def watch(self, payloads: Iterable[T]) -> Iterator[T]:
        """``payloads``, counted as they arrive (before anything reads them)."""
        for payload in payloads:
            self.payloads += 1
            yield payload

    def add(self, chunk: RawChunk) -> None:
        self.chunks += 1
        if chunk.prompt_tokens is not None:
            self.prompt_tokens = chunk.prompt_tokens
        # Without a running total, each chunk is at least one token.
        self.generated_tokens = max(self.generated_tokens, self.chunks
                                    if chunk.generated_tokens is None else chunk.generated_tokens)
        self.final = chunk.usage or self.final
        # A guardrail's intervention stands, whatever a later chunk says.
        if self.reason != "content_filter":
            self.reason = chunk.stop_reason or self.reason

    def add_delta(self, event: StreamEvent) -> None:
        """A Converse text or tool call piece (whatever its kind)."""
        self.chunks += 1
        self.chars += len(getattr(event, "text", "") or "") + len(
            getattr(event, "arguments", "") or "")
        self.generated_tokens = max(self.chunks, math.ceil(self.chars / CHARS_PER_TOKEN))

    def usage(self) -> Usage:
        return self.final or Usage(self.prompt_tokens or 0, self.generated_tokens)


def held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of ``text`` could still begin a stop
    sequence (the longest proper prefix of one that ``text`` ends with)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
