"""One structured log line and one EMF record per request or job.

The log line is JSON through the standard library's logging with Powertools'
JSON formatter; the metrics are CloudWatch Embedded Metric Format, which
Lambda's log stream turns into metrics with no API call. The EMF document is
written here, in the shape Powertools' EMF provider writes (tests check it
against the EMF specification): the provider validated every metric's name,
unit and value again on every request (~60 µs of CPU a request on the
development machine, bench/overhead.py), for a fixed set of metrics whose
units are constants.

Prompts and answers are never logged unless the stage sets ``LOG_PROMPTS``.
Metric dimensions are stage and model (plus Powertools' service), all of
bounded cardinality; tenant is in the log line only, never a dimension, since
tenants are unbounded.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from decimal import Decimal
from typing import IO, Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from chalicelib.observe.callstats import CallStats, Outcome

SERVICE = "llm-endpoint"
NAMESPACE = "LLMEndpoint"


FIELDS = ("kind", "request_id", "stage", "route", "tenant", "model", "status", "error_code",
          "latency_ms", "bedrock_ms", "input_tokens", "output_tokens", "cost_usd", "cache",
          "retries", "bedrock_throttles", "served_model", "served_region", "fallbacks")


class _EveryFieldFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, keeping our null fields: every line carries
    every field, so log queries see one schema. Powertools' own empty keys
    (exception, xray_trace_id, ...) are still dropped."""

    @staticmethod
    def _strip_none_records(records: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in records.items() if v is not None or k in FIELDS}


def _number(value: Decimal | None) -> float | None:
    return None if value is None else round(float(value), 8)


class Telemetry:
    def __init__(self, stage: str, log_prompts: bool = False, stream: IO[str] | None = None) -> None:
        self._stage = stage
        self._log_prompts = log_prompts
        self._stream = stream or sys.stdout
        handler = logging.StreamHandler(self._stream)
        handler.setFormatter(_EveryFieldFormatter(service=SERVICE, utc=True))
        # A logger of this instance's own, so tests' streams never cross.
        self._logger = logging.getLogger(f"{SERVICE}.telemetry.{id(self)}")
        self._logger.handlers = [handler]
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False

    def fields(self, outcome: Outcome, stats: CallStats) -> dict[str, Any]:
        fields: dict[str, Any] = {  # the keys of FIELDS
            "kind": outcome.kind, "request_id": outcome.request_id, "stage": self._stage,
            "route": outcome.route, "tenant": outcome.tenant, "model": stats.model,
            "status": outcome.status, "error_code": outcome.error_code,
            "latency_ms": round(outcome.latency_ms, 2), "bedrock_ms": round(stats.bedrock_ms, 2),
            "input_tokens": stats.input_tokens, "output_tokens": stats.output_tokens,
            "cost_usd": _number(stats.cost_usd), "cache": stats.cache,
            "retries": stats.retries, "bedrock_throttles": stats.throttles,
            # What answered on a fallback chain (None: the model asked for,
            # in the function's region) and how many links failed first.
            "served_model": stats.served_model, "served_region": stats.served_region,
            "fallbacks": stats.fallbacks,
        }
        if self._log_prompts:
            fields["prompt"] = [{"role": m.role, "content": m.content} for m in stats.messages]
            fields["answer"] = stats.answer
        return fields

    def record(self, outcome: Outcome, stats: CallStats) -> None:
        self._logger.info(outcome.kind, extra=self.fields(outcome, stats))
        for blob in self.emf(outcome, stats):
            self._stream.write(json.dumps(blob, separators=(",", ":")) + "\n")
        self._stream.flush()

    def _record(self, dimensions: dict[str, str],
                metrics: list[tuple[str, str, float]]) -> dict[str, Any]:
        """One EMF document: its dimensions, then each metric's value."""
        dimensions = {**dimensions, "service": SERVICE}
        record: dict[str, Any] = {"_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [list(dimensions)],
                                   "Metrics": [{"Name": n, "Unit": u} for n, u, _ in metrics]}]}}
        record.update(dimensions)
        record.update({name: [float(value)] for name, _, value in metrics})
        return record

    def emf(self, outcome: Outcome, stats: CallStats) -> list[dict[str, Any]]:
        """The EMF records: one per request, plus one for an error by its code."""
        model = stats.model or "none"
        metrics: list[tuple[str, str, float]] = [
            ("Requests", "Count", 1), ("Latency", "Milliseconds", outcome.latency_ms)]
        if stats.model is not None:
            metrics += [("BedrockLatency", "Milliseconds", stats.bedrock_ms),
                        ("InputTokens", "Count", stats.input_tokens),
                        ("OutputTokens", "Count", stats.output_tokens)]
            if stats.cost_usd is not None:
                metrics.append(("CostUSD", "None", float(stats.cost_usd)))
        metrics += [("BedrockThrottles", "Count", stats.throttles),
                    ("Retries", "Count", stats.retries), ("Fallbacks", "Count", stats.fallbacks)]
        if stats.cache is not None:
            metrics.append(("CacheHits", "Count", int(stats.cache == "hit")))
        server_error = isinstance(outcome.status, int) and outcome.status >= 500
        metrics.append(("ServerErrors", "Count", int(server_error)))
        records = [self._record({"stage": self._stage, "model": model}, metrics)]
        if stats.fallbacks or (stats.served_model or stats.model) != stats.model:
            # Per what answered, so a dashboard shows the traffic a fallback took.
            records.append(self._record(
                {"stage": self._stage, "served_model": stats.served_model or "none",
                 "served_region": stats.served_region or "none"}, [("ServedRequests", "Count", 1)]))
        if outcome.error_code:
            records.append(self._record({"stage": self._stage, "error_code": outcome.error_code},
                                        [("Errors", "Count", 1)]))
        return records

    def cooldown_opened(self, link: str, seconds: int) -> None:
        """One EMF record when this process opens a link's cooldown (the
        conditional write makes it one per cooldown, whichever Lambda wins);
        the stage's CooldownAlarm watches it."""
        self._logger.warning("cooldown_opened", extra={"link": link, "seconds": seconds})
        self._stream.write(json.dumps(self._record(
            {"stage": self._stage, "link": link}, [("CooldownOpened", "Count", 1)]),
            separators=(",", ":")) + "\n")
        self._stream.flush()
