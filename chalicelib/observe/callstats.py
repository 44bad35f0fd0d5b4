"""What one request or job did on its way through: filled in by the layers
that know (the Bedrock gateway, its retry hook, the service), read once at the
end by telemetry, with the Outcome of the request. Both live here, free of
Powertools, so that importing the app (the authorizer's Lambda does) does not
load the telemetry libraries. A context variable, so that concurrent requests of the
threaded local server, and Lambda's one-at-a-time ones, never mix."""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal

from chalicelib.chat import Message


@dataclass
class CallStats:
    bedrock_ms: float = 0.0
    retries: int = 0
    throttles: int = 0
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    cache: str | None = None  # "hit" | "miss" | None (not cacheable)
    # What answered, on a fallback chain (resilience/): its model and region,
    # and how many links failed before it.
    served_model: str | None = None
    served_region: str | None = None
    fallbacks: int = 0
    messages: tuple[Message, ...] = field(default_factory=tuple)
    answer: str | None = None


_current: ContextVar[CallStats | None] = ContextVar("call_stats", default=None)


def begin() -> CallStats:
    stats = CallStats()
    _current.set(stats)
    return stats


def current() -> CallStats:
    """This call's stats; a throwaway one outside a request (tests, scripts)."""
    stats = _current.get()
    return stats if stats is not None else CallStats()


@dataclass(frozen=True)
class Outcome:
    """How a request or job ended, beyond what CallStats gathered."""

    kind: str  # "request" | "job"
    request_id: str
    route: str
    tenant: str | None
    status: int | str  # an HTTP status, or a job's final state
    error_code: str | None
    latency_ms: float
