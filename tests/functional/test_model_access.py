"""Model access per key, through every route: a key that names its models
sees only those (of the stage's), anything else is the 404 ``model_not_found``
a model the stage does not serve gets, and Bedrock is never called for it."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

import app as app_module
from chalicelib.tenancy.auth import authenticate, caller_to_context
from chalicelib.tenancy.keys import KeyAdminError, KeyStore, Limits
from tests.conftest import MODEL, Api, ApiFactory
from tests.functional.test_streaming import FakeContext, proxy_event
from tests.support import EmulatorControl

CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
EMBEDDER = "amazon.titan-embed-text-v2:0"
STAGE = (MODEL, CLAUDE, EMBEDDER)
JSON = {"Content-Type": "application/json"}
HELLO = [{"role": "user", "content": "Hello"}]


def keyed(make_api: ApiFactory, key_store: KeyStore, models: Any) -> tuple[Api, str]:
    secret, _ = key_store.create("acme", now=int(time.time()), models=models)
    return make_api(key=secret, allowed_models=STAGE), secret


# route, body (model is filled in), where the model goes
ROUTES = [
    ("/v1/chat/completions", {"messages": HELLO, "max_tokens": 8}),
    ("/v1/completions", {"prompt": "Hello", "max_tokens": 8}),
    ("/chat", {"prompt": "Hello", "max_tokens": 8}),
    ("/chat/jobs", {"prompt": "Hello", "max_tokens": 8}),
    ("/v1/responses", {"input": "Hello", "max_output_tokens": 16}),
    ("/v1/messages", {"messages": HELLO, "max_tokens": 8}),
    ("/v1/messages/count_tokens", {"messages": HELLO}),
    ("/v1/embeddings", {"input": "Hello"}),
]


@pytest.mark.parametrize("route,body", ROUTES)
def test_a_model_the_key_lacks_is_not_found_and_never_called(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl, route: str,
        body: dict[str, Any]) -> None:
    api, _ = keyed(make_api, key_store, [CLAUDE])
    lacked = EMBEDDER if route != "/v1/embeddings" else "cohere.embed-english-v3"
    for model in (MODEL, lacked):
        response = api.http.post(route, headers=JSON, body=json.dumps({**body, "model": model}))
        assert response.status_code == 404, (route, model, response.body)
        error = json.loads(response.body)["error"]
        if route.startswith("/v1/messages"):
            assert error["type"] == "not_found_error"
        else:
            assert error["code"] == "model_not_found"
        # Named as any model the stage lacks; only the key's models are listed.
        assert model in error["message"] and MODEL not in error["message"].replace(model, "")
    assert emulator.requests() == []


def test_a_key_sees_only_its_models(make_api: ApiFactory, key_store: KeyStore,
                                    emulator: EmulatorControl) -> None:
    api, _ = keyed(make_api, key_store, [CLAUDE, EMBEDDER, "us.amazon.nova-micro-v1:0"])
    listed = json.loads(api.http.get("/v1/models").body)["data"]
    # Nova is the key's but not the stage's: the stage decides what it serves.
    assert [m["id"] for m in listed] == [CLAUDE, EMBEDDER]
    assert api.http.get(f"/v1/models/{CLAUDE}").status_code == 200
    assert api.http.get(f"/v1/models/{MODEL}").status_code == 404
    everything, _ = keyed(make_api, key_store, None)
    assert [m["id"] for m in json.loads(everything.http.get("/v1/models").body)["data"]] == list(
        STAGE)


def test_a_native_request_naming_no_model_gets_the_keys_first_chat_model(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    api, _ = keyed(make_api, key_store, [EMBEDDER, CLAUDE])
    answer = api.http.post("/chat", headers=JSON,
                           body=json.dumps({"prompt": "Hello", "max_tokens": 8}))
    assert answer.status_code == 200 and json.loads(answer.body)["model"] == CLAUDE
    assert emulator.requests()[-1]["modelId"] == CLAUDE
    embeddings_only, _ = keyed(make_api, key_store, [EMBEDDER])
    refused = embeddings_only.http.post("/chat", headers=JSON, body=json.dumps({"prompt": "Hi"}))
    assert refused.status_code == 404
    assert json.loads(refused.body)["error"]["code"] == "model_not_found"


def test_the_keys_own_models_are_served(make_api: ApiFactory, key_store: KeyStore,
                                        emulator: EmulatorControl) -> None:
    api, secret = keyed(make_api, key_store, [CLAUDE, EMBEDDER])
    for route, body in ROUTES:
        model = EMBEDDER if route == "/v1/embeddings" else CLAUDE
        headers = {**JSON, "x-api-key": secret} if route.startswith("/v1/messages") else JSON
        response = api.http.post(route, headers=headers, body=json.dumps({**body, "model": model}))
        assert response.status_code in (200, 202), (route, response.body)


@pytest.mark.parametrize("route,body", [r for r in ROUTES if r[0] in app_module.STREAM_ROUTES
                                        and r[0] != "/v1/messages/count_tokens"])
def test_the_stream_handler_follows_the_same_rule(make_api: ApiFactory, key_store: KeyStore,
                                                  emulator: EmulatorControl, route: str,
                                                  body: dict[str, Any]) -> None:
    make_api(allowed_models=STAGE)
    secret, _ = key_store.create("acme", now=int(time.time()), models=[CLAUDE])
    caller = authenticate(f"Bearer {secret}", key_store, time.time(), Limits())
    assert caller is not None and caller.models == (CLAUDE,)
    event = proxy_event(route, {**body, "model": MODEL, "stream": True}, caller_to_context(caller))
    event["headers"]["x-api-key"] = secret
    response = app_module.serve(event, FakeContext(30))
    assert response.status == 404, b"".join(response.chunks())
    assert emulator.requests() == []


@pytest.mark.parametrize("models", ["all", [], ["nope"], [MODEL, MODEL], [3]])
def test_a_keys_models_must_be_known_model_ids(key_store: KeyStore, models: Any) -> None:
    with pytest.raises(KeyAdminError):
        key_store.create("acme", now=0, models=models)


def test_a_keys_models_can_be_changed_and_cleared(key_store: KeyStore) -> None:
    secret, record = key_store.create("acme", now=0)
    assert record.models is None
    key_store.set_models(record.key_id, [CLAUDE])
    assert key_store.lookup(secret).models == (CLAUDE,)  # type: ignore[union-attr]
    key_store.set_models(record.key_id, None)
    assert key_store.lookup(secret).models is None  # type: ignore[union-attr]
