"""The Messages routes' own key check: which header carries the key, what is
cached for how long, and that random keys cannot grow the cache."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.errors import AuthenticationError, AuthUnavailableError
from chalicelib.tenancy.header_auth import KeyCache, presented_key
from chalicelib.tenancy.keys import KeyRecord, Limits, new_secret

GOOD = new_secret()


class FakeStore:
    """The keys table: one usable key; counts lookups; can be down."""

    def __init__(self) -> None:
        self.lookups = 0
        self.down = False
        self.enabled = True

    def lookup(self, secret: str) -> KeyRecord | None:
        self.lookups += 1
        if self.down:
            raise ConnectionError("table unreachable")
        if secret != GOOD:
            return None
        return KeyRecord("key-1", "acme", self.enabled, 0, None, {})

    def tenant_policy(self, tenant: str) -> tuple[Limits, None]:
        return Limits(), None


@pytest.mark.parametrize("headers, key", [
    ({"x-api-key": "a"}, "a"),
    ({"authorization": "Bearer b"}, "b"),
    ({"authorization": "bearer  c "}, "c"),
    ({"x-api-key": "a", "authorization": "Bearer b"}, "a"),
    ({"x-api-key": " ", "authorization": "Bearer b"}, "b"),
    ({"authorization": "Basic b"}, None),
    ({"authorization": "Bearer"}, None),
    ({}, None),
])
def test_presented_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(headers) == key


def test_answers_are_cached_for_the_ttl_and_then_looked_up_again() -> None:
    store, cache = FakeStore(), KeyCache(30)
    store_any: Any = store
    assert cache.caller({"X-Api-Key": GOOD}, store_any, 100.0, Limits()).tenant == "acme"
    assert cache.caller({"Authorization": f"Bearer {GOOD}"}, store_any, 129.0, Limits())
    assert store.lookups == 1
    store.enabled = False  # revoked: refused once the TTL has passed
    with pytest.raises(AuthenticationError):
        cache.caller({"x-api-key": GOOD}, store_any, 130.0, Limits())
    assert store.lookups == 2
    with pytest.raises(AuthenticationError):  # the refusal is cached too
        cache.caller({"x-api-key": GOOD}, store_any, 131.0, Limits())
    assert store.lookups == 2


def test_missing_key_and_unreachable_table() -> None:
    store, cache = FakeStore(), KeyCache(30)
    with pytest.raises(AuthenticationError) as caught:
        cache.caller({}, store, 0.0, Limits())  # type: ignore[arg-type]
    assert caught.value.code == "missing_api_key" and store.lookups == 0
    store.down = True
    for _ in range(2):  # never cached: the next request asks again
        with pytest.raises(AuthUnavailableError):
            cache.caller({"x-api-key": GOOD}, store, 0.0, Limits())  # type: ignore[arg-type]
    assert store.lookups == 2


def test_random_keys_cannot_grow_the_cache_past_its_bound() -> None:
    store, cache = FakeStore(), KeyCache(30, max_entries=8)
    for index in range(50):
        with pytest.raises(AuthenticationError):
            cache.caller({"x-api-key": f"k{index}"}, store, 0.0, Limits())  # type: ignore[arg-type]
    assert len(cache._entries) == 8
