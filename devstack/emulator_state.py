"""The emulator's mutable state: configuration, statistics, request log."""
from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from devstack.bedrock_wire import ERROR_STATUS
from devstack.guardrail_filter import GuardrailConfigError, parse_guardrails

MAX_RECORDED = 50_000


class ControlError(Exception):
    """A bad control-API request (answered 400)."""


@dataclass
class Config:
    latency_ms: int = 0
    tokens_per_second: float = 0.0  # 0: the whole answer at once
    max_concurrency: int = 0  # 0: unlimited
    fault_rate: dict[str, float] = field(default_factory=dict)
    fail_next: list[str | None] = field(default_factory=list)
    fail_in_stream: bool = False
    seed: int = 0
    # Faults of the connection itself, after a stream's first messages: a
    # pause of this long (a stall), the connection reset, or a message
    # corrupted on the way (its checksum no longer matches: botocore cannot
    # read it).
    stall_in_stream_ms: int = 0
    reset_in_stream: bool = False
    malformed_in_stream: bool = False
    # Exact texts the next invocations answer, in order: a string, or
    # {"text", "match"} taken only by an invocation whose request body holds
    # ``match`` (so other traffic on a shared emulator cannot take it). In the
    # snapshot that admit() hands an invocation: only the text it answers.
    respond_next: list[Any] = field(default_factory=list)
    # Bedrock guardrails by id (devstack/guardrail_filter.py).
    guardrails: dict[str, Any] = field(default_factory=dict)
    # Outages: every invocation of a model id (as sent: a profile's id for a
    # profile) or through a region (its SigV4 credential scope) fails with
    # the named error before its first byte, until cleared ({}).
    fail_models: dict[str, str] = field(default_factory=dict)
    fail_regions: dict[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "tokens_per_second": self.tokens_per_second,
                "max_concurrency": self.max_concurrency, "fault_rate": dict(self.fault_rate),
                "fail_next": list(self.fail_next), "fail_in_stream": self.fail_in_stream,
                "seed": self.seed, "stall_in_stream_ms": self.stall_in_stream_ms,
                "reset_in_stream": self.reset_in_stream,
                "malformed_in_stream": self.malformed_in_stream,
                "respond_next": [dict(v) if isinstance(v, dict) else v for v in self.respond_next],
                "guardrails": {k: dict(v) for k, v in self.guardrails.items()},
                "fail_models": dict(self.fail_models), "fail_regions": dict(self.fail_regions)}


def _number(key: str, value: Any, low: float, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ControlError(f"{key} must be {'an integer' if integer else 'a number'}")
    if value < low:
        raise ControlError(f"{key} must be >= {low}")
    return value


def _error_name(key: str, name: Any) -> str:
    if name not in ERROR_STATUS:
        raise ControlError(f"{key}: unknown error {name!r}; known: {sorted(ERROR_STATUS)}")
    return name


def _script_entry(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return (isinstance(value, dict) and set(value) == {"text", "match"}
            and all(isinstance(v, str) for v in value.values()))


def _take_script(script: list[Any], request_text: str) -> str | None:
    """The first scripted text this invocation may take (removed from the script)."""
    for index, entry in enumerate(script):
        if isinstance(entry, str):
            return str(script.pop(index))
        if entry["match"] in request_text:
            return str(script.pop(index)["text"])
    return None


def apply_config(config: Config, changes: Any) -> None:
    """Validate every change first, then apply them all (all or nothing)."""
    if not isinstance(changes, dict):
        raise ControlError("config must be a JSON object")
    unknown = set(changes) - set(Config().public())
    if unknown:
        raise ControlError(f"unknown config keys: {sorted(unknown)}")
    new: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("latency_ms", "max_concurrency", "seed", "stall_in_stream_ms"):
            new[key] = int(_number(key, value, 0, integer=True))
        elif key == "tokens_per_second":
            new[key] = float(_number(key, value, 0, integer=False))
        elif key in ("fail_in_stream", "reset_in_stream", "malformed_in_stream"):
            if not isinstance(value, bool):
                raise ControlError(f"{key} must be true or false")
            new[key] = value
        elif key == "fail_next":
            if not isinstance(value, list):
                raise ControlError("fail_next must be a list of error names (null: no error)")
            # null lets that invocation through: a later one fails (a repair call).
            new[key] = [None if v is None else _error_name(key, v) for v in value]
        elif key == "respond_next":
            if not isinstance(value, list) or not all(_script_entry(v) for v in value):
                raise ControlError('respond_next must be a list of texts to answer, each a string '
                                   'or {"text": ..., "match": ...} (strings)')
            new[key] = [dict(v) if isinstance(v, dict) else v for v in value]
        elif key == "guardrails":
            try:
                new[key] = parse_guardrails(value)
            except GuardrailConfigError as exc:
                raise ControlError(str(exc)) from None
        elif key in ("fail_models", "fail_regions"):
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                what = "model ids" if key == "fail_models" else "regions"
                raise ControlError(f"{key} must map {what} to error names ({{}}: none fail)")
            new[key] = {k: _error_name(f"{key}.{k}", v) for k, v in value.items()}
        elif key == "fault_rate":
            if not isinstance(value, dict):
                raise ControlError("fault_rate must map error names to probabilities")
            rates = {}
            for name, rate in value.items():
                rate = _number(f"fault_rate.{name}", rate, 0, integer=False)
                if rate > 1:
                    raise ControlError(f"fault_rate.{name} must be <= 1")
                rates[_error_name(key, name)] = float(rate)
            new[key] = rates
    for key, value in new.items():
        setattr(config, key, value)


class State:
    """Configuration, statistics and the request log, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.config = Config()
            self.rng = random.Random(0)
            self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED)
            self.invocations = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.throttled = 0
            self.errors: Counter[str] = Counter()
            # Bedrock's prompt cache: a prefix's key -> when it expires (monotonic).
            self.prompt_cache: dict[str, float] = {}

    def cache_prefixes(self, points: list[tuple[str, int]], minimum: int,
                       ttl_s: float = 300.0) -> tuple[int, int]:
        """(tokens read, tokens written) for a request's cache points, as
        Bedrock caches: a prefix of at least ``minimum`` tokens is written on
        first use and read within its TTL (each read renews it); the longest
        cached prefix is read and the rest up to the last point written."""
        now = time.monotonic()
        usable = sorted((tokens, key) for key, tokens in points if tokens >= minimum)
        if not usable:
            return 0, 0
        with self.lock:
            read = max((tokens for tokens, key in usable
                        if self.prompt_cache.get(key, 0.0) > now), default=0)
            for _, key in usable:
                self.prompt_cache[key] = now + ttl_s
        return read, usable[-1][0] - read

    def configure(self, changes: Any) -> dict[str, Any]:
        with self.lock:
            apply_config(self.config, changes)
            if isinstance(changes, dict) and "seed" in changes:
                self.rng = random.Random(self.config.seed)
            return self.config.public()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"invocations": self.invocations, "in_flight": self.in_flight,
                    "max_in_flight": self.max_in_flight, "throttled": self.throttled,
                    "errors": dict(self.errors)}

    def record(self, operation: str, model_id: str, body: Any,
               headers: dict[str, str] | None = None, region: str = "") -> None:
        """One invocation as it arrived: its body, the region it was signed
        for, and the Bedrock headers that change its meaning (InvokeModel's
        guardrail), when there are any."""
        with self.lock:
            self.invocations += 1
            entry = {"operation": operation, "modelId": model_id, "body": body}
            if region:
                entry["region"] = region
            if headers:
                entry["headers"] = headers
            self.requests.append(entry)

    def count_error(self, name: str) -> None:
        with self.lock:
            self.errors[name] += 1

    def admit(self, request_text: str = "", model_id: str = "",
              region: str = "") -> tuple[str | None, Config, bool]:
        """Decide an invocation's fate: an injected error or admission.

        Returns ``(error, config snapshot, admitted)``. Injected errors of ``fail_next``
        and ``fault_rate`` are admitted (a stream may fail after its first
        chunks); a throttle for ``max_concurrency`` is never admitted. An
        invocation that will answer takes the next ``respond_next`` text here,
        under the lock, so scripted texts go out in arrival order; the
        snapshot's ``respond_next`` holds that one text (or nothing). A text
        with a ``match`` goes only to a request whose body (``request_text``)
        holds it; plain texts go to any. A model or region in an outage
        (``fail_models``, ``fail_regions``) fails first, never admitted, and
        takes nothing from the other faults or the script.
        """
        with self.lock:
            cfg = Config(**self.config.public())
            outage = self.config.fail_models.get(model_id) or self.config.fail_regions.get(region)
            if outage:
                self.errors[outage] += 1
                return outage, cfg, False
            injected = self.config.fail_next.pop(0) if self.config.fail_next else None
            if injected is None:
                for name, rate in self.config.fault_rate.items():
                    if self.rng.random() < rate:
                        injected = name
                        break
            if injected is None and cfg.max_concurrency and self.in_flight >= cfg.max_concurrency:
                self.throttled += 1
                self.errors["ThrottlingException"] += 1
                return "ThrottlingException", cfg, False
            if injected is not None:
                self.errors[injected] += 1
            # A fault (even one that lets a stream start) takes no scripted text.
            taken = (_take_script(self.config.respond_next, request_text)
                     if injected is None else None)
            cfg.respond_next = [] if taken is None else [taken]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return injected, cfg, True

    def release(self) -> None:
        with self.lock:
            self.in_flight -= 1
