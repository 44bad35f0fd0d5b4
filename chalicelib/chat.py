"""Value objects shared by every route: messages, requests, completions.

They are frozen so that a request, once validated, cannot change on its way to
Bedrock; the validation that builds them lives in ``validation.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A validated request, independent of the wire shape it came in."""

    messages: tuple[Message, ...]
    model: str
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Completion:
    """What the model answered, with the token counts Bedrock reported."""

    model: str
    text: str
    stop_reason: str
    usage: Usage
    cached: bool = False  # answered from the response cache: costs the tenant nothing
    cost_usd: Decimal | None = None  # None: no price configured for the model


@dataclass(frozen=True)
class StreamedCompletion:
    """A streamed answer: the text pieces in order, and the whole completion."""

    deltas: tuple[str, ...]
    completion: Completion


@dataclass(frozen=True)
class LimitStatus:
    """One rate limit's state, as the ``x-ratelimit-*`` headers report it."""

    name: str  # "requests" | "tokens" | "tokens-day"
    limit: int
    remaining: int
    reset_seconds: int
