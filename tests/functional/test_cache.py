"""The response cache: deterministic requests only, hits free, TTL, single flight."""
from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from chalicelib import cache as cache_module
from chalicelib.cache import ResponseCache, cache_key
from chalicelib.chat import ChatRequest, Completion, Message, Usage
from chalicelib.tenancy.keys import KeyStore
from tests.conftest import MODEL, ApiFactory
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
CACHE = "llm-endpoint-dev-cache"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def ask(api: Any, body: dict[str, Any]) -> Any:
    return api.http.post("/chat", headers=JSON, body=json.dumps(body))


def unique(prompt: str) -> str:
    return f"{prompt} {time.monotonic_ns()}"  # tests share the cache table


def test_hit_and_miss(make_api: ApiFactory, emulator: EmulatorControl) -> None:
    api = make_api()
    body = {"prompt": unique("cache me"), "temperature": 0}
    first, second = ask(api, body), ask(api, body)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert json.loads(first.body)["text"] == json.loads(second.body)["text"]
    assert len(emulator.requests()) == 1
    other = ask(api, {**body, "max_tokens": 7})  # other parameters, other entry
    assert other.headers["x-cache"] == "miss" and len(emulator.requests()) == 2


def test_only_deterministic_requests_are_cached(make_api: ApiFactory,
                                                emulator: EmulatorControl) -> None:
    api = make_api()
    body = {"prompt": unique("warm"), "temperature": 0.2}
    assert "x-cache" not in ask(api, body).headers
    ask(api, body)
    assert len(emulator.requests()) == 2


def test_the_cache_can_be_switched_off(make_api: ApiFactory, emulator: EmulatorControl) -> None:
    api = make_api(cache_enabled=False)
    body = {"prompt": unique("off"), "temperature": 0}
    assert "x-cache" not in ask(api, body).headers
    ask(api, body)
    assert len(emulator.requests()) == 2


def test_entries_expire(make_api: ApiFactory, emulator: EmulatorControl) -> None:
    clock = Clock()
    api = make_api(clock=clock, cache_ttl_s=60)
    body = {"prompt": unique("ttl"), "temperature": 0}
    ask(api, body)
    clock.now += 59
    assert ask(api, body).headers["x-cache"] == "hit"
    clock.now += 2
    assert ask(api, body).headers["x-cache"] == "miss"
    assert len(emulator.requests()) == 2


def test_a_hit_costs_no_tokens(make_api: ApiFactory, key_store: KeyStore, dynamodb: Any) -> None:
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 100_000})
    api = make_api(key=secret)
    body = {"prompt": unique("free"), "temperature": 0, "max_tokens": 50}

    def spent() -> int:
        items = dynamodb.scan(TableName="llm-endpoint-dev-usage")["Items"]
        return sum(int(i["tokens"]["N"]) for i in items if i["pk"]["S"].startswith(record.key_id + "#d#"))
    miss = json.loads(ask(api, body).body)
    assert spent() == miss["usage"]["total_tokens"]
    assert ask(api, body).headers["x-cache"] == "hit"
    assert spent() == miss["usage"]["total_tokens"]


def test_openai_route_uses_the_cache(make_api: ApiFactory, emulator: EmulatorControl) -> None:
    api = make_api()
    body = {"model": MODEL, "temperature": 0,
            "messages": [{"role": "user", "content": unique("oa")}]}
    answers = [api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(body))
               for _ in range(2)]
    assert [a.headers["x-cache"] for a in answers] == ["miss", "hit"]
    assert len(emulator.requests()) == 1
    # OpenAI's counters: a hit processed none of the prompt afresh.
    miss, hit = (json.loads(a.body)["usage"] for a in answers)
    assert miss["prompt_tokens_details"] == {"cached_tokens": 0}
    assert hit["prompt_tokens"] == miss["prompt_tokens"] > 0
    assert hit["prompt_tokens_details"] == {"cached_tokens": hit["prompt_tokens"]}


def request(prompt: str) -> ChatRequest:
    return ChatRequest(messages=(Message("user", prompt),), model=MODEL, max_tokens=10,
                       temperature=0.0, top_p=0.9)


def test_concurrent_identical_misses_make_one_call(dynamodb: Any) -> None:
    cache = ResponseCache(dynamodb, CACHE, time.time, ttl_s=60, lease_s=5, poll_s=0.02)
    calls: list[int] = []
    answers: list[Completion] = []
    lock = threading.Lock()
    req = request(unique("flight"))

    def compute() -> Completion:
        with lock:
            calls.append(1)
        time.sleep(0.3)
        return Completion(MODEL, "the answer", "stop", Usage(3, 2))

    def one() -> None:
        answer = cache.get_or_compute(req, "t1", compute)
        with lock:
            answers.append(answer)
    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert {a.text for a in answers} == {"the answer"}
    assert sum(not a.cached for a in answers) == 1  # the one that computed


def test_a_failed_computation_lets_the_next_caller_try(dynamodb: Any) -> None:
    cache = ResponseCache(dynamodb, CACHE, time.time, ttl_s=60, lease_s=5)
    req = request(unique("fails"))

    def boom() -> Completion:
        raise RuntimeError("bedrock down")
    with pytest.raises(RuntimeError):
        cache.get_or_compute(req, "t1", boom)
    answer = cache.get_or_compute(req, "t1", lambda: Completion(MODEL, "later", "stop", Usage(1, 1)))
    assert answer.text == "later" and not answer.cached


def test_an_answer_that_cannot_be_stored_lets_go_of_the_entry(dynamodb: Any) -> None:
    # An item holds 400 KB: the leader's answer is served but not cached,
    # and its pending claim must not make the next callers wait out its lease.
    cache = ResponseCache(dynamodb, CACHE, time.time, ttl_s=60, lease_s=30)
    req = request(unique("too large"))
    huge = Completion(MODEL, "x" * 500_000, "stop", Usage(1, 1))
    assert cache.get_or_compute(req, "t1", lambda: huge).text == huge.text
    item = dynamodb.get_item(TableName=CACHE, Key={"pk": {"S": cache_key(req, "t1")}},
                             ConsistentRead=True).get("Item")
    assert item is None
    started = time.monotonic()
    later = cache.get_or_compute(req, "t1", lambda: Completion(MODEL, "ok", "stop", Usage(1, 1)))
    assert later.text == "ok" and time.monotonic() - started < 5  # not the leader's 30 s


def test_followers_back_off(dynamodb: Any) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)
    cache = ResponseCache(dynamodb, CACHE, time.time, ttl_s=60, lease_s=30, sleep=sleep)
    req = request(unique("a slow leader"))
    assert cache._claim(cache_key(req, "t1"), 30)  # another caller leads, and takes its time
    answer = cache.get_or_compute(req, "t1", lambda: Completion(MODEL, "own", "stop", Usage(1, 1)),
                                  wait_s=2.0)
    assert answer.text == "own"  # its own wait spent: it computed its own
    assert len(waits) <= 8  # polling every 50 ms would read 40 times
    assert all(w <= cache_module.MAX_POLL_S for w in waits)


@pytest.mark.parametrize("attempt,low,high", [(0, 0.025, 0.05), (1, 0.05, 0.1), (3, 0.2, 0.4),
                                              (5, 0.5, 1.0), (40, 0.5, 1.0)])
def test_poll_delays_double_with_jitter_up_to_a_cap(attempt: int, low: float,
                                                    high: float) -> None:
    delays = {cache_module.poll_delay_s(0.05, attempt) for _ in range(50)}
    assert all(low <= d <= high for d in delays) and len(delays) > 1


def test_an_unreachable_cache_never_fails_a_request(dynamodb: Any) -> None:
    cache = ResponseCache(dynamodb, "no-such-table", time.time, ttl_s=60)
    answer = cache.get_or_compute(request("x"), "t1", lambda: Completion(MODEL, "ok", "stop", Usage(1, 1)))
    assert answer.text == "ok"


@pytest.mark.parametrize("change", [{"model": "other"}, {"max_tokens": 11}, {"top_p": 0.5},
                                    {"stop": ("x",)}, {"messages": (Message("user", "y"),)}])
def test_the_key_covers_everything_that_shapes_the_answer(change: dict) -> None:
    base = request("x")
    assert cache_key(ChatRequest(**{**base.__dict__, **change}), "t1") != cache_key(base, "t1")


def test_the_key_is_per_tenant() -> None:
    assert cache_key(request("x"), "acme") != cache_key(request("x"), "globex")


def test_the_cache_never_crosses_tenants(make_api: ApiFactory, key_store: KeyStore,
                                         emulator: EmulatorControl) -> None:
    """Tenant B asking what tenant A asked learns nothing: a miss, a charge,
    its own Bedrock call. A second key of tenant A does hit A's entry."""
    now = int(time.time())
    acme, _ = key_store.create("acme-cache", now=now)
    acme_again, _ = key_store.create("acme-cache", now=now)
    globex, _ = key_store.create("globex-cache", now=now)
    body = {"prompt": unique("a private question"), "temperature": 0}
    first = ask(make_api(key=acme), body)
    other = ask(make_api(key=globex), body)
    assert (first.headers["x-cache"], other.headers["x-cache"]) == ("miss", "miss")
    assert json.loads(other.body)["usage"]["cost_usd"] > 0
    assert len(emulator.requests()) == 2
    assert ask(make_api(key=acme_again), body).headers["x-cache"] == "hit"
    assert len(emulator.requests()) == 2
