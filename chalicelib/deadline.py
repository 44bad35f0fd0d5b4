"""The time a model call may take: one overall deadline per request or job.

botocore's read timeout applies to each read, not to the call: a stream whose
chunks each arrive just inside it can run past API Gateway's 29 s and past the
Lambda's own timeout, and when Lambda kills the process nothing settles the
key's reservation. So every model call runs under a deadline, set once when a
request (``for_api``) or a job (``for_worker``) starts and kept in a context
variable, as callstats are: the threaded local server's requests never mix,
and nothing needs threading through the service's signatures. The Bedrock
gateway reads it before each attempt and each read of a stream.

Checking answers against JSON Schemas gets an allowance of its own within
the deadline (``validation``): ``VALIDATION_BUDGET_S`` for all the checks of
one request or job, first answer, repair and streamed calls together, so that
a hostile schema cannot spend the time the model call and the settling need.
"""
from __future__ import annotations

import math
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# API Gateway REST's integration timeout: the answer must have started by then.
API_GATEWAY_LIMIT_S = 29.0
# Kept back for what follows the model call: settling usage (up to two
# DynamoDB writes), the log line and the answer itself.
API_MARGIN_S = 2.0
# A job settles and writes its result and job record: a few writes more.
WORKER_MARGIN_S = 5.0
# All the JSON-Schema checks of one request or job (microseconds for real
# schemas; a 256 MB Lambda has a sixth of a vCPU, so this is seconds there).
VALIDATION_BUDGET_S = 2.0


@dataclass(frozen=True)
class Deadline:
    """A point on ``time.monotonic()``'s clock; ``math.inf`` is no deadline."""

    at: float = math.inf

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def bound(self, timeout: float) -> float:
        """``timeout``, shortened to what is left (never below a millisecond,
        which a socket would take as "non-blocking")."""
        return max(0.001, min(timeout, self.remaining()))


NONE = Deadline()


def remaining_s(context: Any) -> float | None:
    """Seconds the Lambda has left, from its context (None without one)."""
    get = getattr(context, "get_remaining_time_in_millis", None)
    return None if get is None else float(get()) / 1000


def for_api(context: Any, now: float | None = None) -> Deadline:
    """The sooner of the Lambda's remaining time and API Gateway's limit,
    less the margin for settling and answering."""
    budget = API_GATEWAY_LIMIT_S
    left = remaining_s(context)
    if left is not None:
        budget = min(budget, left)
    return Deadline((time.monotonic() if now is None else now) + budget - API_MARGIN_S)


def for_worker(context: Any, fallback_s: float, now: float | None = None) -> Deadline:
    """A job follows its own Lambda's timeout (``fallback_s`` without a context)."""
    left = remaining_s(context)
    budget = fallback_s if left is None else left
    return Deadline((time.monotonic() if now is None else now) + budget - WORKER_MARGIN_S)


class Allowance:
    """Seconds a kind of work may still take in one request or job."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    def spend(self, seconds: float) -> None:
        self.left -= seconds


_current: ContextVar[Deadline] = ContextVar("deadline", default=NONE)
_validation: ContextVar[Allowance | None] = ContextVar("validation", default=None)


def start(deadline: Deadline) -> Deadline:
    """Begin a request's or job's deadline and its validation allowance
    (``NONE``: outside one, as scripts and tests are)."""
    _current.set(deadline)
    _validation.set(None if deadline is NONE else Allowance(VALIDATION_BUDGET_S))
    return deadline


def current() -> Deadline:
    """This request's or job's deadline; none outside one (scripts, tests)."""
    return _current.get()


def validation() -> Allowance:
    """What is left of this request's or job's validation allowance (outside
    one, each check gets the whole of it)."""
    return _validation.get() or Allowance(VALIDATION_BUDGET_S)
