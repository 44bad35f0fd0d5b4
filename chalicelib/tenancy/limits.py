"""Per-key limits that hold under concurrent Lambdas: one conditional DynamoDB update.

Each key has one usage item per UTC day. It holds the day's token budget
(``tokens``, ``requests``, ``cost_usd``) and, beside it, the current minute's
counters under names that carry the minute (``r<minute>``, ``t<minute>``).
Before Bedrock is called, the request's worst case (prompt estimate plus
max_tokens) is reserved on the minute and the day together with one
conditional ``ADD``: DynamoDB applies it atomically, so concurrent requests
can never reserve past a limit, and a refusal leaves nothing to take back.
After the call one more update settles the reservation to the tokens Bedrock
reported (and drops the counters of minutes long gone); a failure releases it
with one update instead. So a limited key costs two round trips a request,
and a key without limits one (its usage is counted when it settles).

A reservation is never below what Bedrock will count (``prompt_estimate``):
a Llama prompt is counted exactly with Meta's tokenizer, any other family is
bounded at a token per UTF-8 byte of what is sent (``chalicelib.models.tokens``
says why that holds). So settling only ever gives tokens back, and no prompt,
however token-dense, spends past a key's limits. The exact count loads a 2 MB
tokenizer once per process, so it is made only for a key with limits:
``admit`` takes the size as a function it calls only then.

Budgets in US dollars (``usd_per_day``, ``usd_per_month``) are held the same
way, in integer micro-dollars (``usd``), never floats: the request reserves
its worst-case cost (``worst_micros``: the prompt's reserved tokens at the
higher of the input and cache-write prices, ``max_tokens`` at the output
price) and settles to what Bedrock's counts cost, rounded up to the micro-
dollar. The day's ``usd`` sits on the day item beside the tokens, so a day
budget is one more condition on the same update. A month budget needs the
key's month item (``month_pk``) too: then the reservation is one
TransactWriteItems over both items (all conditions hold or nothing is
written) and so is the settle, still two round trips. Every settle adds
``usd`` to the day item, so a day budget set mid-day counts the whole day; a
month item that does not exist yet starts from the month's day items.

Beside ``usd`` (reserved and settled), a budget's items count ``spent``: the
settled micro-dollars alone, from which ``alerts.BudgetAlerts`` sends one
notification per window at 80% and at 100% of a budget.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.tenancy.alerts import BudgetAlerts, Watch
from chalicelib.tenancy.auth import Caller
from chalicelib.chat import ChatRequest, LimitStatus
from chalicelib.errors import (InvalidRequestError, LimiterUnavailableError,
                               RateLimitExceededError, RequestExceedsLimitError)
from chalicelib.models import converse, tokens
from chalicelib.models.prompting import may_repair, render
from chalicelib.models.pricing import DEFAULT_CACHE_PRICES, DEFAULT_PRICES, Prices, base_model
from chalicelib.models.registry import get_model
from chalicelib.resilience.links import parse_link
from chalicelib.tenancy.keys import MICROS, Limits

log = logging.getLogger(__name__)
T = TypeVar("T")

MINUTE = 60
DAY = 86_400
# Day items are kept 40 days after their day (a month budget starts from a
# month's day items; /admin/usage reports up to 31 days), then DynamoDB's TTL
# deletes them.
DAY_ITEM_TTL = 40 * DAY
# A month item outlives its month by a few days (a late settle, /usage).
MONTH_ITEM_TTL = 35 * DAY
TRANSACT_ATTEMPTS = 4


@dataclass(frozen=True)
class Need:
    """A request's worst case: the tokens it may send and receive, on ``model``."""

    model: str
    input_tokens: int
    output_tokens: int
    # The models of its fallback chain: it may be served by any, so it is
    # priced at the dearest (worst_micros).
    alternatives: tuple[str, ...] = ()

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def worst_micros(need: Need, prices: Prices,
                 cache_prices: Prices = DEFAULT_CACHE_PRICES) -> int | None:
    """The most ``need`` can cost, in micro-dollars (None: the model has no
    price): every input token at the higher of the input and cache-write
    prices (a prompt cache write costs more than plain input), every output
    token at the output price. Prices are per million tokens, so a token costs
    its price in micro-dollars. With alternatives, the dearest of them."""
    worst = 0
    for model in (need.model, *need.alternatives):
        base = base_model(model)
        price = prices.get(base)
        if price is None:
            return None
        input_price, output_price = price
        write_price = cache_prices.get(base, (input_price, input_price))[0]
        worst = max(worst, math.ceil(need.input_tokens * max(input_price, write_price)
                                     + need.output_tokens * output_price))
    return worst


def micros(cost: Decimal | None) -> int:
    """A settled cost in whole micro-dollars, rounded up (never under the spend)."""
    return 0 if not cost else max(0, math.ceil(cost * MICROS))


def utc_month(now: float) -> tuple[str, int]:
    """The UTC calendar month of ``now`` ("2026-12") and the seconds to its end."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    end = datetime(year, month, 1, tzinfo=timezone.utc).timestamp()
    return moment.strftime("%Y-%m"), max(1, math.ceil(end - now))


def month_pk(key_id: str, month: str) -> str:
    """A key's spend in one UTC calendar month (``usd``), for its month budget."""
    return f"{key_id}#m#{month}"


@dataclass(frozen=True)
class Reservation:
    key_id: str
    day_pk: str
    minute: int  # the epoch minute whose counters hold this request
    tokens: int
    held: bool  # tokens were reserved (a limited key) and must be settled or released
    status: tuple[LimitStatus, ...]
    stale: tuple[str, ...] = ()  # counters of past minutes, dropped when settling
    micros: int = 0  # the worst-case cost reserved (a dollar budget)
    # The other items that hold this reservation: (pk, "day" | "month", stale
    # minute counters of a day item), for the tenant's limits and month budgets.
    others: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    # The dollar budgets it counts against, for their alerts (alerts.py).
    watches: tuple[Watch, ...] = ()
    model: str = ""  # the model asked for: its settled usage is counted per model too


def day_pk(key_id: str, day: int) -> str:
    """The usage item of a key's UTC day (days since the epoch): requests,
    tokens and cost, kept a week (usage.py reads them back)."""
    return f"{key_id}#d#{day}"


def prompt_estimate(request: ChatRequest) -> int:
    """The prompt's input tokens as Bedrock will count them, never fewer.

    Llama (InvokeModel, our template): the rendered prompt counted exactly
    with Meta's Llama 3 tokenizer, the template's special tokens one each.
    Every other family (Claude, Nova through Converse): the Converse request's
    UTF-8 bytes as JSON plus fixed framing (``tokens.converse_bound``), a bound
    for any byte-level tokenizer, which needs no tokenizer of theirs. It is
    what a reservation holds for the prompt, and what a call whose own count
    never came back is billed for it (completion.py)."""
    if get_model(request.model).api == "converse":
        return tokens.converse_bound(converse.build_request(request))
    return tokens.llama3_tokens(render(request).text)


def need_of(request: ChatRequest) -> Need:
    """The worst case: the prompt (tool definitions and schemas included)
    plus every token asked for, twice when the answer may need a repair
    attempt (a second call with the first prompt and answer in its prompt).
    On a fallback chain, the largest prompt of any link's model (their
    tokenizers differ), priced at the dearest (``Need.alternatives``)."""
    models = tuple(dict.fromkeys(parse_link(link).model for link in request.fallbacks))
    prompt = max(prompt_estimate(dataclasses.replace(request, model=m, fallbacks=()))
                 for m in (request.model, *models))
    answer = request.max_tokens
    others = tuple(m for m in models if m != request.model)
    if may_repair(request):
        return Need(request.model, 2 * prompt + answer, 2 * answer, others)
    return Need(request.model, prompt, answer, others)


def reservation_size(request: ChatRequest) -> int:
    """The worst case in tokens (``need_of``)."""
    return need_of(request).tokens


def minute_names(minute: int) -> tuple[str, str]:
    """The attributes of one minute's request and token counters."""
    return f"r{minute}", f"t{minute}"


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _count(item: dict[str, Any] | None, name: str) -> int:
    return int(item[name]["N"]) if item and name in item else 0


def _stale(item: dict[str, Any], minute: int) -> tuple[str, ...]:
    """Counters of minutes before the last one (a request still in flight in
    the last minute may yet settle there)."""
    old = []
    for name in item:
        if name[:1] in ("r", "t") and name[1:].isdigit() and int(name[1:]) < minute - 1:
            old.append(name)
    return tuple(sorted(old))


Size = int | Need | Callable[[], int | Need]


def _need(size: Size) -> Need:
    value = size() if callable(size) else size
    return value if isinstance(value, Need) else Need("", value, 0)


class Limiter:
    def __init__(self, client: Any, table: str, clock: Callable[[], float],
                 prices: Prices = DEFAULT_PRICES, alerts: BudgetAlerts | None = None) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._prices = prices
        self._alerts = alerts

    def admit(self, caller: Caller, size: Size, model: str = "") -> Reservation:
        """Reserve ``size`` (tokens, or a ``Need``, which a dollar budget
        prices) for one request under the key's limits and its tenant's, or
        raise the limit that trips. ``size`` may be a function (``lambda:
        need_of(r)``): it is called only when there are limits, so a key
        without them never pays for counting (nothing is reserved for it).
        ``model`` names what the request asked for: the settle counts its
        usage per model on the key's day item (``GET /admin/usage?group_by=model``)."""
        now = self._clock()
        minute, day = int(now // MINUTE), int(now // DAY)
        key = caller.key_id
        pk = day_pk(key, day)
        if caller.limits.unlimited and caller.tenant_limits.unlimited:
            return Reservation(key, pk, minute, size if isinstance(size, int) else 0, False, (),
                               model=model)
        need = _need(size)
        tokens = need.tokens
        for whose, limits in (("key", caller.limits), ("tenant", caller.tenant_limits)):
            for name, limit in (("tokens_per_minute", limits.tokens_per_minute),
                                ("tokens_per_day", limits.tokens_per_day)):
                if limit is not None and tokens > limit:
                    raise RequestExceedsLimitError(
                        f"This request reserves {tokens} tokens (prompt estimate plus "
                        f"max_tokens), more than this {whose}'s {name.replace('_', ' ')} limit "
                        f"of {limit}: lower max_tokens or shorten the prompt.", param="max_tokens")
        cost = self._worst_cost(need, caller)
        month, month_reset = utc_month(now)
        buckets = _buckets(caller, day, month)
        found = self._reserve(buckets, minute, tokens, cost, now, month)
        for _ in buckets:  # a month item that did not exist: start it, then once more
            if not isinstance(found, Bucket):
                break
            self._start_month(found, month, day)
            found = self._reserve(buckets, minute, tokens, cost, now, month)
        if isinstance(found, Bucket):
            raise LimiterUnavailableError("Rate limits cannot be checked right now; retry shortly.")
        minute_reset = max(1, math.ceil((minute + 1) * MINUTE - now))
        day_reset = max(1, math.ceil((day + 1) * DAY - now))
        mr, mt = minute_names(minute)
        status: list[LimitStatus] = []
        for bucket, new in zip(buckets, found):
            limits, prefix = bucket.limits, _whose(bucket.whose)[0]
            if bucket.kind == "month":
                budget = int((limits.usd_per_month or 0) * MICROS)
                status.append(LimitStatus(prefix + "usd-month", budget,
                                          max(0, budget - _count(new, "usd")), month_reset))
                continue
            rpm, tpm, tpd = (limits.requests_per_minute, limits.tokens_per_minute,
                             limits.tokens_per_day)
            if rpm is not None:
                status.append(LimitStatus(prefix + "requests", rpm,
                                          max(0, rpm - _count(new, mr)), minute_reset))
            if tpm is not None:
                status.append(LimitStatus(prefix + "tokens", tpm,
                                          max(0, tpm - _count(new, mt)), minute_reset))
            if tpd is not None:
                status.append(LimitStatus(prefix + "tokens-day", tpd,
                                          max(0, tpd - _count(new, "tokens")), day_reset))
            if limits.usd_per_day is not None:
                budget = int(limits.usd_per_day * MICROS)
                status.append(LimitStatus(prefix + "usd-day", budget,
                                          max(0, budget - _count(new, "usd")), day_reset))
        # The key's day item is the reservation's own; the others hold it too.
        others = tuple((b.pk, b.kind, _stale(new, minute) if b.kind == "day" else ())
                       for b, new in zip(buckets[1:], found[1:]))
        watches = tuple(w for b, new in zip(buckets, found)
                        for w in _watches(b, day, month, _count(new, "usd")))
        return Reservation(key, pk, minute, tokens, True, tuple(status), _stale(found[0], minute),
                           micros=cost, others=others, watches=watches, model=model)

    def _worst_cost(self, need: Need, caller: Caller) -> int:
        """The micro-dollars to reserve: 0 without a dollar budget (the key's
        or its tenant's); a request that could never fit one is refused."""
        budgets = [(whose, name, amount)
                   for whose, limits in (("key", caller.limits), ("tenant", caller.tenant_limits))
                   for name, amount in (("usd_per_day", limits.usd_per_day),
                                        ("usd_per_month", limits.usd_per_month))
                   if amount is not None]
        if not budgets:
            return 0
        cost = worst_micros(need, self._prices)
        if cost is None:
            raise InvalidRequestError(
                f"This key has a budget in US dollars and the model '{need.model}' has no price "
                "configured (MODEL_PRICES), so its cost cannot be bounded: use a priced model.",
                param="model", code="model_not_priced")
        for whose, name, amount in budgets:
            if cost > amount * MICROS:
                raise RequestExceedsLimitError(
                    f"This request may cost up to ${Decimal(cost) / MICROS} (its prompt estimate "
                    f"and max_tokens at the model's prices), more than this {whose}'s "
                    f"{name.replace('_', ' ')} budget of ${amount}: lower max_tokens or shorten "
                    "the prompt.", param="max_tokens", code="request_exceeds_budget")
        return cost

    def _bucket_update(self, bucket: Bucket, minute: int, tokens: int, cost: int,
                       now: float) -> dict[str, Any]:
        """The conditional update that reserves ``tokens`` and ``cost`` on one item."""
        limits = bucket.limits
        if bucket.kind == "month":
            budget = int((limits.usd_per_month or 0) * MICROS)
            return {"TableName": self._table, "Key": {"pk": {"S": bucket.pk}},
                    "UpdateExpression": "ADD usd :u SET expires_at = :e",
                    "ConditionExpression": "usd <= :room",  # absent: the month is not started
                    "ExpressionAttributeValues": {":u": _n(cost), ":room": _n(budget - cost),
                                                  ":e": _n(int(now) + MONTH_ITEM_TTL)},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        rpm, tpm, tpd = limits.requests_per_minute, limits.tokens_per_minute, limits.tokens_per_day
        mr, mt = minute_names(minute)
        clauses = []
        values: dict[str, Any] = {":one": _n(1), ":t": _n(tokens),
                                  ":e": _n(int(now) + DAY_ITEM_TTL)}
        adds = "ADD requests :one, tokens :t, #mr :one, #mt :t"
        if rpm is not None:
            clauses.append("(attribute_not_exists(#mr) OR #mr < :rpm)")
            values[":rpm"] = _n(rpm)
        if tpm is not None:
            clauses.append("(attribute_not_exists(#mt) OR #mt <= :tpm_room)")
            values[":tpm_room"] = _n(tpm - tokens)
        if tpd is not None:
            clauses.append("(attribute_not_exists(tokens) OR tokens <= :tpd_room)")
            values[":tpd_room"] = _n(tpd - tokens)
        if cost:
            adds += ", usd :u"
            values[":u"] = _n(cost)
        if limits.usd_per_day is not None:
            clauses.append("(attribute_not_exists(usd) OR usd <= :usd_room)")
            values[":usd_room"] = _n(int(limits.usd_per_day * MICROS) - cost)
        update: dict[str, Any] = {
            "TableName": self._table, "Key": {"pk": {"S": bucket.pk}},
            "UpdateExpression": adds + " SET expires_at = :e",
            "ExpressionAttributeNames": {"#mr": mr, "#mt": mt},
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        if clauses:
            update["ConditionExpression"] = " AND ".join(clauses)
        return update

    def _reserve(self, buckets: tuple[Bucket, ...], minute: int, tokens: int, cost: int,
                 now: float, month: str) -> list[dict[str, Any]] | Bucket:
        """Each bucket's item after the reservation, in one conditional write;
        or the month bucket whose item does not exist yet."""
        updates = [self._bucket_update(b, minute, tokens, cost, now) for b in buckets]
        try:
            if len(updates) == 1:
                return [self._client.update_item(**updates[0], ReturnValues="ALL_NEW")["Attributes"]]
            self._transact([{"Update": u} for u in updates])
            # A transaction returns no values: read the items back (consistent, one call).
            keys = [{"pk": {"S": b.pk}} for b in buckets]
            read = self._client.batch_get_item(RequestItems={self._table: {
                "Keys": keys, "ConsistentRead": True}})
            items = {i["pk"]["S"]: i for i in read.get("Responses", {}).get(self._table, [])}
            return [items.get(b.pk, {}) for b in buckets]
        except ClientError as exc:
            code = _code(exc)
            if code == "ConditionalCheckFailedException":
                raise self._refused(buckets[0], exc.response.get("Item"), tokens, now,
                                    month) from None
            if code == "TransactionCanceledException":
                reasons = list(exc.response.get("CancellationReasons") or [])
                for bucket, reason in zip(buckets, reasons):
                    if reason.get("Code") != "ConditionalCheckFailed":
                        continue
                    if bucket.kind == "month" and "Item" not in reason:
                        return bucket
                    raise self._refused(bucket, reason.get("Item"), tokens, now, month) from None
            log.error("limiter unavailable: %s", exc)
            raise LimiterUnavailableError("Rate limits cannot be checked right now; retry shortly.") from exc
        except BotoCoreError as exc:
            log.error("limiter unavailable: %s", exc)
            raise LimiterUnavailableError("Rate limits cannot be checked right now; retry shortly.") from exc

    def _start_month(self, bucket: Bucket, month: str, today: int) -> None:
        """Create a month item from the month's day items (their ``usd``), so
        that a month budget set mid-month counts the month's spend so far.
        Another request may have made it first: then that one stands."""
        owner = bucket.pk.rsplit("#", 2)[0]
        first = int(datetime.strptime(month + "-01", "%Y-%m-%d")
                    .replace(tzinfo=timezone.utc).timestamp() // DAY)
        keys = [{"pk": {"S": day_pk(owner, d)}} for d in range(first, today + 1)]
        try:
            read = self._client.batch_get_item(RequestItems={self._table: {
                "Keys": keys, "ConsistentRead": True, "ProjectionExpression": "usd"}})
            spent = sum(_count(item, "usd") for item in read.get("Responses", {}).get(self._table, []))
            self._client.put_item(
                TableName=self._table,
                Item={"pk": {"S": bucket.pk}, "usd": _n(spent),
                      "expires_at": _n(int(self._clock()) + MONTH_ITEM_TTL)},
                ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                log.error("could not start the month of %s: %s", owner, exc)
        except BotoCoreError as exc:
            log.error("could not start the month of %s: %s", owner, exc)

    def _refused(self, bucket: Bucket, old: dict[str, Any] | None, tokens: int, now: float,
                 month: str) -> RateLimitExceededError:
        """``_tripped``'s error; a spent budget's 100% alert goes out (once)."""
        error = self._tripped(bucket, old, tokens, now)
        if error.code == "budget_exceeded" and self._alerts is not None:
            window = "usd_per_month" if bucket.kind == "month" else "usd_per_day"
            for watch in _watches(bucket, int(now // DAY), month, _count(old, "usd")):
                if watch.budget == window:
                    self._alerts.refused(watch, old)
        return error

    def _tripped(self, bucket: Bucket, old: dict[str, Any] | None, tokens: int,
                 now: float) -> RateLimitExceededError:
        """Which limit of ``bucket`` refused the reservation, from its item as it was."""
        limits, whose = bucket.limits, bucket.whose
        minute, day = int(now // MINUTE), int(now // DAY)
        mr, mt = minute_names(minute)
        minute_reset = max(1, math.ceil((minute + 1) * MINUTE - now))
        day_reset = max(1, math.ceil((day + 1) * DAY - now))
        if bucket.kind == "month":
            return _over_budget(whose, "usd_per_month", limits.usd_per_month or Decimal(0),
                                utc_month(now)[1])
        rpm, tpm, tpd = limits.requests_per_minute, limits.tokens_per_minute, limits.tokens_per_day
        if rpm is not None and _count(old, mr) >= rpm:
            return _exceeded(whose, "requests_per_minute", rpm, minute_reset)
        if tpm is not None and _count(old, mt) > tpm - tokens:
            return _exceeded(whose, "tokens_per_minute", tpm, minute_reset)
        if tpd is not None and _count(old, "tokens") > tpd - tokens:
            return _exceeded(whose, "tokens_per_day", tpd, day_reset)
        return _over_budget(whose, "usd_per_day", limits.usd_per_day or Decimal(0), day_reset)

    def _writes(self, reservation: Reservation, *, requests: int, tokens: int,
                cost: int = 0, usd: Decimal | None = None, remove: tuple[str, ...] = (),
                prune: bool = False,
                used: tuple[int, int] | None = None) -> list[dict[str, Any]]:
        """The updates that settle, charge or release: the key's day item's,
        and those of the other items that hold the reservation. ``used``
        (requests, tokens) is what the model's own counters on the key's day
        item get, with ``usd``."""
        writes = [self._day_write(reservation, reservation.day_pk, requests=requests,
                                  tokens=tokens, cost=cost, usd=usd, remove=remove, used=used)]
        for pk, kind, stale in reservation.others:
            if kind == "day":
                writes.append(self._day_write(reservation, pk, requests=requests, tokens=tokens,
                                              cost=cost, usd=usd, remove=stale if prune else ()))
            elif cost or usd:
                writes.append({"TableName": self._table, "Key": {"pk": {"S": pk}},
                               "UpdateExpression": "ADD usd :u, spent :s",
                               "ExpressionAttributeValues": {":u": _n(cost),
                                                             ":s": _n(micros(usd))}})
        return writes

    def _day_write(self, reservation: Reservation, pk: str, *, requests: int, tokens: int,
                   cost: int, usd: Decimal | None, remove: tuple[str, ...],
                   used: tuple[int, int] | None = None) -> dict[str, Any]:
        adds = ["tokens :t"]
        values: dict[str, Any] = {":t": _n(tokens)}
        names: dict[str, str] = {}
        if used is not None and reservation.model:
            # Per model, on the key's own day item: m#<model>#n|t|c (requests,
            # tokens, dollars), what /admin/usage?group_by=model sums.
            prefix = f"m#{reservation.model}#"
            names.update({"#pn": prefix + "n", "#pt": prefix + "t"})
            adds += ["#pn :pn", "#pt :pt"]
            values.update({":pn": _n(used[0]), ":pt": _n(used[1])})
            if usd:
                names["#pc"] = prefix + "c"
                adds.append("#pc :c")
        if requests:
            adds.append("requests :r")
            values[":r"] = _n(requests)
        if reservation.held:
            adds.append("#mt :t")
            names["#mt"] = minute_names(reservation.minute)[1]
        if usd:
            adds.append("cost_usd :c")
            # Plain digits: str(Decimal) may write "2E-7", which moto cannot read.
            values[":c"] = {"N": format(usd, "f")}
            adds.append("spent :s")  # settled micro-dollars: the budget alerts' measure
            values[":s"] = _n(micros(usd))
        if cost:
            adds.append("usd :u")
            values[":u"] = _n(cost)
        expression = "ADD " + ", ".join(adds)
        if not reservation.held:  # the key's first write of the day may be this one
            # A week after the latest write (within its day): the day's item
            # outlives its day by a week, as it must for accounting.
            expression += " SET expires_at = :e"
            values[":e"] = _n(int(self._clock()) + DAY_ITEM_TTL)
        if remove:
            names.update({f"#x{i}": name for i, name in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#x{i}" for i in range(len(remove)))
        write: dict[str, Any] = {"TableName": self._table, "Key": {"pk": {"S": pk}},
                                 "UpdateExpression": expression,
                                 "ExpressionAttributeValues": values}
        if names:
            write["ExpressionAttributeNames"] = names
        return write

    def _update(self, reservation: Reservation, **change: Any) -> None:
        writes = self._writes(reservation, **change)
        if len(writes) == 1:
            self._client.update_item(**writes[0])
        else:  # every item or none, in one round trip
            self._transact([{"Update": w} for w in writes])

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems, again when it lost a race with another
        transaction on the same items (DynamoDB cancels one of two such
        transactions, ``TransactionConflict``: the tenant's items are shared)."""
        for attempt in range(TRANSACT_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons") or []
                conflict = any(r.get("Code") == "TransactionConflict" for r in reasons) and not any(
                    r.get("Code") == "ConditionalCheckFailed" for r in reasons)
                if not conflict or attempt == TRANSACT_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.005, 0.02) * 2 ** attempt)

    def settle(self, reservation: Reservation, used_tokens: int,
               cost: Decimal | None = None) -> None:
        """Replace the reservation by what was used, and add its cost to the
        key's day (and month), in one round trip (never fails the request)."""
        try:
            if reservation.held:
                self._update(reservation, requests=0, tokens=used_tokens - reservation.tokens,
                             cost=micros(cost) - reservation.micros, usd=cost,
                             remove=reservation.stale, prune=True, used=(1, used_tokens))
            else:  # unlimited key: nothing reserved, usage still counted per day
                self._update(reservation, requests=1, tokens=used_tokens, cost=micros(cost),
                             usd=cost, used=(1, used_tokens))
        except (ClientError, BotoCoreError):
            log.error("could not settle usage of %s on %s", reservation.key_id, reservation.day_pk)
            return
        self._watch(reservation)

    def _watch(self, reservation: Reservation) -> None:
        if self._alerts is not None and reservation.watches:
            self._alerts.settled(reservation.watches)

    def charge(self, reservation: Reservation, tokens: int, cost: Decimal | None = None) -> None:
        """Add tokens a failed attempt generated, leaving the reservation held
        (a job that is retried keeps its reservation for the next attempt)."""
        try:
            self._update(reservation, requests=0, tokens=tokens, cost=micros(cost), usd=cost,
                         used=(0, tokens))
        except (ClientError, BotoCoreError):
            log.error("could not charge %s tokens to %s", tokens, reservation.key_id)
            return
        self._watch(reservation)

    def release(self, reservation: Reservation) -> None:
        """Give back the tokens (and dollars) of a request that failed; it
        still counts as a request."""
        if not reservation.held:
            return
        try:
            self._update(reservation, requests=0, tokens=-reservation.tokens,
                         cost=-reservation.micros)
        except (ClientError, BotoCoreError):
            log.error("could not release %s tokens on %s", reservation.tokens, reservation.day_pk)

    def settle_failure(self, reservation: Reservation, exc: BaseException | None) -> None:
        """Settle a failed call to what it spent (an error's ``spent``: the
        tokens Bedrock generated before the failure, or for an unusable
        answer), or release it when Bedrock generated nothing."""
        spent = getattr(exc, "spent", None)
        if spent is not None and spent[0] > 0:
            self.settle(reservation, *spent)
        else:
            self.release(reservation)

    def run(self, caller: Caller, tokens: Size, call: Callable[[], T],
            used: Callable[[T], tuple[int, Decimal | None]],
            model: str = "") -> tuple[T, Reservation]:
        """Admit, call, settle to ``used(result)`` (tokens, cost). A call that
        fails after Bedrock generated tokens (cut at its deadline, broken off,
        an unusable answer) is settled to those; any other failure releases
        the reservation."""
        reservation = self.admit(caller, tokens, model)
        try:
            result = call()
        except BaseException as exc:
            self.settle_failure(reservation, exc)
            raise
        self.settle(reservation, *used(result))
        return result, reservation


@dataclass(frozen=True)
class Bucket:
    """One usage item a reservation must fit in, under ``limits``."""

    pk: str
    kind: str  # "day": requests, tokens, minute counters, usd | "month": usd
    limits: Limits
    whose: str  # "key" | "tenant"


def tenant_owner(tenant: str) -> str:
    """The usage items' owner name of a tenant (key ids start with ``key_``)."""
    return f"tenant:{tenant}"


def _buckets(caller: Caller, day: int, month: str) -> tuple[Bucket, ...]:
    """The items a reservation must fit in: the key's day always (it counts
    the key's usage), its month with a month budget, and the same for the
    tenant when the tenant has limits."""
    buckets = [Bucket(day_pk(caller.key_id, day), "day", caller.limits, "key")]
    shared = caller.tenant_limits
    if not shared.unlimited:
        owner = tenant_owner(caller.tenant)
        buckets.append(Bucket(day_pk(owner, day), "day", shared, "tenant"))
        if shared.usd_per_month is not None:
            buckets.append(Bucket(month_pk(owner, month), "month", shared, "tenant"))
    if caller.limits.usd_per_month is not None:
        buckets.append(Bucket(month_pk(caller.key_id, month), "month", caller.limits, "key"))
    return tuple(buckets)


def _watches(bucket: Bucket, day: int, month: str, seen: int) -> tuple[Watch, ...]:
    """The dollar budgets of ``bucket``'s item, for their alerts."""
    owner = bucket.pk.rsplit("#", 2)[0].removeprefix("tenant:")
    if bucket.kind == "month":
        amount, name, window = bucket.limits.usd_per_month, "usd_per_month", month
    else:
        amount, name = bucket.limits.usd_per_day, "usd_per_day"
        window = datetime.fromtimestamp(day * DAY, timezone.utc).strftime("%Y-%m-%d")
    if amount is None:
        return ()
    return (Watch(bucket.pk, bucket.whose, owner, name, window, int(amount * MICROS), seen),)


def _whose(whose: str) -> tuple[str, str]:
    """A limit's header prefix and how a message names its owner."""
    if whose == "key":
        return "", "This key's"
    return "tenant-", "This key's tenant's (shared by its keys)"


def _exceeded(whose: str, tripped: str, limit: int, retry_after: int) -> RateLimitExceededError:
    prefix, owner = _whose(whose)
    status = LimitStatus(prefix + {"requests_per_minute": "requests", "tokens_per_minute": "tokens",
                                   "tokens_per_day": "tokens-day"}[tripped], limit, 0, retry_after)
    return RateLimitExceededError(
        f"{owner} limit of {limit} {tripped.replace('_', ' ')} is reached; "
        f"retry after {retry_after} s.", code=f"{tripped}_exceeded",
        retry_after=retry_after, status=(status,))


def _over_budget(whose: str, tripped: str, amount: Decimal,
                 retry_after: int) -> RateLimitExceededError:
    """A dollar budget is spent for its window (the message names whose and which)."""
    window = "day" if tripped == "usd_per_day" else "month"
    prefix, owner = _whose(whose)
    status = LimitStatus(f"{prefix}usd-{window}", int(amount * MICROS), 0, retry_after)
    return RateLimitExceededError(
        f"{owner} budget of ${amount} per UTC {window} is spent (requests in flight count "
        f"at their worst case until they settle); retry after {retry_after} s.",
        code="budget_exceeded", retry_after=retry_after, status=(status,))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
