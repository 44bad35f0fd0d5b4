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

    def tenant_policy(self, tenant: str) -> tuple[Limits, Any]:
        return self.shared, None

    shared = Limits()


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


@pytest.mark.parametrize("limits,models", [
    (Limits(), None), (Limits(1, 2, 3), ("us.meta.llama3-1-8b-instruct-v1:0",)),
    (Limits(None, 50, None), ("us.anthropic.claude-haiku-4-5-20251001-v1:0",
                              "amazon.titan-embed-text-v2:0"))])
def test_context_round_trip(limits: Limits, models: tuple[str, ...] | None) -> None:
    from decimal import Decimal
    caller = Caller("acme", "key_1", limits, models,
                    Limits(requests_per_minute=9, usd_per_month=Decimal("5.25")))
    context = caller_to_context(caller)
    assert all(isinstance(v, str) for v in context.values())
    assert caller_from_context({**context, "principalId": "acme"}) == caller


@pytest.mark.parametrize("stage,default,models,allowed,chosen", [
    (("a", "b", "e"), "a", None, ("a", "b", "e"), "a"),
    (("a", "b", "e"), "a", ("b", "a"), ("a", "b"), "a"),  # the stage's order
    (("a", "b", "e"), "a", ("e", "b"), ("b", "e"), "b"),  # default: the key's first chat model
    (("a", "b", "e"), "a", ("e",), ("e",), "a"),  # no chat model: the default, refused
    (("a", "b"), "a", ("n",), (), "a"),  # the key's model is not the stage's
])
def test_a_key_sees_the_stage_narrowed_to_its_models(stage: tuple[str, ...], default: str,
                                                     models: tuple[str, ...] | None,
                                                     allowed: tuple[str, ...],
                                                     chosen: str) -> None:
    import dataclasses

    from chalicelib.config import Settings
    from chalicelib.tenancy.access import settings_for
    ids = {"a": "us.meta.llama3-1-8b-instruct-v1:0",
           "b": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
           "e": "amazon.titan-embed-text-v2:0", "n": "us.amazon.nova-micro-v1:0"}
    settings = dataclasses.replace(Settings(), allowed_models=tuple(ids[m] for m in stage),
                                   default_model=ids[default])
    caller = Caller("acme", "key_1", Limits(),
                    None if models is None else tuple(ids[m] for m in models))
    seen = settings_for(settings, caller)
    assert seen.allowed_models == tuple(ids[m] for m in allowed)
    assert seen.default_model == ids[chosen]


def test_the_tenants_limits_come_with_the_key() -> None:
    store = FakeStore(record())
    store.shared = Limits(tokens_per_day=1000)
    caller = authenticate("Bearer " + "k" * 40, store, 100, DEFAULTS)  # type: ignore[arg-type]
    assert caller is not None and caller.tenant_limits == Limits(tokens_per_day=1000)
