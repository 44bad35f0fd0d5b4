"""Bedrock Guardrails per key, tenant and stage, through the app and the emulator.

The emulator applies the guardrail it is configured with (denied words, PII)
as Bedrock does; these tests check what reached Bedrock (the guardrail named
on every call), what the client gets on each wire (a blocked prompt is a 400
``content_filtered``, an intervened answer ends ``content_filter`` /
``refusal`` / ``incomplete``), and what is billed.
"""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from chalicelib.chat import ChatRequest, Guardrail, Message
from chalicelib.config import ConfigError, load_settings
from chalicelib.jobs.store import request_from_json, request_to_json
from chalicelib.tenancy.keys import KeyAdminError, KeyStore
from scripts.gen_policies import PROJECT_DIR, policies, stage_env
from tests.conftest import MODEL, Api, ApiFactory
from tests.support import EmulatorControl

CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
STAGE = (MODEL, CLAUDE, NOVA)
JSON = {"Content-Type": "application/json"}
GR = Guardrail("gr1abc", "1")
OTHER = Guardrail("gr2def", "DRAFT")
BLOCKED_IN = "Sorry, that topic is off limits here."
BLOCKED_OUT = "Sorry, I cannot share that answer."
POLICY = {"versions": ["1"], "denied_words": ["project zeus"],
          "pii": {"EMAIL": "ANONYMIZE", "US_SOCIAL_SECURITY_NUMBER": "BLOCK"},
          "blocked_input_message": BLOCKED_IN, "blocked_output_message": BLOCKED_OUT}


@pytest.fixture(autouse=True)
def _guardrails(emulator: EmulatorControl) -> None:
    emulator.configure(guardrails={GR.id: POLICY, OTHER.id: {"versions": ["DRAFT"],
                                                             "denied_words": ["cabbage"]}})


def guarded(make_api: ApiFactory, key_store: KeyStore, key_guardrail: Any = str(GR),
            tenant: str = "acme", **settings: Any) -> Api:
    """An app whose key names ``key_guardrail``; ``settings`` override the stage's."""
    secret, _ = key_store.create(tenant, now=int(time.time()), guardrail=key_guardrail)
    settings.setdefault("guardrails", (GR, OTHER))
    return make_api(key=secret, allowed_models=STAGE, **settings)


def chat(api: Api, content: str, model: str = MODEL, **extra: Any) -> Any:
    return api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(
        {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 64,
         **extra}))


def sent_guardrail(entry: dict[str, Any]) -> Any:
    """The guardrail a recorded Bedrock call named, in its operation's terms."""
    if entry["operation"].startswith("Converse"):
        config = entry["body"].get("guardrailConfig")
        return config and (config["guardrailIdentifier"], config["guardrailVersion"],
                           config.get("streamProcessingMode"))
    headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
    gid = headers.get("x-amzn-bedrock-guardrailidentifier")
    return gid and (gid, headers.get("x-amzn-bedrock-guardrailversion"))


def spent_today(api: Api) -> int:
    response = api.http.get("/usage")
    return int(json.loads(response.body)["today"]["tokens"])


@pytest.mark.parametrize("model", STAGE)
def test_a_blocked_prompt_is_a_400_and_bedrock_got_the_guardrail(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl, model: str) -> None:
    api = guarded(make_api, key_store)
    response = chat(api, "Tell me all about Project Zeus.", model)
    assert response.status_code == 400, response.body
    error = json.loads(response.body)["error"]
    assert error["code"] == "content_filtered" and error["type"] == "invalid_request_error"
    assert BLOCKED_IN in error["message"]
    [entry] = emulator.requests()
    expected = (GR.id, GR.version) + (("sync",) if entry["operation"] == "ConverseStream" else ())
    assert sent_guardrail(entry) == expected
    assert spent_today(api) == 0  # a blocked prompt generates nothing; Bedrock bills no tokens


@pytest.mark.parametrize("model", STAGE)
def test_an_answer_the_guardrail_masks_ends_with_content_filter_and_is_billed(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl, model: str) -> None:
    api = guarded(make_api, key_store)
    emulator.respond_next("Write to alice@example.com for the details.")
    response = chat(api, "Whom should I write to?", model)
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == "Write to {EMAIL} for the details."
    assert body["usage"]["completion_tokens"] > 0
    assert spent_today(api) == body["usage"]["total_tokens"]


def test_an_answer_the_guardrail_blocks_is_its_message(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    api = guarded(make_api, key_store)
    emulator.respond_next("Her number is 123-45-6789.")
    body = json.loads(chat(api, "What is her social security number?").body)
    assert body["choices"][0]["message"]["content"] == BLOCKED_OUT
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["usage"]["completion_tokens"] > 0  # generated, then blocked: billed


def test_a_clean_exchange_is_untouched_and_a_key_without_guardrail_sends_none(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    api = guarded(make_api, key_store)
    emulator.respond_next("Paris.")
    body = json.loads(chat(api, "Capital of France?").body)
    assert body["choices"][0] == {"index": 0, "logprobs": None, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "Paris.",
                                              "refusal": None}}
    plain = guarded(make_api, key_store, key_guardrail=None)
    emulator.clear_requests()
    assert chat(plain, "Tell me all about Project Zeus.").status_code == 200
    [entry] = emulator.requests()
    assert sent_guardrail(entry) is None


@pytest.mark.parametrize("model", STAGE)
def test_a_blocked_prompt_in_a_stream_is_a_400_before_anything_is_sent(
        make_api: ApiFactory, key_store: KeyStore, model: str) -> None:
    api = guarded(make_api, key_store)
    response = chat(api, "Project Zeus, in detail please.", model, stream=True)
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"]["code"] == "content_filtered"


def stream_events(body: bytes) -> list[Any]:
    return [json.loads(line[6:]) for line in body.decode().splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


@pytest.mark.parametrize("model", STAGE)
def test_a_streamed_answer_the_guardrail_masks_ends_with_content_filter(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl, model: str) -> None:
    api = guarded(make_api, key_store)
    emulator.respond_next("Mail bob@example.org, he knows a great deal about this.")
    response = chat(api, "Whom do I ask?", model, stream=True,
                    stream_options={"include_usage": True})
    assert response.status_code == 200, response.body
    events = stream_events(response.body)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
    assert text == "Mail {EMAIL}, he knows a great deal about this."
    reasons = [c["choices"][0]["finish_reason"] for c in events if c["choices"]]
    assert reasons[-1] == "content_filter"
    assert events[-1]["usage"]["completion_tokens"] > 0


def test_the_messages_api_says_refusal_and_a_blocked_prompt_is_an_invalid_request(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    api = guarded(make_api, key_store)
    emulator.respond_next("Her number is 123-45-6789.")
    response = api.http.post("/v1/messages", headers=JSON, body=json.dumps(
        {"model": CLAUDE, "max_tokens": 64, "messages": [{"role": "user", "content": "Number?"}]}))
    body = json.loads(response.body)
    assert body["stop_reason"] == "refusal" and body["content"][0]["text"] == BLOCKED_OUT
    blocked = api.http.post("/v1/messages", headers=JSON, body=json.dumps(
        {"model": CLAUDE, "max_tokens": 64,
         "messages": [{"role": "user", "content": "project ZEUS?"}]}))
    assert blocked.status_code == 400
    error = json.loads(blocked.body)
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert BLOCKED_IN in error["error"]["message"]


def test_the_responses_api_is_incomplete_with_content_filter(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    api = guarded(make_api, key_store)
    emulator.respond_next("Her number is 123-45-6789.")
    response = api.http.post("/v1/responses", headers=JSON, body=json.dumps(
        {"model": MODEL, "input": "Number?", "max_output_tokens": 64}))
    body = json.loads(response.body)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "content_filter"}
    assert body["output"][0]["content"][0]["text"] == BLOCKED_OUT


def test_the_key_wins_then_the_tenant_then_the_stage(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    key_store.set_tenant_limits("team-a", {}, guardrail=str(OTHER))
    # No guardrail of its own: the tenant's (which denies "cabbage").
    tenant_api = guarded(make_api, key_store, key_guardrail=None, tenant="team-a")
    assert json.loads(chat(tenant_api, "cabbage soup?").body)["error"]["code"] == "content_filtered"
    own = guarded(make_api, key_store, tenant="team-a")  # its own: GR, which allows cabbage
    assert chat(own, "cabbage soup?").status_code == 200
    stage = guarded(make_api, key_store, key_guardrail=None, tenant="team-b", guardrail=GR)
    assert chat(stage, "project zeus?").status_code == 400
    ops = [sent_guardrail(e)[:2] for e in emulator.requests()]
    assert ops == [(OTHER.id, OTHER.version), (GR.id, GR.version), (GR.id, GR.version)]


def test_a_key_guardrail_the_stage_does_not_list_is_refused_not_skipped(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    api = guarded(make_api, key_store, key_guardrail="zzz999:3")
    response = chat(api, "Hello")
    assert response.status_code == 502
    assert json.loads(response.body)["error"]["code"] == "upstream_misconfigured"
    assert "GUARDRAILS" in json.loads(response.body)["error"]["message"]
    assert emulator.requests() == []


def test_a_guardrail_bedrock_lacks_is_the_deployments_error(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    missing = Guardrail("nosuch1", "1")
    api = guarded(make_api, key_store, key_guardrail=str(missing), guardrails=(missing,))
    response = chat(api, "Hello")
    assert response.status_code == 502, response.body
    assert "arn:" not in response.body.decode()


@pytest.mark.parametrize("value", ["GR1:1", "gr1", "gr1:0", "gr1:draft", "arn:aws:bedrock:x",
                                   "gr1:1:2", 5, ["gr1:1"], "gr 1:1"])
def test_a_malformed_guardrail_is_refused_when_stored(key_store: KeyStore, value: Any) -> None:
    with pytest.raises(KeyAdminError, match="guardrail"):
        key_store.create("acme", now=int(time.time()), guardrail=value)


def test_a_job_keeps_its_guardrail() -> None:
    request = ChatRequest(messages=(Message("user", "hi"),), model=MODEL, max_tokens=8,
                          temperature=0.5, top_p=0.9, guardrail=GR)
    assert request_from_json(request_to_json(request)) == request


def test_the_generated_policy_grants_apply_guardrail_on_exactly_the_stages() -> None:
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    plain = policies(config, "dev")
    assert not any(s["Sid"] == "ApplyGuardrails" for p in plain.values() for s in p["Statement"])
    config["stages"]["dev"]["environment_variables"].update(
        GUARDRAILS=f"{GR}, {OTHER}", DEFAULT_GUARDRAIL=str(GR))
    guarded_policies = policies(config, "dev")
    for role in ("api", "stream", "worker"):
        [granted] = [s for s in guarded_policies[role]["Statement"] if s["Sid"] == "ApplyGuardrails"]
        assert granted["Action"] == ["bedrock:ApplyGuardrail"]
        assert {arn.rsplit("/", 1)[1] for arn in granted["Resource"]} == {GR.id, OTHER.id}
        assert all(arn.startswith("arn:aws:bedrock:us-") and ":*:guardrail/" in arn
                   for arn in granted["Resource"])
    assert not any(s["Sid"] == "ApplyGuardrails" for s in guarded_policies["auth"]["Statement"])
    # And the stage's settings read the same variables.
    settings = load_settings(stage_env(config, "dev"))
    assert settings.guardrails == (GR, OTHER) and settings.guardrail == GR


@pytest.mark.parametrize("env, message", [
    ({"GUARDRAILS": "GR1:1"}, "GUARDRAILS"),
    ({"GUARDRAILS": "gr1:1", "DEFAULT_GUARDRAIL": "gr2:1"}, "not in GUARDRAILS"),
    ({"DEFAULT_GUARDRAIL": "gr1:x"}, "DEFAULT_GUARDRAIL"),
])
def test_a_bad_stage_guardrail_setting_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def admin_call(api: Api, method: str, path: str, body: Any = None,
               key: str | None = None) -> tuple[int, Any]:
    headers = {**JSON, **({"Authorization": f"Bearer {key}"} if key else {})}
    response = api.http.request(method, path, headers=headers,
                                body=json.dumps(body) if body is not None else b"")
    return response.status_code, json.loads(response.body)


def test_the_admin_api_sets_guardrails_of_the_stages_list_only(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    secret, _ = key_store.create("ops", now=int(time.time()), scope="admin")
    admin = make_api(key=secret, allowed_models=STAGE, guardrails=(GR, OTHER))
    tenant = f"team-{time.time_ns()}"
    status, made = admin_call(admin, "POST", "/admin/keys", {"tenant": tenant,
                                                             "guardrail": str(GR)})
    assert status == 201 and made["guardrail"] == str(GR)
    assert admin_call(admin, "POST", "/v1/chat/completions", {
        "model": MODEL, "max_tokens": 8,
        "messages": [{"role": "user", "content": "project zeus"}]}, key=made["key"])[1][
            "error"]["code"] == "content_filtered"
    status, error = admin_call(admin, "POST", "/admin/keys", {"tenant": tenant,
                                                              "guardrail": "zzz1:1"})
    assert status == 400 and error["error"]["param"] == "guardrail"
    assert "GUARDRAILS" in error["error"]["message"] and str(GR) in error["error"]["message"]
    status, error = admin_call(admin, "PATCH", f"/admin/keys/{made['key_id']}",
                               {"guardrail": "GR1"})
    assert status == 400 and "id:version" in error["error"]["message"]
    status, patched = admin_call(admin, "PATCH", f"/admin/keys/{made['key_id']}",
                                 {"guardrail": None})
    assert status == 200 and patched["guardrail"] is None
    status, team = admin_call(admin, "PUT", f"/admin/tenants/{tenant}",
                              {"limits": {"requests_per_minute": 50}, "guardrail": str(OTHER)})
    assert status == 200 and team["guardrail"] == str(OTHER)
    assert admin_call(admin, "GET", f"/admin/tenants/{tenant}")[1]["guardrail"] == str(OTHER)
    # The key has none of its own now: its tenant's applies.
    assert admin_call(admin, "POST", "/v1/chat/completions", {
        "model": MODEL, "max_tokens": 8,
        "messages": [{"role": "user", "content": "cabbage"}]}, key=made["key"])[1][
            "error"]["code"] == "content_filtered"
    status, team = admin_call(admin, "PUT", f"/admin/tenants/{tenant}", {"limits": {}})
    assert team["guardrail"] is None and team["limits"]["requests_per_minute"] is None
