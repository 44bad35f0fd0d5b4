"""A stream of events that holds its key's reservation until it ends.

The reservation is settled exactly once, whatever happens:

- the stream ends: to the usage Bedrock reported (or, cut at the deadline, to
  the tokens counted from the chunks received);
- Bedrock fails mid-stream: to the tokens generated before the failure;
- the client hangs up (the consumer closes the iterator): the rest of
  Bedrock's stream is still read, unsent, to its end or the deadline, and
  settled to Bedrock's own count. Bedrock bills a generation whether or not
  anyone reads it, so hanging up earns no free tokens.

``open`` admits the reservation and waits for the first event before anything
is sent, so that every error up to Bedrock's first chunk is still an HTTP
error with a status.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator

from chalicelib.tenancy.auth import Caller
from chalicelib.chat import Completion, StreamEnd, StreamEvent
from chalicelib.completion import billable
from chalicelib.errors import ApiError
from chalicelib.tenancy.limits import Limiter, Reservation, Size

log = logging.getLogger(__name__)


class LiveStream:
    def __init__(self, limiter: Limiter, reservation: Reservation, first: StreamEvent,
                 rest: Iterator[StreamEvent]) -> None:
        self.reservation = reservation
        self.completion: Completion | None = None
        self.error: ApiError | None = None
        self.abandoned = False
        self._limiter = limiter
        self._first = first
        self._rest = rest
        self._settled = False

    @classmethod
    def open(cls, limiter: Limiter, caller: Caller, tokens: Size,
             start: Callable[[], Iterator[StreamEvent]], model: str = "") -> LiveStream:
        reservation = limiter.admit(caller, tokens, model)
        try:
            events = start()
            first = next(events)
        except BaseException as exc:
            limiter.settle_failure(reservation, exc)
            raise
        return cls(limiter, reservation, first, events)

    def _end(self, event: StreamEvent) -> None:
        if isinstance(event, StreamEnd) and not self._settled:
            self._settled = True
            self.completion = event.completion
            self._limiter.settle(self.reservation, *billable(event.completion))

    def _fail(self, exc: BaseException) -> None:
        if not self._settled:
            self._settled = True
            self._limiter.settle_failure(self.reservation, exc)

    def events(self) -> Iterator[StreamEvent]:
        """The events, to be consumed once; closing it early drains Bedrock."""
        try:
            # chain, not a generator with ``yield from``: a generator dropped
            # here would close Bedrock's stream before it could be drained.
            for event in itertools.chain((self._first,), self._rest):
                self._end(event)
                yield event
        except ApiError as error:
            self.error = error
            self._fail(error)
            raise
        except BaseException as exc:
            if isinstance(exc, GeneratorExit):
                if not self._settled:  # the client hung up mid-stream
                    self.abandoned = True
                    self._drain()
            else:
                self._fail(exc)
            raise
        finally:
            if not self._settled:  # the consumer stopped between events
                self.abandoned = True
                self._drain()

    def _drain(self) -> None:
        """Read what is left of Bedrock's stream (bounded by the deadline) to
        learn what it generated, then settle."""
        try:
            for event in self._rest:
                self._end(event)
            if not self._settled:  # ended without its last event: nothing to bill
                self._fail(RuntimeError("stream ended without its end"))
        except BaseException as exc:
            if isinstance(exc, ApiError):
                self.error = exc
            self._fail(exc)
            if not isinstance(exc, Exception):
                raise
            log.warning("abandoned stream failed while draining: %s", exc)
