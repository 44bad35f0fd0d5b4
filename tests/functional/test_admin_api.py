"""The admin API through the app (every exchange checked against
openapi.yaml): admin keys only, model keys refused, each change audited
without secrets, and what it changes is what the model routes then enforce."""
from __future__ import annotations

import csv
import io
import json
import logging
import time
import uuid
from typing import Any

import pytest

from chalicelib.tenancy.keys import KeyStore, hash_secret
from tests.conftest import MODEL, Api, ApiFactory
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
HELLO = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def acme() -> str:
    """A tenant of this test's own (the tables outlive a test)."""
    return f"acme-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def admin(make_api: ApiFactory, key_store: KeyStore) -> Api:
    secret, _ = key_store.create("ops", now=int(time.time()), scope="admin")
    return make_api(key=secret, allowed_models=(MODEL, CLAUDE))


def call(api: Api, method: str, path: str, body: Any = None,
         key: str | None = None) -> tuple[int, Any]:
    headers = {**JSON, **({"Authorization": f"Bearer {key}"} if key else {})}
    response = api.http.request(method, path, headers=headers,
                                body=json.dumps(body) if body is not None else b"")
    text = response.body.decode() if isinstance(response.body, bytes) else response.body
    return response.status_code, (json.loads(text) if text and response.headers.get(
        "Content-Type", "").startswith("application/json") else text)


def test_a_key_made_through_the_api_works_once_and_its_secret_is_never_shown_again(
        acme: str, admin: Api, key_store: KeyStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm_endpoint.audit")
    status, made = call(admin, "POST", "/admin/keys", {
        "tenant": acme, "limits": {"requests_per_minute": 5, "usd_per_month": 2.5},
        "models": [MODEL], "expires_at": int(time.time()) + 3600})
    assert status == 201 and made["key"].startswith("llm_") and made["tenant"] == acme
    assert made["limits"] == {"requests_per_minute": 5, "usd_per_month": 2.5}
    assert made["models"] == [MODEL] and made["scope"] == "model"
    secret, key_id = made["key"], made["key_id"]
    assert call(admin, "POST", "/v1/chat/completions", HELLO, key=secret)[0] == 200
    listed = call(admin, "GET", f"/admin/keys?tenant={acme}")[1]["data"]
    assert [k["key_id"] for k in listed] == [key_id]
    shown = json.dumps(listed) + json.dumps(call(admin, "GET", f"/admin/keys/{key_id}")[1])
    assert secret not in shown and hash_secret(secret) not in shown
    audit = [json.loads(r.getMessage()) for r in caplog.records if r.name == "llm_endpoint.audit"]
    assert [(a["action"], a["key_id"], a["tenant"]) for a in audit] == [
        ("create_key", key_id, acme)]
    assert audit[0]["actor"].startswith("key_") and secret not in caplog.text
    assert hash_secret(secret) not in caplog.text


def test_patch_changes_what_the_model_routes_enforce(acme: str, admin: Api, key_store: KeyStore) -> None:
    made = call(admin, "POST", "/admin/keys", {"tenant": acme})[1]
    secret, key_id = made["key"], made["key_id"]
    status, patched = call(admin, "PATCH", f"/admin/keys/{key_id}", {
        "models": [CLAUDE], "limits": {"tokens_per_day": 100000, "requests_per_minute": "default"}})
    assert status == 200 and patched["models"] == [CLAUDE]
    assert patched["limits"] == {"tokens_per_day": 100000}
    assert call(admin, "POST", "/v1/chat/completions", HELLO, key=secret)[0] == 404
    assert call(admin, "PATCH", f"/admin/keys/{key_id}", {"models": None})[1]["models"] is None
    assert call(admin, "POST", "/v1/chat/completions", HELLO, key=secret)[0] == 200
    revoked = call(admin, "DELETE", f"/admin/keys/{key_id}")[1]
    assert revoked["enabled"] is False
    assert call(admin, "POST", "/v1/chat/completions", HELLO, key=secret)[0] == 401


def test_rotation_keeps_the_old_secret_for_its_grace_period(acme: str, admin: Api,
                                                            key_store: KeyStore) -> None:
    made = call(admin, "POST", "/admin/keys", {"tenant": acme})[1]
    status, rotated = call(admin, "POST", f"/admin/keys/{made['key_id']}/rotate",
                           {"grace_seconds": 60})
    assert status == 200 and rotated["key"] != made["key"]
    assert rotated["key_id"] == made["key_id"]  # the same key: usage and limits carry on
    assert rotated["previous_key_expires_at"] - time.time() <= 60
    for secret in (made["key"], rotated["key"]):  # both work within the grace period
        assert call(admin, "POST", "/v1/chat/completions", HELLO, key=secret)[0] == 200
    old = key_store.lookup(made["key"])
    assert old is not None and old.superseded and old.expires_at is not None
    assert not old.usable_at(time.time() + 61)
    assert [k["key_id"] for k in call(admin, "GET", f"/admin/keys?tenant={acme}")[1]["data"]] == [
        made["key_id"]]  # listed once
    now_only = call(admin, "POST", f"/admin/keys/{made['key_id']}/rotate", {"grace_seconds": 0})
    assert call(admin, "POST", "/v1/chat/completions", HELLO, key=rotated["key"])[0] == 401
    assert call(admin, "POST", "/v1/chat/completions", HELLO, key=now_only[1]["key"])[0] == 200


def test_tenant_limits_through_the_api(acme: str, admin: Api, key_store: KeyStore) -> None:
    status, put = call(admin, "PUT", f"/admin/tenants/{acme}",
                       {"limits": {"usd_per_month": 5, "requests_per_minute": 1}})
    assert status == 200 and put["limits"]["usd_per_month"] == 5.0
    assert put["limits"]["tokens_per_day"] is None
    assert call(admin, "GET", f"/admin/tenants/{acme}")[1] == put
    secret = call(admin, "POST", "/admin/keys", {"tenant": acme})[1]["key"]
    assert call(admin, "POST", "/v1/chat/completions", HELLO, key=secret)[0] == 200
    status, refused = call(admin, "POST", "/v1/chat/completions", HELLO, key=secret)
    assert status == 429 and "tenant's" in refused["error"]["message"]
    cleared = call(admin, "PUT", f"/admin/tenants/{acme}", {"limits": {}})[1]
    assert all(v is None for v in cleared["limits"].values())


def test_spend_by_tenant_key_and_day_as_json_and_csv(acme: str, admin: Api,
                                                     key_store: KeyStore) -> None:
    secrets = {t: call(admin, "POST", "/admin/keys", {"tenant": t})[1]["key"]
               for t in (acme, acme + "-b")}
    for tenant, secret in secrets.items():
        for _ in range(2 if tenant == acme else 1):
            assert call(admin, "POST", "/v1/chat/completions", HELLO, key=secret)[0] == 200
    report = call(admin, "GET", "/admin/usage?group_by=tenant")[1]
    rows = {r["tenant"]: r for r in report["data"]}
    assert rows[acme]["requests"] == 2 and rows[acme + "-b"]["requests"] == 1
    assert rows[acme]["cost_usd"] > 0 and rows[acme]["tokens"] > 0
    today = time.strftime("%Y-%m-%d", time.gmtime())
    by_day = call(admin, "GET", f"/admin/usage?group_by=day&from={today}&to={today}")[1]
    assert [r["date"] for r in by_day["data"]] == [today]
    by_key = call(admin, "GET", "/admin/usage?group_by=key")[1]["data"]
    assert {r["tenant"] for r in by_key} >= {acme, acme + "-b"}
    status, text = call(admin, "GET", "/admin/usage?group_by=tenant&format=csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert status == 200 and {"tenant", "requests", "tokens", "cost_usd"} <= set(table[0])
    assert {acme, acme + "-b"} <= {r["tenant"] for r in table}
    assert next(r for r in table if r["tenant"] == acme)["cost_usd"].startswith("0.0000")


def test_spend_by_model_counts_what_each_model_was_billed(acme: str, admin: Api) -> None:
    def by_model() -> dict[str, dict[str, Any]]:
        return {r["model"]: r for r in call(admin, "GET", "/admin/usage?group_by=model")[1]["data"]}
    before = by_model()
    secret = call(admin, "POST", "/admin/keys", {"tenant": acme})[1]["key"]
    spent: dict[str, list[Any]] = {MODEL: [0, 0, 0.0], CLAUDE: [0, 0, 0.0]}
    for model in (MODEL, MODEL, CLAUDE):
        status, answer = call(admin, "POST", "/v1/chat/completions", {**HELLO, "model": model},
                              key=secret)
        assert status == 200
        spent[model][0] += 1
        spent[model][1] += answer["usage"]["total_tokens"]
        spent[model][2] += answer["usage"]["cost_usd"]
    after = by_model()
    for model, (requests, tokens, cost) in spent.items():
        old = before.get(model, {"requests": 0, "tokens": 0, "cost_usd": 0.0})
        assert after[model]["requests"] - old["requests"] == requests
        assert after[model]["tokens"] - old["tokens"] == tokens
        assert after[model]["cost_usd"] - old["cost_usd"] == pytest.approx(cost, abs=1e-8)
    status, text = call(admin, "GET", "/admin/usage?group_by=model&format=csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == ["model", "requests", "tokens", "cost_usd"]
    assert {MODEL, CLAUDE} <= {r["model"] for r in table}


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/admin/keys", {"tenant": "bad name!"}),
    ("POST", "/admin/keys", {"tenant": "a", "limits": {"usd_per_day": 0}}),
    ("POST", "/admin/keys", {"tenant": "a", "models": ["gpt-4o"]}),
    ("POST", "/admin/keys", {"tenant": "a", "expires_at": 5}),
    ("POST", "/admin/keys", {"tenant": "a", "secret": "mine"}),
    ("POST", "/admin/keys", {}),
    ("PATCH", "/admin/keys/{id}", {"enabled": True}),
    ("PATCH", "/admin/keys/{id}", {"limits": {"nope": 1}}),
    ("POST", "/admin/keys/{id}/rotate", {"grace_seconds": -1}),
    ("POST", "/admin/keys/{id}/rotate", {"grace_seconds": 10**9}),
    ("PUT", "/admin/tenants/acme", {"limits": {"usd_per_month": "default"}}),
    ("GET", "/admin/usage?group_by=colour", None),
    ("GET", "/admin/usage?from=2026-02-30", None),
    ("GET", "/admin/usage?from=2026-01-01&to=2026-03-01", None),
    ("GET", "/admin/usage?format=xml", None),
])
def test_bad_admin_input_is_a_400_naming_the_problem(acme: str, admin: Api, method: str, path: str,
                                                     body: Any) -> None:
    key_id = call(admin, "POST", "/admin/keys", {"tenant": acme})[1]["key_id"]
    # Unvalidated: the description's own schemas would refuse most of these first.
    response = admin.client.http.request(
        method, path.replace("{id}", key_id), body=json.dumps(body) if body is not None else b"",
        headers={**JSON, "Authorization": f"Bearer {admin.http._key}"})
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"]["message"]


def test_an_unknown_key_is_a_404(admin: Api) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        assert call(admin, method, "/admin/keys/key_nope", {} if method == "PATCH" else None)[
            0] == 404
    assert call(admin, "POST", "/admin/keys/key_nope/rotate", {})[0] == 404


def test_scopes_never_cross(acme: str, admin: Api, key_store: KeyStore, emulator: EmulatorControl) -> None:
    model_key = call(admin, "POST", "/admin/keys", {"tenant": acme})[1]["key"]
    for method, path in (("GET", "/admin/keys"), ("POST", "/admin/keys"),
                         ("GET", "/admin/usage"), ("PUT", f"/admin/tenants/{acme}")):
        status, body = call(admin, method, path, {} if method != "GET" else None, key=model_key)
        assert status == 403 and body["error"]["code"] == "permission_denied"
    # The admin key (the fixture's own) cannot call models, on any route.
    for path, body in (("/v1/chat/completions", HELLO), ("/chat", {"prompt": "Hi"}),
                       ("/v1/embeddings", {"model": MODEL, "input": "x"})):
        status, refused = call(admin, "POST", path, body)
        assert status == 403 and refused["error"]["code"] == "permission_denied"
    assert call(admin, "GET", "/v1/models")[0] == 403
    assert call(admin, "GET", "/usage")[0] == 403
    admin_secret = admin.http._key
    messages = admin.http.request("POST", "/v1/messages", body=json.dumps(HELLO),
                                  headers={**JSON, "x-api-key": admin_secret})
    assert messages.status_code == 403
    assert json.loads(messages.body)["error"]["type"] == "permission_error"
    assert emulator.requests() == []
    # Admin keys are made by keys.py only: the API makes model keys.
    made = call(admin, "POST", "/admin/keys", {"tenant": "ops"})[1]
    assert made["scope"] == "model"
