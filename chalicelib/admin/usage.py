"""``GET /admin/usage``: requests, tokens and dollars per tenant, key, model or day.

It reads the usage table's day items (one per key and UTC day, which the
limiter writes; kept 40 days), with a scan: an operator's view, never on a
request's path. Per model it sums the model counters the settle adds to the
key's day item (``m#<model>#n|t|c``: requests answered or billed, tokens,
dollars); usage settled before those counters existed (2026-12-04) has no
model, and a request that failed before Bedrock generated anything counts in
the key's requests but no model's.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from chalicelib.errors import InvalidRequestError
from chalicelib.tenancy.keys import KeyStore
from chalicelib.tenancy.limits import DAY

GROUPS = ("tenant", "key", "model", "day")
COUNTERS = {"n": "requests", "t": "tokens", "c": "cost_usd"}
MAX_DAYS = 31


def _day(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        moment = datetime.strptime(str(value), "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidRequestError(f"'{name}' must be a UTC day as YYYY-MM-DD.", param=name) from None
    return int(moment.timestamp()) // DAY


def _date(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, timezone.utc).strftime("%Y-%m-%d")


def parse_query(query: dict[str, str], now: float) -> tuple[int, int, str, str]:
    """(first day, last day, group_by, format) from ``from``, ``to``,
    ``group_by`` (tenant, key, model or day) and ``format`` (json or csv)."""
    unknown = sorted(set(query) - {"from", "to", "group_by", "format"})
    if unknown:
        raise InvalidRequestError(f"Unknown query parameter '{unknown[0]}'.", param=unknown[0])
    today = int(now // DAY)
    last = _day(query.get("to"), "to", today)
    first = _day(query.get("from"), "from", last - 29)
    if first > last:
        raise InvalidRequestError("'from' must not be after 'to'.", param="from")
    if last - first + 1 > MAX_DAYS:
        raise InvalidRequestError(f"At most {MAX_DAYS} days at a time.", param="from")
    group = query.get("group_by", "tenant")
    if group not in GROUPS:
        raise InvalidRequestError("'group_by' is tenant, key, model or day.", param="group_by")
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidRequestError("'format' is json or csv.", param="format")
    return first, last, group, fmt


def spend(client: Any, table: str, store: KeyStore, first: int, last: int,
          group: str) -> list[dict[str, Any]]:
    """Rows of requests, tokens and cost, by ``group``, over the days."""
    tenants = {record.key_id: record.tenant for record in store.list()}
    totals: dict[str, dict[str, Any]] = {}
    key_of: Callable[[str, str, int], str] = {
        "tenant": lambda key_id, tenant, day: tenant,
        "key": lambda key_id, tenant, day: key_id,
        "model": lambda key_id, tenant, day: "",  # per model: _add_models
        "day": lambda key_id, tenant, day: _date(day)}[group]
    for page in client.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            owner, kind, index = (item["pk"]["S"].rsplit("#", 2) + ["", ""])[:3]
            if kind != "d" or not owner.startswith("key_") or not index.isdigit():
                continue  # month items; a tenant's own items would count its keys twice
            day = int(index)
            if not first <= day <= last:
                continue
            tenant = tenants.get(owner, "?")
            if group == "model":
                _add_models(totals, item)
                continue
            row = totals.setdefault(key_of(owner, tenant, day), {
                "requests": 0, "tokens": 0, "cost_usd": Decimal(0),
                **({"tenant": tenant} if group == "key" else {})})
            row["requests"] += max(0, int(item.get("requests", {}).get("N", 0)))
            row["tokens"] += max(0, int(item.get("tokens", {}).get("N", 0)))
            row["cost_usd"] += max(Decimal(0), Decimal(item.get("cost_usd", {}).get("N", "0")))
    name = {"tenant": "tenant", "key": "key_id", "model": "model", "day": "date"}[group]
    return [{name: label, **row, "cost_usd": float(round(row["cost_usd"], 8))}
            for label, row in sorted(totals.items())]


def _add_models(totals: dict[str, dict[str, Any]], item: dict[str, Any]) -> None:
    """A day item's model counters (``m#<model>#n|t|c``), added to ``totals``."""
    for name, value in item.items():
        if not name.startswith("m#"):
            continue
        model, _, counter = name[2:].rpartition("#")
        if not model or counter not in COUNTERS or "N" not in value:
            continue
        row = totals.setdefault(model, {"requests": 0, "tokens": 0, "cost_usd": Decimal(0)})
        amount = Decimal(value["N"]) if counter == "c" else int(value["N"])
        row[COUNTERS[counter]] += max(type(amount)(0), amount)


def as_csv(rows: list[dict[str, Any]], group: str) -> str:
    columns = {"tenant": ["tenant"], "key": ["key_id", "tenant"], "model": ["model"],
               "day": ["date"]}[group]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*columns, "requests", "tokens", "cost_usd"],
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # Dollars as plain decimals (a float would print 4.18e-06). Tenant names
        # start with a letter or digit, so no cell reads as a spreadsheet formula.
        writer.writerow({**row, "cost_usd": f"{row['cost_usd']:.8f}"})
    return out.getvalue()


def render(rows: list[dict[str, Any]], first: int, last: int, group: str) -> dict[str, Any]:
    return {"object": "usage_report", "from": _date(first), "to": _date(last),
            "group_by": group, "data": rows}
