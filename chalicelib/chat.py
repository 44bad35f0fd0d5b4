"""Value objects shared by every route: messages, requests, completions.

They are frozen so that a request, once validated, cannot change on its way to
Bedrock; the validation that builds them lives in ``wire/validation.py``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Union

ROLES = ("system", "user", "assistant", "tool")


def new_call_id() -> str:
    """A tool call id in OpenAI's shape (``call_`` and 24 characters), random
    so that ids never repeat, cached answers included."""
    return "call_" + os.urandom(12).hex()


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: ``arguments`` is JSON text, as OpenAI carries it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Message:
    """One turn. ``tool`` turns carry a result for ``tool_call_id``; assistant
    turns may carry the calls they made (content may then be empty)."""

    role: str  # system | user | assistant | tool
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    # A prompt cache point after this message (Converse cachePoint), on the
    # models that cache prompts.
    cache_point: bool = False


@dataclass(frozen=True)
class Tool:
    """A function the model may call. ``parameters`` is the JSON Schema as
    canonical JSON text, so that a request stays hashable and frozen."""

    name: str
    description: str = ""
    parameters: str = '{"type":"object","properties":{}}'
    strict: bool = False


@dataclass(frozen=True)
class ToolChoice:
    mode: str = "auto"  # auto | none | required | function
    name: str | None = None  # the one function, when mode is "function"


@dataclass(frozen=True)
class ResponseFormat:
    type: str = "text"  # text | json_object | json_schema
    name: str | None = None
    schema: str | None = None  # canonical JSON text of the schema (json_schema only)
    strict: bool = False


@dataclass(frozen=True)
class Guardrail:
    """An Amazon Bedrock guardrail: its id (not its ARN) and version
    (``DRAFT`` or a number), as ``id:version`` in settings and key records."""

    id: str
    version: str

    def __str__(self) -> str:
        return f"{self.id}:{self.version}"


@dataclass(frozen=True)
class ChatRequest:
    """A validated request, independent of the wire shape it came in."""

    messages: tuple[Message, ...]
    model: str
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    tools_cache_point: bool = False  # a prompt cache point after the tool definitions
    # The caller's guardrail (its key's, its tenant's or the stage's), applied
    # by Bedrock to the prompt and the answer; part of the cache key too.
    guardrail: Guardrail | None = None
    # Where to go when this model fails (throttled, 5xx, timeouts): the stage's
    # fallback chain for it, links as "model" or "model@region" (resilience/).
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Usage:
    """Bedrock's counts. With prompt caching, ``input_tokens`` are the
    uncached ones; the cached prefix is read or written besides them, and all
    of them count against a key's token limits."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Every token of the prompt, cached or not: what OpenAI's APIs call
        ``prompt_tokens`` / ``input_tokens`` (their cached part is a detail of it)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


@dataclass(frozen=True)
class Completion:
    """What the model answered, with the token counts Bedrock reported."""

    model: str
    text: str
    stop_reason: str  # stop | length | tool_calls
    usage: Usage
    tool_calls: tuple[ToolCall, ...] = ()
    cached: bool = False  # answered from the response cache: costs the tenant nothing
    cost_usd: Decimal | None = None  # None: no price configured for the model
    # The stop sequence that ended the answer (``stop_reason`` "stop"), when known.
    stop_sequence: str | None = None
    # What answered, when a fallback link did rather than ``model`` (the model
    # asked for, which clients see): its model id and Bedrock region.
    served_model: str | None = None
    served_region: str | None = None
    # Tokens and dollars of failed attempts before the one that answered
    # (billed with it: billable()).
    spent_before: tuple[int, Decimal | None] = (0, None)


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text, sent to the client as it arrives."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of one tool call, as OpenAI streams them: the first delta of a
    call carries ``id`` and ``name``; later ones only ``arguments`` text."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class StreamEnd:
    """The last event of a stream: the whole completion (stop reason, usage, cost)."""

    completion: Completion


StreamEvent = Union[TextDelta, ToolCallDelta, StreamEnd]


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
