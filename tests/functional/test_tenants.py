"""A tenant's own limits, shared by all its keys, against moto's DynamoDB: a
request must pass its key's limits and its tenant's, exactly under
concurrency, with the round trips the design promises."""
from __future__ import annotations

import io
import json
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.errors import RateLimitExceededError
from chalicelib.tenancy.auth import Caller
from chalicelib.tenancy.keys import KeyAdminError, KeyStore, Limits
from chalicelib.tenancy.limits import DAY, Limiter, Need, day_pk, month_pk, tenant_owner
from scripts import keys as cli
from tests.conftest import MODEL, ApiFactory
from tests.functional.test_budgets import T0, Clock, usd_of
from tests.functional.test_limits import USAGE, CountingDynamoDB, usage

JSON = {"Content-Type": "application/json"}
NEED = Need(MODEL, 4000, 1000)  # worst case 1,100 µ$; settles to 1,000 µ$


def team(**shared: Any) -> tuple[str, Limits]:
    return f"team-{uuid.uuid4().hex[:8]}", Limits(**shared)


def key_of(tenant: str, shared: Limits, **own: Any) -> Caller:
    return Caller(tenant, f"key_{uuid.uuid4().hex[:16]}", Limits(**own), tenant_limits=shared)


def test_many_keys_of_a_tenant_released_at_once_never_overrun_its_month_budget(
        dynamodb: Any) -> None:
    """A tenant with a month budget that fits five worst cases, twenty
    requests from four keys at once: five are admitted, the tenant's settled
    spend is five costs, and each key's own usage is counted."""
    clock = Clock()
    tenant, shared = team(usd_per_month=Decimal("0.0055"))
    keys = [key_of(tenant, shared) for _ in range(4)]
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()
    start, decided = threading.Barrier(20), threading.Barrier(20)

    def one(who: Caller) -> None:
        limiter = Limiter(dynamodb, USAGE, clock)
        start.wait()
        try:
            reservation = limiter.admit(who, NEED)
            outcome = "ok"
        except RateLimitExceededError as exc:
            reservation, outcome = None, exc.code
            assert "tenant's" in exc.message and "per UTC month" in exc.message
        with lock:
            outcomes.append((who.key_id, outcome))
        decided.wait()
        if reservation is not None:
            limiter.settle(reservation, 4500, Decimal("0.001"))
    threads = [threading.Thread(target=one, args=(keys[i % 4],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o for _, o in outcomes].count("ok") == 5
    assert usd_of(dynamodb, month_pk(tenant_owner(tenant), "2027-01")) == 5000
    day = int(T0 // DAY)
    assert usd_of(dynamodb, day_pk(tenant_owner(tenant), day)) == 5000
    per_key = {k.key_id: usd_of(dynamodb, day_pk(k.key_id, day)) for k in keys}
    assert sum(per_key.values()) == 5000  # every key's own spend, summing to the tenant's
    admitted = {k: sum(1 for key, o in outcomes if key == k and o == "ok") for k in per_key}
    assert all(per_key[k] == 1000 * n for k, n in admitted.items())


def test_a_request_must_pass_its_keys_limits_and_its_tenants(dynamodb: Any) -> None:
    clock = Clock()
    tenant, shared = team(tokens_per_day=10_000)
    limiter = Limiter(dynamodb, USAGE, clock)
    first, second = key_of(tenant, shared), key_of(tenant, shared, requests_per_minute=1)
    reservation = limiter.admit(first, 6000)
    assert [(s.name, s.limit, s.remaining) for s in reservation.status] == [
        ("tenant-tokens-day", 10_000, 4000)]
    with pytest.raises(RateLimitExceededError) as shared_refusal:
        limiter.admit(second, 6000)  # the second key has room; the tenant has not
    assert shared_refusal.value.code == "tokens_per_day_exceeded"
    assert "tenant's (shared by its keys) limit of 10000" in shared_refusal.value.message
    limiter.settle(reservation, 1000)  # gives 5,000 back to the tenant
    limiter.admit(second, 6000)
    with pytest.raises(RateLimitExceededError) as own_refusal:
        limiter.admit(second, 10)
    assert own_refusal.value.code == "requests_per_minute_exceeded"
    assert own_refusal.value.message.startswith("This key's limit of 1 requests per minute")
    tenant_day = usage(dynamodb, day_pk(tenant_owner(tenant), int(T0 // DAY)))
    assert tenant_day == {"requests": 2, "tokens": 7000}


def test_a_refused_transaction_leaves_nothing_reserved(dynamodb: Any) -> None:
    clock = Clock()
    tenant, shared = team(requests_per_minute=100)
    limiter = Limiter(dynamodb, USAGE, clock)
    who = key_of(tenant, shared, tokens_per_day=100)
    limiter.admit(who, 60)
    with pytest.raises(RateLimitExceededError):
        limiter.admit(who, 60)  # the key's day refuses: the tenant's item is untouched too
    assert usage(dynamodb, day_pk(tenant_owner(tenant), int(T0 // DAY))) == {
        "requests": 1, "tokens": 60}


@pytest.mark.parametrize("own,shared,calls", [
    ({}, {}, ["update_item"]),  # nothing limited: the usage write alone
    ({"tokens_per_day": 10**6}, {}, ["update_item", "update_item"]),
    # The tenant's item joins the key's: a transaction each way, and a read
    # for the headers' figures (a transaction returns none).
    ({}, {"tokens_per_day": 10**6},
     ["transact_write_items", "batch_get_item", "transact_write_items"]),
    ({"usd_per_month": Decimal(1)}, {"usd_per_month": Decimal(5)},
     ["transact_write_items", "batch_get_item", "transact_write_items"]),
])
def test_round_trips_with_a_tenant(dynamodb: Any, own: dict[str, Any], shared: dict[str, Any],
                                   calls: list[str]) -> None:
    counting = CountingDynamoDB(dynamodb)
    limiter = Limiter(counting, USAGE, Clock())
    tenant, limits = team(**shared)
    who = key_of(tenant, limits, **own)
    limiter.run(who, NEED, lambda: None, lambda _: (50, Decimal("0.00001")))
    counting.calls.clear()
    limiter.run(who, NEED, lambda: None, lambda _: (50, Decimal("0.00001")))
    assert counting.calls == calls


def test_tenant_limits_are_stored_beside_the_keys(key_store: KeyStore) -> None:
    secret, record = key_store.create("acme-team", now=0)
    assert key_store.tenant_limits("acme-team") == Limits()
    assert key_store.set_tenant_limits("acme-team", {"usd_per_month": "5", "tokens_per_day": 9})
    assert key_store.tenant_limits("acme-team") == Limits(tokens_per_day=9,
                                                          usd_per_month=Decimal(5))
    key_store.set_tenant_limits("acme-team", {"tokens_per_day": None}, ("usd_per_month",))
    assert key_store.tenant_limits("acme-team") == Limits()
    # The tenant's item is no key: listing, revoking and usage skip it.
    assert [r.key_id for r in key_store.list() if r.tenant == "acme-team"] == [record.key_id]
    with pytest.raises(KeyAdminError):
        key_store.revoke("tenant#acme-team")
    with pytest.raises(KeyAdminError):
        key_store.set_tenant_limits("bad name!", {})
    with pytest.raises(KeyAdminError):
        key_store.set_tenant_limits("acme-team", {"usd_per_day": 0})


def test_the_cli_sets_and_shows_a_tenants_limits(key_store: KeyStore) -> None:
    def run(*argv: str) -> str:
        out = io.StringIO()
        cli.run(cli.parser().parse_args(["--stage", "dev", *argv]), key_store, out)
        return out.getvalue()
    assert "usd-month=5" in run("set-tenant-limits", "cli-team", "--usd-month", "5", "--rpm", "9")
    shown = run("tenant", "cli-team")
    assert shown.strip() == ("tenant cli-team: rpm=9 tpm=none tpd=none usd-day=none "
                             "usd-month=5  guardrail=-")


def test_a_tenant_budget_through_the_app(make_api: ApiFactory, key_store: KeyStore,
                                         dynamodb: Any) -> None:
    tenant = f"team-{uuid.uuid4().hex[:8]}"
    key_store.set_tenant_limits(tenant, {"usd_per_day": Decimal("0.0005")})
    first, _ = key_store.create(tenant, now=int(time.time()))
    second, _ = key_store.create(tenant, now=int(time.time()))
    body = {"model": MODEL, "max_tokens": 300, "messages": [{"role": "user", "content": "Hi"}]}
    api = make_api(key=first)
    ok = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(body))
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-limit-tenant-usd-day"] == "0.000500"
    spent = 0
    for secret in (first, second) * 20:  # both keys draw on the one budget
        answer = api.http.post("/v1/chat/completions", body=json.dumps(body),
                               headers={**JSON, "Authorization": f"Bearer {secret}"})
        if answer.status_code != 200:
            break
        spent += 1
    assert answer.status_code == 429 and spent < 40
    report = json.loads(api.http.get("/usage").body)["tenant_budgets"]["day"]
    assert report["limit_usd"] == 0.0005 and report["spent_usd"] <= 0.0005
    error = json.loads(answer.body)["error"]
    assert error["code"] == "budget_exceeded" and "tenant's" in error["message"]
    assert usd_of(dynamodb, day_pk(tenant_owner(tenant), int(time.time() // DAY))) <= 500
