"""Every route x every key state, through the built-in authorizer."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from chalicelib.tenancy.keys import KeyStore
from tests.conftest import MODEL, ApiFactory

CHAT = json.dumps({"prompt": "hi"})
COMPLETION = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
ROUTES = [
    ("POST", "/chat", CHAT),
    ("POST", "/v1/chat/completions", COMPLETION),
    ("GET", "/v1/models", ""),
    ("GET", f"/v1/models/{MODEL}", ""),
]
MISSING = ("missing_api_key", "invalid_request_error")
INVALID = ("invalid_api_key", "invalid_request_error")


def gateway_error(response: Any) -> tuple[int, str, str]:
    """(status, code, type) of a gateway answer, which carries x-request-id too."""
    assert response.headers.get("x-request-id")
    error = json.loads(response.body)["error"]
    return response.status_code, error["code"], error["type"]


@pytest.fixture
def keys(key_store: KeyStore, api_key: str) -> dict[str, str | None]:
    now = int(time.time())
    revoked, record = key_store.create("acme", now=now)
    key_store.revoke(record.key_id)
    expired, _ = key_store.create("acme", now=now - 100, expires_at=now - 1)
    future, _ = key_store.create("acme", now=now, expires_at=now + 3600)
    return {
        "valid": api_key,
        "valid, expiring later": future,
        "missing": None,
        "malformed: short": "abc",
        "malformed: spaces": "not a key at all but long enough",
        "malformed: non-ascii": "kéy-ключ-0123456789abcdefghij",
        "unknown": "llm_" + "A" * 43,
        "revoked": revoked,
        "expired": expired,
    }


def header_for(state: str, secret: str | None) -> dict[str, str]:
    if secret is None:
        return {}
    if state == "valid":
        return {"Authorization": f"bearer {secret}"}  # the scheme is case-insensitive
    return {"Authorization": f"Bearer {secret}"}


STATES = ["valid", "valid, expiring later", "missing", "malformed: short", "malformed: spaces",
          "malformed: non-ascii", "unknown", "revoked", "expired"]


@pytest.mark.parametrize("method,path,body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("state", STATES)
def test_route_by_key_state(make_api: ApiFactory, keys: dict[str, str | None], method: str,
                            path: str, body: str, state: str) -> None:
    api = make_api(key=None)
    headers = {"Content-Type": "application/json", **header_for(state, keys[state])}
    response = api.http.request(method, path, headers=headers, body=body)
    if state.startswith("valid"):
        assert response.status_code == 200
    elif state == "missing":
        assert gateway_error(response) == (401, *MISSING)
    else:
        assert gateway_error(response) == (401, *INVALID)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token " + "a" * 30,
                                    "llm_" + "a" * 43])
def test_other_schemes_are_refused(make_api: ApiFactory, api_key: str, header: str) -> None:
    api = make_api(key=None)
    response = api.http.request("GET", "/v1/models", headers={"Authorization": header})
    assert gateway_error(response) == (401, *INVALID)


def test_health_needs_no_key(make_api: ApiFactory) -> None:
    api = make_api(key=None)
    response = api.http.get("/health")
    assert (response.status_code, json.loads(response.body)) == (200, {"status": "ok"})


def test_the_authorizer_fails_closed(make_api: ApiFactory, api_key: str, monkeypatch: Any) -> None:
    api = make_api()

    def outage(*_: Any) -> None:
        raise RuntimeError("table unreachable")
    monkeypatch.setattr(api.runtime.keys, "lookup", outage)
    response = api.http.get("/v1/models")
    # Refused, but retryable and distinct from a bad key (see test_gateway.py
    # for what API Gateway does with the authorizer's exception).
    assert gateway_error(response) == (503, "auth_unavailable", "server_error")
    assert response.headers["Retry-After"] == "1"


def test_revocation_takes_effect(make_api: ApiFactory, key_store: KeyStore) -> None:
    secret, record = key_store.create("acme", now=int(time.time()))
    api = make_api(key=secret)
    assert api.http.get("/v1/models").status_code == 200
    key_store.revoke(record.key_id)
    assert api.http.get("/v1/models").status_code == 401
