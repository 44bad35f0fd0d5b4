"""Bearer parsing, authentication decisions and the authorizer context (pure)."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.tenancy.auth import (Caller, authenticate, bearer_token, caller_from_context,
                                     caller_to_context)
from chalicelib.tenancy.keys import KeyRecord, Limits, hash_secret, new_secret, well_formed

GOOD = "llm_" + "x" * 43


@pytest.mark.parametrize("header,token", [
    (f"Bearer {GOOD}", GOOD), (f"bearer {GOOD}", GOOD), (f"BEARER   {GOOD}  ", GOOD),
    (None, None), ("", None), (GOOD, None), (f"Basic {GOOD}", None), ("Bearer", None),
    ("Bearer short", None), (f"Bearer {GOOD} extra", None), ("Bearer ключ-0123456789abcdefghijk", None),
    ("Bearer " + "a" * 201, None),
])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_new_secrets_are_long_random_and_well_formed() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(s.startswith("llm_") and len(s) == 47 and well_formed(s) for s in secrets)
    assert len(hash_secret(GOOD)) == 64 and hash_secret(GOOD) != GOOD


class FakeStore:
    def __init__(self, record: KeyRecord | None) -> None:
        self.record = record
        self.looked_up: list[str] = []

    def lookup(self, secret: str) -> KeyRecord | None:
        self.looked_up.append(secret)
        return self.record


def record(**changes: Any) -> KeyRecord:
    base = dict(key_id="key_1", tenant="acme", enabled=True, created_at=0, expires_at=None,
                limits={"requests_per_minute": 5, "tokens_per_day": None})
    return KeyRecord(**{**base, **changes})


DEFAULTS = Limits(requests_per_minute=60, tokens_per_minute=1000, tokens_per_day=10_000)


@pytest.mark.parametrize("stored,now,expected", [
    (record(), 100, Caller("acme", "key_1", Limits(5, 1000, None))),
    (record(limits={}), 100, Caller("acme", "key_1", DEFAULTS)),
    (record(expires_at=200), 100, Caller("acme", "key_1", Limits(5, 1000, None))),
    (record(expires_at=100), 100, None),
    (record(enabled=False), 100, None),
    (None, 100, None),
])
def test_authenticate(stored: KeyRecord | None, now: int, expected: Caller | None) -> None:
    assert authenticate(f"Bearer {GOOD}", FakeStore(stored), now, DEFAULTS) == expected  # type: ignore


def test_malformed_keys_cost_no_lookup() -> None:
    store = FakeStore(record())
    assert authenticate("Bearer nope", store, 0, DEFAULTS) is None  # type: ignore[arg-type]
    assert store.looked_up == []


@pytest.mark.parametrize("limits", [Limits(), Limits(1, 2, 3), Limits(None, 50, None)])
def test_context_round_trip(limits: Limits) -> None:
    caller = Caller("acme", "key_1", limits)
    context = caller_to_context(caller)
    assert all(isinstance(v, str) for v in context.values())
    assert caller_from_context({**context, "principalId": "acme"}) == caller
