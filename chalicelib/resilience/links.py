"""A fallback chain's links, and which failures move a request to the next one.

A stage names, per model, the links to try after it (``FALLBACKS``)::

    {"us.meta.llama3-1-8b-instruct-v1:0":
        ["us.meta.llama3-1-8b-instruct-v1:0@us-west-2", "us.amazon.nova-lite-v1:0"]}

A link is a model id, optionally ``@region``: the same model through
another Bedrock region's endpoint, or another model the operator chose. The
request's own model, in the function's own region, is always the first link.

A request moves on only for failures of the service, after that link's own
retries: throttling, Bedrock's 5xx, a broken stream, an answer not waited
for (read timeout), an unreachable or misconfigured endpoint. Never for
anything the request itself caused (4xx: validation, context length, a
content filter, a budget or a limit), never once its deadline is spent, and a
stream never after its first byte (the client has part of an answer).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.errors import (ApiError, DeadlineExceededError, UpstreamError,
                               UpstreamMisconfiguredError, UpstreamThrottledError,
                               UpstreamTimeoutError, UpstreamUnavailableError)

REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-[0-9]", re.ASCII)
# The failures that move a request on (UpstreamError covers 5xx, broken and
# malformed streams; its subclasses are listed for clarity).
MOVES_ON = (UpstreamThrottledError, UpstreamTimeoutError, UpstreamUnavailableError,
            UpstreamMisconfiguredError, UpstreamError)


@dataclass(frozen=True)
class Link:
    model: str
    region: str | None = None  # None: the function's own region

    def __str__(self) -> str:
        return self.model if self.region is None else f"{self.model}@{self.region}"


def parse_link(text: str) -> Link:
    """``model`` or ``model@region``; ValueError naming the shape."""
    model, at, region = text.strip().partition("@")
    if not model or (at and REGION.fullmatch(region) is None):
        raise ValueError(f"a link is 'model' or 'model@region' (region like us-west-2), "
                         f"got {text[:80]!r}")
    return Link(model, region or None)


def chain(model: str, fallbacks: tuple[str, ...]) -> tuple[Link, ...]:
    """The links a request for ``model`` tries, in order."""
    return (Link(model), *(parse_link(f) for f in fallbacks))


def moves_on(error: ApiError) -> bool:
    """Whether ``error`` sends a request to the next link."""
    return isinstance(error, MOVES_ON) and not isinstance(error, DeadlineExceededError)
