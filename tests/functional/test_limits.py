"""Per-key limits against a real DynamoDB API (moto), with an injected clock."""
from __future__ import annotations

import json
import threading
import uuid
import time
from typing import Any

import pytest

from chalicelib.tenancy.auth import Caller
from chalicelib.chat import ChatRequest, LimitStatus, Message
from chalicelib.errors import (LimiterUnavailableError, RateLimitExceededError,
                               RequestExceedsLimitError)
from chalicelib.tenancy.keys import KeyStore, Limits
from chalicelib.tenancy.limits import DAY, Limiter, Reservation, minute_names, reservation_size
from chalicelib.models.prompting import render
from devstack.prompt_tokens import count_prompt_tokens
from tests.conftest import MODEL, ApiFactory
from tests.support import EmulatorControl

USAGE = "llm-endpoint-dev-usage"
T0 = 1_800_000_000.0  # a minute and day boundary: 1_800_000_000 % 86_400 == 32_000


class Clock:
    def __init__(self, now: float = T0 + 10) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def caller(**limits: int | None) -> Caller:
    return Caller("acme", f"key_{uuid.uuid4().hex[:16]}", Limits(**limits))


def usage(dynamodb: Any, pk: str) -> dict[str, int]:
    item = dynamodb.get_item(TableName=USAGE, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item", {})
    return {k: int(v["N"]) for k, v in item.items() if k in ("requests", "tokens")}


def minute_usage(dynamodb: Any, reservation: Reservation) -> dict[str, int]:
    """The minute's counters, which live on the key's day item."""
    item = dynamodb.get_item(TableName=USAGE, Key={"pk": {"S": reservation.day_pk}},
                             ConsistentRead=True).get("Item", {})
    r, t = minute_names(reservation.minute)
    return {name: int(item[attr]["N"]) for name, attr in (("requests", r), ("tokens", t))
            if attr in item}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(dynamodb: Any, clock: Clock) -> Limiter:
    return Limiter(dynamodb, USAGE, clock)


def test_requests_per_minute_window(limiter: Limiter, clock: Clock) -> None:
    who = caller(requests_per_minute=3)
    statuses = [limiter.admit(who, 10).status for _ in range(3)]
    assert [s[0].remaining for s in statuses] == [2, 1, 0]
    with pytest.raises(RateLimitExceededError) as caught:
        limiter.admit(who, 10)
    minute_end = (int(clock.now) // 60 + 1) * 60
    assert caught.value.code == "requests_per_minute_exceeded"
    assert caught.value.retry_after == minute_end - int(clock.now)
    assert caught.value.status == (LimitStatus("requests", 3, 0, caught.value.retry_after),)
    clock.now = minute_end + 0.5  # the next minute is a new window
    assert limiter.admit(who, 10).status[0].remaining == 2


def test_tokens_per_minute_and_settle(limiter: Limiter, dynamodb: Any) -> None:
    who = caller(tokens_per_minute=1000)
    first = limiter.admit(who, 400)
    limiter.admit(who, 400)
    with pytest.raises(RateLimitExceededError) as caught:
        limiter.admit(who, 400)
    assert caught.value.code == "tokens_per_minute_exceeded"
    limiter.settle(first, 100)  # the first used far less than it reserved
    third = limiter.admit(who, 400)
    assert minute_usage(dynamodb, third) == {"requests": 3, "tokens": 900}
    assert third.status == (LimitStatus("tokens", 1000, 100, third.status[0].reset_seconds),)


def test_tokens_per_day_budget_across_minutes(limiter: Limiter, clock: Clock, dynamodb: Any) -> None:
    who = caller(tokens_per_day=1000)
    for minute in range(3):
        clock.now = T0 + 60 * minute + 1
        reservation = limiter.admit(who, 300)
        limiter.settle(reservation, 300)
    assert usage(dynamodb, reservation.day_pk) == {"requests": 3, "tokens": 900}
    with pytest.raises(RateLimitExceededError) as caught:
        limiter.admit(who, 300)
    day_end = (int(clock.now) // DAY + 1) * DAY
    assert caught.value.code == "tokens_per_day_exceeded"
    assert caught.value.retry_after == day_end - int(clock.now)
    clock.now = day_end + 1
    assert limiter.admit(who, 300).status[0].remaining == 700


def test_a_request_larger_than_a_limit_can_never_pass(limiter: Limiter) -> None:
    with pytest.raises(RequestExceedsLimitError) as caught:
        limiter.admit(caller(tokens_per_minute=100), 101)
    assert caught.value.param == "max_tokens"


def test_day_refusal_takes_back_the_minute_reservation(limiter: Limiter, dynamodb: Any) -> None:
    who = caller(requests_per_minute=10, tokens_per_minute=1000, tokens_per_day=500)
    first = limiter.admit(who, 400)
    with pytest.raises(RateLimitExceededError) as caught:
        limiter.admit(who, 400)
    assert caught.value.code == "tokens_per_day_exceeded"
    assert minute_usage(dynamodb, first) == {"requests": 1, "tokens": 400}


def test_failure_releases_tokens_but_counts_the_request(limiter: Limiter, dynamodb: Any) -> None:
    who = caller(requests_per_minute=10, tokens_per_day=1000)

    def boom() -> int:
        raise RuntimeError("bedrock failed")
    with pytest.raises(RuntimeError):
        limiter.run(who, 600, boom, lambda used: (used, None))
    reservation = limiter.admit(who, 900)  # the 600 came back
    assert usage(dynamodb, reservation.day_pk) == {"requests": 2, "tokens": 900}


def test_unlimited_keys_reserve_nothing_but_usage_is_counted(limiter: Limiter, dynamodb: Any) -> None:
    who = caller()
    result, reservation = limiter.run(who, 10**9, lambda: 42, lambda _: (42, None))
    assert (result, reservation.held, reservation.status) == (42, False, ())
    assert usage(dynamodb, reservation.day_pk) == {"requests": 1, "tokens": 42}
    assert minute_usage(dynamodb, reservation) == {}


def test_an_unreachable_table_refuses_requests(dynamodb: Any, clock: Clock) -> None:
    limiter = Limiter(dynamodb, "no-such-table", clock)
    with pytest.raises(LimiterUnavailableError):
        limiter.admit(caller(requests_per_minute=5), 10)


@pytest.mark.parametrize("used_fraction", [1.0, 0.5])
def test_concurrent_requests_never_overrun_the_daily_budget(dynamodb: Any, clock: Clock,
                                                            used_fraction: float) -> None:
    """100 simultaneous requests against one key's budget through the real
    DynamoDB code path: admitted work never exceeds the budget."""
    reserve, budget = 300, 3000
    who = caller(tokens_per_day=budget)
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(100)

    def one() -> None:
        limiter = Limiter(dynamodb, USAGE, clock)
        start.wait()
        try:
            limiter.run(who, reserve, lambda: None, lambda _: (int(reserve * used_fraction), None))
            outcome = "ok"
        except RateLimitExceededError as exc:
            outcome = exc.code
        with lock:
            outcomes.append(outcome)
    threads = [threading.Thread(target=one) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    day_pk = f"{who.key_id}#d#{int(clock.now) // DAY}"
    spent = usage(dynamodb, day_pk)["tokens"]
    assert len(outcomes) == 100 and set(outcomes) <= {"ok", "tokens_per_day_exceeded"}
    assert spent <= budget
    assert spent == outcomes.count("ok") * int(reserve * used_fraction)
    if used_fraction == 1.0:
        assert outcomes.count("ok") == budget // reserve  # exactly as many as fit


def test_reservation_size_is_the_prompt_as_bedrock_counts_it_plus_max_tokens() -> None:
    request = ChatRequest(messages=(Message("user", "x" * 300),), model=MODEL, max_tokens=100,
                          temperature=0.5, top_p=0.9)
    prompt = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + "x" * 300
              + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert reservation_size(request) == count_prompt_tokens(prompt) + 100
    # Token-dense text (1 to 2 bytes a token) reserves what it costs, where
    # the old estimate of three bytes a token fell short.
    digits = "".join(str(i % 10) + " " * (i % 7 == 0) for i in range(3000))
    dense = ChatRequest(messages=(Message("user", digits),), model=MODEL, max_tokens=100,
                        temperature=0.5, top_p=0.9)
    real = count_prompt_tokens(render(dense).text)
    assert real > len(digits) / 3 and reservation_size(dense) == real + 100


def test_a_limited_key_counts_the_prompt_and_an_unlimited_one_never_does(limiter: Limiter) -> None:
    counted: list[str] = []

    def size() -> int:
        counted.append("counted")
        return 50

    assert limiter.admit(caller(), size).tokens == 0 and counted == []
    assert limiter.admit(caller(tokens_per_day=1000), size).tokens == 50 and counted == ["counted"]


# --- through the app

def limited_key(key_store: KeyStore, **limits: int | None) -> str:
    secret, _ = key_store.create("acme", now=int(time.time()), limits=limits)
    return secret


def test_rpm_through_the_app(make_api: ApiFactory, key_store: KeyStore) -> None:
    api = make_api(key=limited_key(key_store, requests_per_minute=2), clock=Clock())
    body = json.dumps({"prompt": "hi", "max_tokens": 20})
    ok = [api.http.post("/chat", headers={"Content-Type": "application/json"}, body=body)
          for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["1", "0"]
    assert ok[0].headers["x-ratelimit-limit-requests"] == "2"
    refused = api.http.post("/chat", headers={"Content-Type": "application/json"}, body=body)
    assert refused.status_code == 429
    error = json.loads(refused.body)["error"]
    assert (error["code"], error["type"]) == ("requests_per_minute_exceeded", "rate_limit_error")
    assert refused.headers["Retry-After"] == "50"  # T0 + 10 -> 50 s to the next minute
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_budget_through_the_app_and_oversized_requests(make_api: ApiFactory, key_store: KeyStore,
                                                       emulator: EmulatorControl) -> None:
    api = make_api(key=limited_key(key_store, tokens_per_day=300), clock=Clock())
    headers = {"Content-Type": "application/json"}
    too_big = api.http.post("/chat", headers=headers, body=json.dumps({"prompt": "hi"}))
    assert too_big.status_code == 400
    assert json.loads(too_big.body)["error"]["code"] == "request_exceeds_limit"
    answers = [api.http.post("/chat", headers=headers,
                             body=json.dumps({"prompt": "hi", "max_tokens": 100}))
               for _ in range(6)]
    codes = [r.status_code for r in answers]
    assert codes[0] == 200 and codes[-1] == 429
    assert json.loads(answers[-1].body)["error"]["code"] == "tokens_per_day_exceeded"
    assert len(emulator.requests()) == codes.count(200)


def test_bedrock_failure_gives_the_tokens_back(make_api: ApiFactory, key_store: KeyStore,
                                               emulator: EmulatorControl) -> None:
    api = make_api(key=limited_key(key_store, tokens_per_day=200), clock=Clock())
    headers = {"Content-Type": "application/json"}
    body = json.dumps({"prompt": "hi", "max_tokens": 150})
    emulator.configure(fail_next=["ModelErrorException"])
    assert api.http.post("/chat", headers=headers, body=body).status_code == 502
    assert api.http.post("/chat", headers=headers, body=body).status_code == 200


def test_limits_from_stage_defaults(make_api: ApiFactory, key_store: KeyStore) -> None:
    secret, _ = key_store.create("acme", now=int(time.time()))  # sets no limits of its own
    api = make_api(key=secret, clock=Clock(), default_limits=Limits(requests_per_minute=1))
    body = json.dumps({"prompt": "hi"})
    headers = {"Content-Type": "application/json"}
    assert api.http.post("/chat", headers=headers, body=body).status_code == 200
    assert api.http.post("/chat", headers=headers, body=body).status_code == 429


def test_openai_route_is_limited_too(make_api: ApiFactory, key_store: KeyStore) -> None:
    api = make_api(key=limited_key(key_store, requests_per_minute=1), clock=Clock())
    body = json.dumps({"model": "us.meta.llama3-1-8b-instruct-v1:0", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Content-Type": "application/json"}
    first = api.http.post("/v1/chat/completions", headers=headers, body=body)
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining-requests"] == "0"
    assert api.http.post("/v1/chat/completions", headers=headers, body=body).status_code == 429


def test_rpm_only_keys_settle_on_the_day(limiter: Limiter, dynamodb: Any) -> None:
    who = caller(requests_per_minute=5)
    reservation = limiter.admit(who, 300)
    assert reservation.held
    limiter.settle(reservation, 120)
    assert minute_usage(dynamodb, reservation) == {"requests": 1, "tokens": 120}
    assert usage(dynamodb, reservation.day_pk) == {"requests": 1, "tokens": 120}


def test_day_refusal_of_an_rpm_only_key_takes_back_its_request(limiter: Limiter,
                                                               dynamodb: Any) -> None:
    who = caller(requests_per_minute=5, tokens_per_day=100)
    first = limiter.admit(who, 80)
    with pytest.raises(RateLimitExceededError):
        limiter.admit(who, 80)
    assert minute_usage(dynamodb, first) == {"requests": 1, "tokens": 80}


class CountingDynamoDB:
    """The real client, counting the calls that reach DynamoDB."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def counted(**kwargs: Any) -> Any:
            self.calls.append(name)
            return method(**kwargs)
        return counted


@pytest.mark.parametrize("limits,round_trips", [
    ({"requests_per_minute": 10, "tokens_per_minute": 5000, "tokens_per_day": 50_000}, 2),
    ({"tokens_per_day": 50_000}, 2),
    ({"requests_per_minute": 10}, 2),
    ({}, 1),
])
def test_round_trips_per_request(dynamodb: Any, clock: Clock, limits: dict[str, int],
                                 round_trips: int) -> None:
    """Issue 11 item 13: a limited key reserves the minute and the day in one
    update and settles in one; a key without limits only counts its usage."""
    counting = CountingDynamoDB(dynamodb)
    limiter = Limiter(counting, USAGE, clock)
    who = caller(**limits)
    for minute in range(3):  # across minutes, old counters dropped on the way
        clock.now = T0 + 60 * minute + 5
        counting.calls.clear()
        limiter.run(who, 300, lambda: None, lambda _: (120, None))
        assert counting.calls == ["update_item"] * round_trips
    if limits:
        item = dynamodb.get_item(TableName=USAGE, Key={"pk": {"S": f"{who.key_id}#d#{int(T0) // DAY}"}},
                                 ConsistentRead=True)["Item"]
        minutes = sorted(int(name[1:]) for name in item if name[0] in "rt" and name[1:].isdigit())
        assert set(minutes) <= {int(clock.now) // 60 - 1, int(clock.now) // 60}
        assert usage(dynamodb, f"{who.key_id}#d#{int(T0) // DAY}") == {"requests": 3, "tokens": 360}


def test_a_failed_call_releases_in_one_round_trip(dynamodb: Any, clock: Clock) -> None:
    counting = CountingDynamoDB(dynamodb)
    limiter = Limiter(counting, USAGE, clock)
    who = caller(tokens_per_day=1000)

    def boom() -> None:
        raise RuntimeError("bedrock failed")
    with pytest.raises(RuntimeError):
        limiter.run(who, 600, boom, lambda _: (0, None))
    assert counting.calls == ["update_item", "update_item"]
