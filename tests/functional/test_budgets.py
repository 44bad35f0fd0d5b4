"""Budgets in US dollars, per key, per UTC day and calendar month, against a
real DynamoDB API (moto): reserved at their worst case in integer
micro-dollars, settled to the cost, exact under concurrency."""
from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.errors import InvalidRequestError, RateLimitExceededError, RequestExceedsLimitError
from chalicelib.models.pricing import DEFAULT_CACHE_PRICES, DEFAULT_PRICES
from chalicelib.tenancy.auth import Caller
from chalicelib.tenancy.keys import KeyAdminError, KeyStore, Limits
from chalicelib.tenancy.limits import (DAY, Limiter, Need, day_pk, micros, month_pk, utc_month,
                                       worst_micros)
from tests.conftest import MODEL, ApiFactory
from tests.functional.test_limits import USAGE, CountingDynamoDB
from tests.support import EmulatorControl

# 2027-01-31 23:50 UTC: ten minutes before both a day and a month end.
T0 = datetime(2027, 1, 31, 23, 50, tzinfo=timezone.utc).timestamp()
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
JSON = {"Content-Type": "application/json"}


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def caller(**limits: Any) -> Caller:
    return Caller("acme", f"key_{uuid.uuid4().hex[:16]}", Limits(**limits))


def usd_of(dynamodb: Any, pk: str) -> int:
    item = dynamodb.get_item(TableName=USAGE, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")
    return int(item["usd"]["N"]) if item and "usd" in item else 0


def test_worst_case_and_settled_costs_are_whole_micro_dollars() -> None:
    # Llama 3.1 8B: $0.22 per million tokens in and out, so a token is 0.22 µ$.
    assert worst_micros(Need(MODEL, 1000, 500), DEFAULT_PRICES) == 330
    assert worst_micros(Need(MODEL, 1, 0), DEFAULT_PRICES) == 1  # rounded up, never down
    # Claude: input at the cache-write price (higher), output at its own.
    base = "anthropic.claude-haiku-4-5-20251001-v1:0"
    (_, output), (write, _) = DEFAULT_PRICES[base], DEFAULT_CACHE_PRICES[base]
    assert worst_micros(Need(CLAUDE, 1000, 100), DEFAULT_PRICES) == int(1000 * write + 100 * output)
    assert worst_micros(Need("us.example.unpriced-v1:0", 10, 10), DEFAULT_PRICES) is None
    assert (micros(None), micros(Decimal("0")), micros(Decimal("0.0000001")),
            micros(Decimal("1.5"))) == (0, 0, 1, 1_500_000)


def test_utc_month_and_its_end() -> None:
    assert utc_month(T0) == ("2027-01", 600)
    assert utc_month(datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()) == (
        "2026-12", 1)


@pytest.mark.parametrize("window", ["usd_per_day", "usd_per_month"])
def test_concurrent_requests_never_overrun_a_dollar_budget(dynamodb: Any, window: str) -> None:
    """N requests released at once whose worst cases together exceed the
    budget: exactly those that fit are admitted, and the settled spend never
    passes the budget."""
    clock = Clock()
    need = Need(MODEL, 4000, 1000)  # worst case 1,100 µ$
    worst = worst_micros(need, DEFAULT_PRICES)
    assert worst == 1100
    budget = Decimal("0.0055")  # 5,500 µ$: five requests fit
    who = caller(**{window: budget})
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def one() -> None:
        limiter = Limiter(dynamodb, USAGE, clock)
        start.wait()
        try:
            # Each one really cost 1,000 µ$ (a settle gives back the rest), but
            # settles only after every request was decided.
            reservation = limiter.admit(who, need)
            outcome = "ok"
        except RateLimitExceededError as exc:
            reservation, outcome = None, exc.code
        with lock:
            outcomes.append(outcome)
        decided.wait()
        if reservation is not None:
            limiter.settle(reservation, 4500, Decimal("0.001"))
    decided = threading.Barrier(20)
    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 5 and set(outcomes) == {"ok", "budget_exceeded"}
    day = day_pk(who.key_id, int(T0 // DAY))
    assert usd_of(dynamodb, day) == 5 * 1000
    if window == "usd_per_month":
        assert usd_of(dynamodb, month_pk(who.key_id, "2027-01")) == 5 * 1000
    # What settling gave back admits exactly what now fits: 500 µ$ is left,
    # less than one more worst case.
    with pytest.raises(RateLimitExceededError) as refused:
        Limiter(dynamodb, USAGE, clock).admit(who, need)
    window_name = "day" if window == "usd_per_day" else "month"
    assert refused.value.code == "budget_exceeded"
    assert f"$0.0055 per UTC {window_name}" in refused.value.message
    assert refused.value.retry_after == 600  # the day and the month both end in 10 minutes


def test_a_day_budget_counts_what_the_key_spent_before_it_was_set(dynamodb: Any) -> None:
    clock = Clock()
    key = f"key_{uuid.uuid4().hex[:16]}"
    unlimited = Caller("acme", key, Limits())
    limiter = Limiter(dynamodb, USAGE, clock)
    limiter.run(unlimited, 0, lambda: None, lambda _: (10, Decimal("0.004")))
    budgeted = Caller("acme", key, Limits(usd_per_day=Decimal("0.005")))
    with pytest.raises(RateLimitExceededError) as refused:
        limiter.admit(budgeted, Need(MODEL, 4000, 1000))  # 1,100 µ$ > the 1,000 left
    assert refused.value.code == "budget_exceeded"
    reservation = limiter.admit(budgeted, Need(MODEL, 3000, 1000))  # 880 µ$ fits
    assert [(s.name, s.limit, s.remaining) for s in reservation.status] == [
        ("usd-day", 5000, 120)]


def test_a_month_budget_starts_from_the_months_spend_so_far(dynamodb: Any) -> None:
    clock = Clock(T0 - 5 * DAY)
    key = f"key_{uuid.uuid4().hex[:16]}"
    limiter = Limiter(dynamodb, USAGE, clock)
    limiter.run(Caller("acme", key, Limits()), 0, lambda: None, lambda _: (1, Decimal("0.003")))
    clock.now = T0  # five days later, the same month
    limiter.run(Caller("acme", key, Limits()), 0, lambda: None, lambda _: (1, Decimal("0.001")))
    budgeted = Caller("acme", key, Limits(usd_per_month=Decimal("0.005")))
    reservation = limiter.admit(budgeted, Need(MODEL, 1000, 0))  # 220 µ$
    assert usd_of(dynamodb, month_pk(key, "2027-01")) == 4000 + 220
    assert [(s.name, s.remaining, s.reset_seconds) for s in reservation.status] == [
        ("usd-month", 5000 - 4220, 600)]
    limiter.release(reservation)
    assert usd_of(dynamodb, month_pk(key, "2027-01")) == 4000
    clock.now = T0 + 3600  # February: a month of its own
    reservation = limiter.admit(budgeted, Need(MODEL, 1000, 0))
    assert usd_of(dynamodb, month_pk(key, "2027-02")) == 220


def test_a_request_that_can_never_fit_or_cannot_be_priced_is_a_400(dynamodb: Any) -> None:
    limiter = Limiter(dynamodb, USAGE, Clock())
    who = caller(usd_per_day=Decimal("0.001"))
    with pytest.raises(RequestExceedsLimitError) as too_big:
        limiter.admit(who, Need(MODEL, 5000, 1000))
    assert too_big.value.code == "request_exceeds_budget" and "$0.001" in too_big.value.message
    with pytest.raises(InvalidRequestError) as unpriced:
        limiter.admit(who, Need("us.example.unpriced-v1:0", 1, 1))
    assert unpriced.value.code == "model_not_priced"


@pytest.mark.parametrize("limits,calls", [
    ({"usd_per_day": Decimal(1)}, ["update_item", "update_item"]),
    ({"usd_per_day": Decimal(1), "tokens_per_day": 10**6}, ["update_item", "update_item"]),
    # The transaction returns no values: the headers' figures are read back.
    ({"usd_per_month": Decimal(1)}, ["transact_write_items", "batch_get_item",
                                     "transact_write_items"]),
])
def test_round_trips_with_budgets(dynamodb: Any, limits: dict[str, Any],
                                  calls: list[str]) -> None:
    counting = CountingDynamoDB(dynamodb)
    limiter = Limiter(counting, USAGE, Clock())
    who = caller(**limits)
    limiter.run(who, Need(MODEL, 100, 100), lambda: None, lambda _: (50, Decimal("0.00001")))
    counting.calls.clear()
    limiter.run(who, Need(MODEL, 100, 100), lambda: None, lambda _: (50, Decimal("0.00001")))
    assert counting.calls == calls


@pytest.mark.parametrize("value", [0, -1, "abc", "0.0000001", True, float("nan"), 10**10])
def test_a_budget_must_be_dollars_in_micro_dollars(key_store: KeyStore, value: Any) -> None:
    with pytest.raises(KeyAdminError):
        key_store.create("acme", now=0, limits={"usd_per_day": value})


def test_a_budget_through_the_app(make_api: ApiFactory, key_store: KeyStore,
                                  emulator: EmulatorControl, dynamodb: Any) -> None:
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"usd_per_day": Decimal("0.001"),
                                              "usd_per_month": "5"})
    api = make_api(key=secret)
    body = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
    ok = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(body))
    assert ok.status_code == 200
    headers = {k: v for k, v in ok.headers.items() if "usd" in k}
    assert headers["x-ratelimit-limit-usd-day"] == "0.001000"
    assert headers["x-ratelimit-limit-usd-month"] == "5.000000"
    # What the answer cost is settled: at most its worst case was reserved.
    spent = usd_of(dynamodb, day_pk(record.key_id, int(time.time() // DAY)))
    assert spent == micros(Decimal(str(json.loads(ok.body)["usage"]["cost_usd"])))
    usage = json.loads(api.http.get("/usage").body)
    assert usage["limits"]["usd_per_day"] == 0.001 and usage["limits"]["usd_per_month"] == 5.0
    assert usage["budgets"]["day"]["spent_usd"] == spent / 1e6
    assert usage["budgets"]["month"]["remaining_usd"] == pytest.approx(5 - spent / 1e6)
    long = [{"role": "user", "content": "Hi there " * 2000}]  # 4,000 tokens: 880 µ$, then 2048
    too_big = api.http.post("/v1/chat/completions", headers=JSON,
                            body=json.dumps({**body, "messages": long, "max_tokens": 2048}))
    assert too_big.status_code == 400
    assert json.loads(too_big.body)["error"]["code"] == "request_exceeds_budget"
    emulator.clear_requests()
    while True:  # spend the day's budget: then a 429 naming it, with Retry-After
        answer = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(body))
        if answer.status_code != 200:
            break
    assert answer.status_code == 429
    error = json.loads(answer.body)["error"]
    assert error["code"] == "budget_exceeded" and "per UTC day" in error["message"]
    assert 0 < int(answer.headers["Retry-After"]) <= DAY
    assert usd_of(dynamodb, day_pk(record.key_id, int(time.time() // DAY))) <= 1000


def test_a_jobs_reservation_keeps_its_dollars() -> None:
    from chalicelib.jobs.store import reservation_from_json, reservation_to_json
    from chalicelib.tenancy.limits import Reservation
    others = (("tenant:t#d#1", "day", ("r4", "t4")), ("key_1#m#2027-01", "month", ()))
    held = Reservation("key_1", "key_1#d#1", 7, 300, True, (), ("r5",), micros=1100,
                       others=others)
    # A job's worker settles every item the reservation holds: the tenant's and the month's too.
    assert reservation_from_json(reservation_to_json(held)) == held
    old = '{"key_id":"k","day_pk":"k#d#1","minute":1,"tokens":3,"held":true}'  # before budgets
    assert reservation_from_json(old) == Reservation("k", "k#d#1", 1, 3, True, ())
