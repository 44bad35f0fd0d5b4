"""A key's own usage: its limits, today's requests, tokens and cost, the last 7 UTC days.

Nothing new is counted for this: the limiter already keeps one item per key
and UTC day (``limits.day_pk``) holding the day's requests, tokens and cost,
kept 40 days. This reads the last seven with one BatchGetItem, keyed by the
caller's own key id, which comes from the authorizer: a caller can only ever
read its own key's items. ``render_usage`` is the pure translation to JSON.

A limited key's tokens include requests still in flight at their reserved
worst case (they are settled to what Bedrock reported when they end), so
today's figure is what the daily budget sees. The same read takes the key's
month item (``limits.month_pk``) for a month budget; ``budgets`` says what
each dollar budget has left (in-flight requests at their worst case).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.tenancy.auth import Caller
from chalicelib.errors import LimiterUnavailableError
from chalicelib.tenancy.keys import LIMIT_NAMES, MICROS, USD_LIMITS
from chalicelib.tenancy.limits import DAY, day_pk, month_pk, tenant_owner, utc_month

log = logging.getLogger(__name__)

DAYS = 7
# BatchGetItem may hand back keys unread under load; ask again a few times.
BATCH_ATTEMPTS = 4


@dataclass(frozen=True)
class DayUsage:
    day: int  # days since the epoch, UTC
    requests: int = 0
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    usd_micros: int = 0  # what the day budget counts (in-flight requests at their worst case)

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.day * DAY, timezone.utc).strftime("%Y-%m-%d")


def last_days(now: float, count: int = DAYS) -> list[int]:
    """The UTC days ending today, oldest first."""
    today = int(now // DAY)
    return list(range(today - count + 1, today + 1))


def day_usage(day: int, item: Mapping[str, Any] | None) -> DayUsage:
    """One day from its usage item (None: nothing was used that day)."""
    if not item:
        return DayUsage(day)
    # A settle can run while a reservation of the same key is undone: never
    # show a transiently negative count.
    return DayUsage(day, requests=max(0, int(item.get("requests", {}).get("N", 0))),
                    tokens=max(0, int(item.get("tokens", {}).get("N", 0))),
                    cost_usd=max(Decimal(0), Decimal(item.get("cost_usd", {}).get("N", "0"))),
                    usd_micros=max(0, int(item.get("usd", {}).get("N", 0))))


class UsageReader:
    """Reads the usage table. ``client`` is a low-level DynamoDB client."""

    def __init__(self, client: Any, table: str, clock: Callable[[], float],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._sleep = sleep

    def last_week(self, key_id: str) -> list[DayUsage]:
        return self.week_and_month(key_id)[0]

    def week_and_month(self, key_id: str, tenant: str | None = None
                       ) -> tuple[list[DayUsage], int, tuple[int, int]]:
        """The last seven days, the month's spend in micro-dollars (0 when
        the key has no month item), and the tenant's day and month spend when
        ``tenant`` is named (its limits are shared), in one BatchGetItem."""
        now = self._clock()
        days = last_days(now)
        by_pk = {day_pk(key_id, day): day for day in days}
        label = utc_month(now)[0]
        month = month_pk(key_id, label)
        shared = ((day_pk(tenant_owner(tenant), days[-1]), month_pk(tenant_owner(tenant), label))
                  if tenant is not None else ())
        items: dict[str, Mapping[str, Any]] = {}
        request: dict[str, Any] = {self._table: {
            "Keys": [{"pk": {"S": pk}} for pk in (*by_pk, month, *shared)],
            "ConsistentRead": True}}
        try:
            for attempt in range(BATCH_ATTEMPTS):
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    items[item["pk"]["S"]] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep(0.05 * 2 ** attempt)
        except (ClientError, BotoCoreError) as exc:
            log.error("usage unavailable: %s", exc)
            raise LimiterUnavailableError("Usage cannot be read right now; retry shortly.") from exc
        if request:
            raise LimiterUnavailableError("Usage cannot be read right now; retry shortly.")

        def usd(pk: str) -> int:
            return max(0, int(items.get(pk, {}).get("usd", {}).get("N", 0)))
        team = (usd(shared[0]), usd(shared[1])) if shared else (0, 0)
        return [day_usage(day, items.get(pk)) for pk, day in by_pk.items()], usd(month), team


def _day_json(usage: DayUsage) -> dict[str, Any]:
    return {"date": usage.date, "requests": usage.requests, "tokens": usage.tokens,
            "cost_usd": round(float(usage.cost_usd), 8)}


def _dollars(micros: int) -> float:
    return float(Decimal(micros) / MICROS)


def _limit_json(name: str, value: Any) -> Any:
    return float(value) if value is not None and name in USD_LIMITS else value


def _budget(amount: Decimal | None, spent: int) -> dict[str, float] | None:
    if amount is None:
        return None
    limit = int(amount * MICROS)
    return {"limit_usd": _dollars(limit), "spent_usd": _dollars(spent),
            "remaining_usd": _dollars(max(0, limit - spent))}


def render_usage(caller: Caller, days: list[DayUsage], month_micros: int = 0,
                 tenant_micros: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """``GET /usage``: the key, its limits (null = unlimited), its dollar
    budgets' state (null: no such budget) and its tenant's, today, the last 7 days."""
    limits, shared = caller.limits, caller.tenant_limits
    return {
        "object": "usage",
        "tenant": caller.tenant,
        "key_id": caller.key_id,
        "limits": {name: _limit_json(name, getattr(limits, name)) for name in LIMIT_NAMES},
        "budgets": {"day": _budget(limits.usd_per_day, days[-1].usd_micros),
                    "month": _budget(limits.usd_per_month, month_micros)},
        "tenant_limits": {name: _limit_json(name, getattr(shared, name)) for name in LIMIT_NAMES},
        "tenant_budgets": {"day": _budget(shared.usd_per_day, tenant_micros[0]),
                           "month": _budget(shared.usd_per_month, tenant_micros[1])},
        "today": _day_json(days[-1]),
        "days": [_day_json(day) for day in days],
    }
