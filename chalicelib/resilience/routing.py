"""Trying a request's links in order (links.py says which failures move on).

Pure control flow over two callables, so the one completion path
(completion.py) keeps its limits, cache, deadline, billing and telemetry:
``attempt(link)`` makes the whole call through one link (its own retries
included) and ``failed(link, error)`` records a failure (cooldowns.py).
Links cooling down go last, not away. What failed attempts spent (tokens
Bedrock generated before a failure) is carried on: onto the answer that
follows (``Completion.spent_before``), or onto the error that ends the chain,
so nothing generated goes unbilled.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

from chalicelib import deadline
from chalicelib.chat import StreamEnd, StreamEvent
from chalicelib.errors import ApiError
from chalicelib.resilience.links import Link, moves_on

Spent = tuple[int, Decimal | None]


def ordered(links: tuple[Link, ...], cooling: set[str]) -> list[Link]:
    """Healthy links first, in the chain's order, then those cooling down."""
    return ([k for k in links if str(k) not in cooling]
            + [k for k in links if str(k) in cooling])


def _add(spent: Spent, more: Spent | None) -> Spent:
    if more is None:
        return spent
    cost = None if spent[1] is None and more[1] is None else (spent[1] or 0) + (more[1] or 0)
    return spent[0] + more[0], cost


def _give_up(error: ApiError, spent: Spent) -> ApiError:
    """The chain's last error, carrying everything the chain generated."""
    error.spent = spent if spent[0] or spent[1] else error.spent
    return error


def _moved_on(error: ApiError, link: Link, spent: Spent, last: bool,
              failed: Callable[[Link, ApiError], None]) -> Spent:
    """What the chain has spent once ``link`` failed with ``error``, when the
    request goes on to the next link; otherwise ``error`` is raised, carrying
    everything the chain generated."""
    if not moves_on(error):
        raise _give_up(error, _add(spent, error.spent)) from error.__cause__
    failed(link, error)
    spent = _add(spent, error.spent)
    if last or deadline.current().expired:
        raise _give_up(error, spent) from error.__cause__
    return spent


def first_answer(links: list[Link], attempt: Callable[[Link], object],
                 failed: Callable[[Link, ApiError], None]) -> tuple[Link, object, Spent]:
    """The first link that answers, its answer, and what the failed ones spent."""
    spent: Spent = (0, None)
    for index, link in enumerate(links):
        try:
            return link, attempt(link), spent
        except ApiError as error:
            spent = _moved_on(error, link, spent, index == len(links) - 1, failed)
    raise AssertionError("a chain has at least one link")


def first_stream(links: list[Link], start: Callable[[Link], Iterator[StreamEvent]],
                 failed: Callable[[Link, ApiError], None],
                 finish: Callable[[Link, StreamEnd, Spent], StreamEnd],
                 opened: Callable[[Link], None] = lambda link: None) -> Iterator[StreamEvent]:
    """The events of the first link whose stream opens with an event
    (``opened(link)`` once it has); a stream that fails after its first event
    is not taken over (its client has part of an answer): that failure is the
    request's."""
    spent: Spent = (0, None)
    for index, link in enumerate(links):
        events = start(link)
        try:
            first = next(events)
        except StopIteration:
            return
        except ApiError as error:
            spent = _moved_on(error, link, spent, index == len(links) - 1, failed)
            continue
        opened(link)
        try:
            for event in _chained(first, events):
                yield finish(link, event, spent) if isinstance(event, StreamEnd) else event
        except ApiError as error:
            raise _give_up(error, _add(spent, error.spent)) from error.__cause__
        return


def _chained(first: StreamEvent, rest: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
    yield first
    yield from rest
