"""Pure parts of the playground and of GET /usage: table-driven."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chalicelib.tenancy.auth import Caller
from chalicelib.tenancy.keys import Limits
from chalicelib.tenancy.limits import DAY
from chalicelib.web.playground import slash_redirect
from chalicelib.tenancy.usage import DayUsage, day_usage, last_days, render_usage


@pytest.mark.parametrize("path, location", [
    ("/", None), ("", None), ("/dev/", None), ("/dev", "dev/"), ("/base/prod", "prod/")])
def test_slash_redirect(path: str, location: str | None) -> None:
    assert slash_redirect(path) == location


@pytest.mark.parametrize("now, days", [
    (0.0, list(range(-6, 1))),
    (DAY - 0.001, list(range(-6, 1))),
    (DAY * 20_000 + 5, list(range(19_994, 20_001))),
])
def test_last_days_end_today_oldest_first(now: float, days: list[int]) -> None:
    assert last_days(now) == days


@pytest.mark.parametrize("item, expected", [
    (None, DayUsage(1)),
    ({}, DayUsage(1)),
    ({"requests": {"N": "3"}, "tokens": {"N": "120"}, "cost_usd": {"N": "0.0000264"}},
     DayUsage(1, 3, 120, Decimal("0.0000264"))),
    ({"requests": {"N": "2"}, "tokens": {"N": "50"}}, DayUsage(1, 2, 50, Decimal(0))),
    # a settle racing a release can leave a moment's negative count: shown as 0
    ({"requests": {"N": "0"}, "tokens": {"N": "-7"}}, DayUsage(1, 0, 0, Decimal(0))),
])
def test_day_usage_from_its_item(item: dict[str, Any] | None, expected: DayUsage) -> None:
    assert day_usage(1, item) == expected


def test_render_usage() -> None:
    caller = Caller("acme", "key_0123", Limits(requests_per_minute=60, tokens_per_day=1000))
    # day 20_000 since the epoch is 2024-10-04
    days = [DayUsage(19_994 + i) for i in range(6)] + [DayUsage(20_000, 4, 400, Decimal("0.0001"))]
    body = render_usage(caller, days)
    today = {"date": "2024-10-04", "requests": 4, "tokens": 400, "cost_usd": 0.0001}
    assert body == {
        "object": "usage", "tenant": "acme", "key_id": "key_0123",
        "limits": {"requests_per_minute": 60, "tokens_per_minute": None, "tokens_per_day": 1000,
                   "usd_per_day": None, "usd_per_month": None},
        "budgets": {"day": None, "month": None},
        "tenant_limits": {"requests_per_minute": None, "tokens_per_minute": None,
                          "tokens_per_day": None, "usd_per_day": None, "usd_per_month": None},
        "tenant_budgets": {"day": None, "month": None},
        "today": today,
        "days": [{"date": date, "requests": 0, "tokens": 0, "cost_usd": 0.0} for date in (
            "2024-09-28", "2024-09-29", "2024-09-30", "2024-10-01", "2024-10-02", "2024-10-03")]
        + [today],
    }


def test_render_usage_with_dollar_budgets() -> None:
    caller = Caller("acme", "key_0123", Limits(usd_per_day=Decimal("1.5"),
                                               usd_per_month=Decimal("5")),
                    tenant_limits=Limits(usd_per_month=Decimal("20")))
    days = [DayUsage(19_994 + i) for i in range(6)] + [DayUsage(20_000, 1, 9, Decimal("0.25"),
                                                                usd_micros=250_001)]
    body = render_usage(caller, days, month_micros=4_900_000, tenant_micros=(0, 19_000_000))
    assert body["tenant_limits"]["usd_per_month"] == 20.0
    assert body["tenant_budgets"] == {"day": None, "month": {
        "limit_usd": 20.0, "spent_usd": 19.0, "remaining_usd": 1.0}}
    assert body["limits"]["usd_per_day"] == 1.5 and body["limits"]["usd_per_month"] == 5.0
    assert body["budgets"] == {
        "day": {"limit_usd": 1.5, "spent_usd": 0.250001, "remaining_usd": 1.249999},
        "month": {"limit_usd": 5.0, "spent_usd": 4.9, "remaining_usd": 0.1}}
