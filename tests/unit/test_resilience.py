"""Fallback chains: links, which failures move on, the order links are tried
in, and what failed attempts spent (resilience/links.py, routing.py)."""
from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from chalicelib import deadline
from chalicelib.chat import Completion, StreamEnd, TextDelta, Usage
from chalicelib.config import ConfigError, load_settings
from chalicelib.errors import (ApiError, ContentFilteredError, ContextWindowExceededError,
                               DeadlineExceededError, InvalidRequestError, RateLimitExceededError,
                               UnusableAnswerError, UpstreamError, UpstreamMisconfiguredError,
                               UpstreamRejectedError, UpstreamThrottledError, UpstreamTimeoutError,
                               UpstreamUnavailableError)
from chalicelib.resilience.links import Link, chain, moves_on, parse_link
from chalicelib.resilience.routing import first_answer, first_stream, ordered

LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"


@pytest.mark.parametrize("text, link", [
    (LLAMA, Link(LLAMA)),
    (f"{LLAMA}@us-west-2", Link(LLAMA, "us-west-2")),
    (f" {NOVA}@eu-central-1 ", Link(NOVA, "eu-central-1")),
    (f"{NOVA}@us-gov-west-1", Link(NOVA, "us-gov-west-1")),
])
def test_links_parse(text: str, link: Link) -> None:
    assert parse_link(text) == link
    assert parse_link(str(link)) == link


@pytest.mark.parametrize("text", ["", "@us-west-2", f"{LLAMA}@", f"{LLAMA}@mars",
                                  f"{LLAMA}@US-WEST-2", f"{LLAMA}@us-west-2@eu-west-1"])
def test_bad_links_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="model@region"):
        parse_link(text)


def test_the_chain_starts_with_the_model_asked_for() -> None:
    assert chain(LLAMA, (f"{LLAMA}@us-west-2", NOVA)) == (
        Link(LLAMA), Link(LLAMA, "us-west-2"), Link(NOVA))


@pytest.mark.parametrize("error, moves", [
    (UpstreamThrottledError("slow down", retry_after=3), True),
    (UpstreamUnavailableError("503"), True),
    (UpstreamTimeoutError("read timeout"), True),
    (UpstreamError("stream broke"), True),
    (UpstreamMisconfiguredError("no access"), True),
    (DeadlineExceededError("deadline"), False),  # nothing left to try another with
    (InvalidRequestError("bad field"), False),
    (ContextWindowExceededError("too long"), False),
    (UpstreamRejectedError("Bedrock said 400"), False),
    (ContentFilteredError("blocked"), False),
    (RateLimitExceededError("budget", code="budget_exceeded", retry_after=60, status=()), False),
    (UnusableAnswerError("bad json"), False),
])
def test_which_failures_move_on(error: ApiError, moves: bool) -> None:
    assert moves_on(error) is moves


def test_cooling_links_go_last_in_order() -> None:
    links = (Link(LLAMA), Link(LLAMA, "us-west-2"), Link(NOVA))
    assert ordered(links, {LLAMA}) == [Link(LLAMA, "us-west-2"), Link(NOVA), Link(LLAMA)]
    assert ordered(links, set()) == list(links)
    # Every link cooling: all are still tried, in the chain's order.
    assert ordered(links, {str(k) for k in links}) == list(links)


def _answer(model: str) -> Completion:
    return Completion(model=model, text="hi", stop_reason="stop", usage=Usage(5, 1))


class Script:
    """Attempts that fail or answer as scripted, recording what was tried."""

    def __init__(self, **outcomes: Any) -> None:
        self.outcomes = outcomes
        self.tried: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def attempt(self, link: Link) -> Completion:
        self.tried.append(str(link))
        outcome = self.outcomes.get(link.region or link.model, "ok")
        if isinstance(outcome, ApiError):
            raise outcome
        return _answer(link.model)

    def fail(self, link: Link, error: ApiError) -> None:
        self.failed.append((str(link), error.code))


def spent_error(error: ApiError, tokens: int, cost: str) -> ApiError:
    error.spent = (tokens, Decimal(cost))
    return error


def test_the_first_link_that_answers_answers_with_what_failures_spent() -> None:
    script = Script(**{LLAMA: spent_error(UpstreamError("reset"), 40, "0.00001"),
                       "us-west-2": UpstreamThrottledError("slow", retry_after=1)})
    links = [Link(LLAMA), Link(LLAMA, "us-west-2"), Link(NOVA)]
    link, answer, spent = first_answer(links, script.attempt, script.fail)
    assert link == Link(NOVA) and answer.model == NOVA
    assert spent == (40, Decimal("0.00001"))
    assert script.tried == [LLAMA, f"{LLAMA}@us-west-2", NOVA]
    assert [code for _, code in script.failed] == ["upstream_error", "upstream_throttled"]


def test_a_failure_of_the_request_own_ends_the_chain_at_once() -> None:
    script = Script(**{LLAMA: spent_error(UpstreamError("reset"), 7, "0.000002"),
                       NOVA: ContextWindowExceededError("too long")})
    with pytest.raises(ContextWindowExceededError) as caught:
        first_answer([Link(LLAMA), Link(NOVA), Link(NOVA, "us-west-2")], script.attempt,
                     script.fail)
    assert script.tried == [LLAMA, NOVA]
    # What the first link generated is still billed, on the error that ends it.
    assert caught.value.spent == (7, Decimal("0.000002"))


def test_the_last_link_failure_is_the_answer_and_carries_all_spent() -> None:
    script = Script(**{LLAMA: spent_error(UpstreamError("a"), 3, "0.000001"),
                       NOVA: spent_error(UpstreamError("b"), 4, "0.000002")})
    with pytest.raises(UpstreamError) as caught:
        first_answer([Link(LLAMA), Link(NOVA)], script.attempt, script.fail)
    assert caught.value.spent == (7, Decimal("0.000003"))
    assert len(script.failed) == 2


def test_a_spent_deadline_ends_the_chain() -> None:
    script = Script(**{LLAMA: UpstreamTimeoutError("slow")})
    deadline.start(deadline.Deadline(0.0))
    try:
        with pytest.raises(UpstreamTimeoutError):
            first_answer([Link(LLAMA), Link(NOVA)], script.attempt, script.fail)
    finally:
        deadline.start(deadline.Deadline(float("inf")))
    assert script.tried == [LLAMA]


def _stream(model: str, fail_at: int | None, error: ApiError) -> Iterator[Any]:
    for index in range(3):
        if index == fail_at:
            raise error
        yield TextDelta(f"{model[:4]}{index}")
    yield StreamEnd(_answer(model))


def _finish(link: Link, end: StreamEnd, spent: Any) -> StreamEnd:
    return StreamEnd(Completion(model=LLAMA, text=end.completion.text, stop_reason="stop",
                                usage=end.completion.usage, served_model=link.model,
                                spent_before=spent))


def test_a_stream_moves_on_only_before_its_first_event() -> None:
    failed: list[str] = []
    opened: list[str] = []
    fails = {LLAMA: 0}

    def start(link: Link) -> Iterator[Any]:
        return _stream(link.model, fails.get(link.model), spent_error(UpstreamError("x"), 2, "0"))
    events = list(first_stream([Link(LLAMA), Link(NOVA)], start,
                               lambda k, e: failed.append(str(k)), _finish,
                               lambda k: opened.append(str(k))))
    assert failed == [LLAMA] and opened == [NOVA]
    assert [e.text for e in events[:-1]] == ["us.a0", "us.a1", "us.a2"]
    assert events[-1].completion.served_model == NOVA
    assert events[-1].completion.spent_before == (2, Decimal("0"))

    # After its first event, a broken stream is the request's failure.
    fails = {LLAMA: 1}
    failed.clear()
    with pytest.raises(UpstreamError) as caught:
        list(first_stream([Link(LLAMA), Link(NOVA)], start,
                          lambda k, e: failed.append(str(k)), _finish))
    assert failed == [] and caught.value.spent == (2, Decimal("0"))


def _env(fallbacks: str, allowed: str = f"{LLAMA},{NOVA}") -> dict[str, str]:
    return {"ALLOWED_MODELS": allowed, "FALLBACKS": fallbacks}


def test_fallbacks_configuration() -> None:
    settings = load_settings(_env(f'{{"{LLAMA}": ["{LLAMA}@us-west-2", " {NOVA}"]}}'))
    assert settings.fallbacks == {LLAMA: (f"{LLAMA}@us-west-2", NOVA)}
    assert load_settings(_env("")).fallbacks == {}


@pytest.mark.parametrize("raw, message", [
    ("[1]", "must be"),
    (f'{{"{LLAMA}": "{NOVA}"}}', "must be"),
    ("{nope", "must be"),
    (f'{{"{LLAMA}": ["us.anthropic.claude-haiku-4-5-20251001-v1:0"]}}', "is not in ALLOWED"),
    (f'{{"{NOVA}x": ["{LLAMA}"]}}', "is not in ALLOWED"),
    (f'{{"{LLAMA}": ["{NOVA}@moon"]}}', "model@region"),
    # A us. profile is called from US regions only (its geography's).
    (f'{{"{LLAMA}": ["{NOVA}@eu-west-1"]}}', "cannot be called"),
])
def test_bad_fallbacks_configuration(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_env(raw))


def test_a_chat_model_and_an_embedding_model_cannot_stand_in_for_each_other() -> None:
    with pytest.raises(ConfigError, match="cannot stand in"):
        load_settings(_env(f'{{"{LLAMA}": ["{TITAN}"]}}', f"{LLAMA},{TITAN}"))


def test_cooldown_settings() -> None:
    settings = load_settings({"COOLDOWN_FAILURES": "5", "COOLDOWN_STEPS_S": "10,20"})
    assert (settings.cooldown_failures, settings.cooldown_steps_s) == (5, (10, 20))
    for bad in ("0", "-1,3", "a", ","):
        with pytest.raises(ConfigError):
            load_settings({"COOLDOWN_STEPS_S": bad})
