"""POST /v1/messages and /v1/messages/count_tokens (Anthropic's Messages API)
through the app: what reached Bedrock for Llama and for Claude, the answer in
Anthropic's shape, both key styles, errors in Anthropic's envelope, streams
(buffered and really streamed) and counted tokens that reserve nothing."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

import app as app_module
from chalicelib.tenancy.keys import KeyStore
from tests.conftest import MODEL, Api, ApiFactory
from tests.functional.test_streaming import FakeContext, day_usage, proxy_event
from tests.openapi_check import messages_events
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def api(make_api: ApiFactory) -> Api:
    return make_api(allowed_models=(MODEL, CLAUDE))


def post(api: Api, body: Any, path: str = "/v1/messages",
         headers: dict[str, str] | None = None) -> Any:
    return api.http.post(path, headers={**JSON, **(headers or {})},
                         body=body if isinstance(body, str) else json.dumps(body))


def message(api: Api, **body: Any) -> tuple[Any, Any]:
    response = post(api, {"model": MODEL, "max_tokens": 64, "messages": HELLO, **body})
    return response, json.loads(response.body)


def error_of(response: Any) -> tuple[int, str, str]:
    body = json.loads(response.body)
    assert body["type"] == "error" and body["request_id"] == response.headers["request-id"]
    return response.status_code, body["error"]["type"], body["error"]["message"]


def test_llama_answers_in_anthropic_shape_from_the_prompt_it_was_sent(
        api: Api, emulator: EmulatorControl) -> None:
    response, body = message(api, system=[{"type": "text", "text": "Be brief."}],
                             temperature=0.3, metadata={"user_id": "u-1"})
    assert response.status_code == 200
    assert body["id"] == "msg_" + response.headers["x-request-id"].replace("-", "")
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", MODEL)
    (block,) = body["content"]
    assert block["type"] == "text" and block["text"]
    assert body["stop_reason"] in ("end_turn", "max_tokens") and body["stop_sequence"] is None
    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert (usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]) == (0, 0)
    assert usage["cost_usd"] > 0
    (sent,) = emulator.requests()
    prompt = sent["body"]["prompt"]
    assert "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" in prompt
    assert "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>" in prompt
    assert (sent["body"]["max_gen_len"], sent["body"]["temperature"]) == (64, 0.3)


def test_claude_goes_through_converse_with_tools_and_tool_choice(
        api: Api, emulator: EmulatorControl) -> None:
    response, body = message(api, model=CLAUDE, system="Use tools.", tools=[WEATHER],
                             tool_choice={"type": "any", "disable_parallel_tool_use": True},
                             messages=[{"role": "user", "content": [
                                 {"type": "text", "text": "Weather in Paris?"}]}])
    assert response.status_code == 200, body
    assert body["stop_reason"] == "tool_use"
    (call,) = [b for b in body["content"] if b["type"] == "tool_use"]
    assert call["name"] == "get_weather" and isinstance(call["input"], dict)
    (sent,) = emulator.requests()
    converse = sent["body"]
    assert converse["system"] == [{"text": "Use tools."}]
    assert converse["messages"] == [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]
    assert converse["toolConfig"]["toolChoice"] == {"any": {}}
    assert converse["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"] == \
        WEATHER["input_schema"]
    # The round trip: the call and its result (an error) go back as Claude's blocks.
    emulator.clear_requests()
    turns = [{"role": "user", "content": "Weather in Paris?"},
             {"role": "assistant", "content": [
                 {"type": "thinking", "thinking": "...", "signature": "sig"},
                 {"type": "text", "text": "Let me check."}, call]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                           "content": [{"type": "text", "text": "offline"}],
                                           "is_error": True}]}]
    response, body = message(api, model=CLAUDE, tools=[WEATHER], messages=turns)
    assert response.status_code == 200, body
    (sent,) = emulator.requests()
    assistant, result = sent["body"]["messages"][1:]
    assert assistant["content"] == [{"text": "Let me check."}, {"toolUse": {
        "toolUseId": call["id"], "name": "get_weather", "input": call["input"]}}]
    assert result["content"] == [{"toolResult": {"toolUseId": call["id"],
                                                 "content": [{"text": "Error: offline"}]}}]


def test_llama_tool_round_trip_in_its_prompt(api: Api, emulator: EmulatorControl) -> None:
    forced = {"type": "tool", "name": "get_weather"}
    response, body = message(api, tools=[WEATHER], tool_choice=forced,
                             messages=[{"role": "user", "content": "Weather in Oslo?"}])
    assert response.status_code == 200, body
    (call,) = body["content"]
    assert call["type"] == "tool_use" and call["name"] == "get_weather"
    assert body["stop_reason"] == "tool_use"
    emulator.clear_requests()
    response, body = message(api, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                      "content": "12C and rain"}]}])
    assert response.status_code == 200, body
    assert body["content"][0]["type"] == "text"
    (sent,) = emulator.requests()
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n12C and rain<|eot_id|>" in \
        sent["body"]["prompt"]


def test_both_key_styles_work_and_a_missing_or_wrong_key_is_authentication_error(
        make_api: ApiFactory, api_key: str) -> None:
    api = make_api(key=None)
    body = {"model": MODEL, "max_tokens": 16, "messages": HELLO}
    assert post(api, body, headers={"x-api-key": api_key}).status_code == 200
    assert post(api, body, headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    assert post(api, body, "/v1/messages/count_tokens",
                headers={"x-api-key": api_key}).status_code == 200
    for headers in ({}, {"x-api-key": "sk-not-a-key"}, {"Authorization": f"Basic {api_key}"},
                    {"x-api-key": api_key[:-1] + ("A" if api_key[-1] != "A" else "B")}):
        status, kind, text = error_of(post(api, body, headers=headers))
        assert (status, kind) == (401, "authentication_error"), headers
        assert api_key not in text


@pytest.mark.parametrize("body, status, kind, names", [
    ({"messages": HELLO}, 400, "invalid_request_error", "max_tokens"),
    ({"max_tokens": 16, "messages": HELLO, "tempurature": 1}, 400, "invalid_request_error",
     "tempurature"),
    ({"max_tokens": 16, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}}]}]},
     400, "invalid_request_error", "image"),
    ({"max_tokens": 16, "messages": HELLO,
      "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     400, "invalid_request_error", "web_search_20250305"),
    ({"max_tokens": 16, "messages": HELLO, "top_k": 5}, 400, "invalid_request_error", "top_k"),
    ({"max_tokens": 16, "messages": HELLO, "thinking": {"type": "enabled",
                                                        "budget_tokens": 100}},
     400, "invalid_request_error", "budget_tokens"),
    ({"max_tokens": 16, "messages": HELLO, "context_management": {"edits": [
        {"type": "clear_tool_uses_20250919"}]}}, 400, "invalid_request_error",
     "clear_tool_uses_20250919"),
    ({"max_tokens": 16, "messages": [{"role": "tool", "content": "x"}]}, 400,
     "invalid_request_error", "role"),
    ({"max_tokens": 16, "messages": [{"role": "system", "content": "x"}]}, 400,
     "invalid_request_error", "user message"),
    ({"max_tokens": 16, "messages": HELLO, "model": "claude-3-opus"}, 404, "not_found_error",
     "claude-3-opus"),
    ({"max_tokens": 0, "messages": HELLO}, 400, "invalid_request_error", "max_tokens"),
])
def test_bad_bodies_are_named_in_anthropics_envelope(api: Api, emulator: EmulatorControl,
                                                     body: dict[str, Any], status: int,
                                                     kind: str, names: str) -> None:
    got_status, got_kind, text = error_of(post(api, {"model": MODEL, **body}))
    assert (got_status, got_kind) == (status, kind)
    assert names in text
    assert emulator.requests() == []


def test_what_claude_code_sends_is_served(api: Api, emulator: EmulatorControl) -> None:
    """Thinking on a model served without it, a clear_thinking edit, a
    deferred tool and 32,000 max_tokens (Llama writes at most 2,048)."""
    response, body = message(api, max_tokens=32_000,
                             thinking={"type": "enabled", "budget_tokens": 31_999,
                                       "display": "omitted"},
                             context_management={"edits": [{"type": "clear_thinking_20251015",
                                                            "keep": "all"}]},
                             tools=[WEATHER, {**WEATHER, "name": "Later",
                                              "defer_loading": True}])
    assert response.status_code == 200, body
    assert [b["type"] for b in body["content"]] in (["text"], ["tool_use"])
    (sent,) = emulator.requests()
    assert sent["body"]["max_gen_len"] == 2048
    assert "get_weather" in sent["body"]["prompt"] and "Later" not in sent["body"]["prompt"]


def test_chalices_own_errors_are_in_anthropics_envelope(api: Api) -> None:
    assert error_of(post(api, "{not json"))[:2] == (400, "invalid_request_error")
    response = api.http.post("/v1/messages", headers={"Content-Type": "text/plain"}, body="hi")
    assert error_of(response)[:2] == (400, "invalid_request_error")
    response = api.http.get("/v1/messages")
    assert error_of(response)[:2] == (405, "invalid_request_error")


def test_a_key_over_its_limit_gets_rate_limit_error_with_retry_after(
        make_api: ApiFactory, key_store: KeyStore) -> None:
    secret, _ = key_store.create("acme", now=int(time.time()),
                                 limits={"requests_per_minute": 1})
    api = make_api(key=None)
    body = {"model": MODEL, "max_tokens": 16, "messages": HELLO}
    assert post(api, body, headers={"x-api-key": secret}).status_code == 200
    response = post(api, body, headers={"x-api-key": secret})
    assert error_of(response)[:2] == (429, "rate_limit_error")
    assert int(response.headers["Retry-After"]) >= 1


def test_a_bedrock_outage_is_overloaded_error(api: Api, emulator: EmulatorControl) -> None:
    emulator.configure(fail_next=["ServiceUnavailableException"] * 8)
    response, _ = message(api)
    assert error_of(response)[:2] == (529, "overloaded_error")


def test_the_buffered_stream_has_anthropics_events_and_the_plain_text(api: Api) -> None:
    _, plain = message(api, temperature=0)
    response = post(api, {"model": MODEL, "max_tokens": 64, "messages": HELLO, "temperature": 0,
                          "stream": True})
    assert response.headers["Content-Type"] == "text/event-stream"
    events = messages_events(response.body)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(e["delta"]["text"] for n, e in events if n == "content_block_delta")
    assert text == plain["content"][0]["text"]
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == plain["stop_reason"]
    assert delta["usage"]["output_tokens"] == plain["usage"]["output_tokens"]
    assert delta["usage"]["input_tokens"] == plain["usage"]["input_tokens"]


def test_a_streamed_tool_call_is_a_tool_use_block_with_input_json_deltas(api: Api) -> None:
    response = post(api, {"model": CLAUDE, "max_tokens": 64, "stream": True, "tools": [WEATHER],
                          "messages": [{"role": "user", "content": "Weather in Rome?"}]})
    events = messages_events(response.body)
    starts = [e["content_block"] for n, e in events if n == "content_block_start"]
    tool = [b for b in starts if b["type"] == "tool_use"]
    assert tool and tool[0]["name"] == "get_weather" and tool[0]["input"] == {}
    partial = "".join(e["delta"]["partial_json"] for n, e in events
                      if n == "content_block_delta" and e["delta"]["type"] == "input_json_delta")
    assert "city" in json.loads(partial)
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_count_tokens_is_free_and_reserves_nothing(make_api: ApiFactory, key_store: KeyStore,
                                                   emulator: EmulatorControl,
                                                   dynamodb: Any) -> None:
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_minute": 50})
    api = make_api(key=None)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "word " * 200}],
            "system": "Be brief.", "tools": [WEATHER]}
    for _ in range(3):  # well over the key's 50 tokens a minute, every time
        response = post(api, body, "/v1/messages/count_tokens", headers={"x-api-key": secret})
        assert response.status_code == 200, response.body
        count = json.loads(response.body)["input_tokens"]
        assert count > 200
    assert emulator.requests() == []
    assert day_usage(dynamodb, record.key_id) == {}
    response = post(api, {**body, "max_tokens": 5, "stream": True},
                    "/v1/messages/count_tokens", headers={"x-api-key": secret})
    assert json.loads(response.body) == {"input_tokens": count}
    status, kind, text = error_of(post(api, {**body, "maxtokens": 5},
                                       "/v1/messages/count_tokens",
                                       headers={"x-api-key": secret}))
    assert (status, kind) == (400, "invalid_request_error") and "maxtokens" in text


def test_the_real_stream_checks_the_key_and_bills_it(make_api: ApiFactory, key_store: KeyStore,
                                                     dynamodb: Any) -> None:
    make_api(allowed_models=(MODEL, CLAUDE))
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 100_000})
    body = {"model": MODEL, "max_tokens": 32, "messages": HELLO, "stream": True}
    event = proxy_event("/v1/messages", body, {})
    event["headers"]["x-api-key"] = secret
    response = app_module.serve(event, FakeContext(20))
    assert response.status == 200 and response.headers["request-id"] == "req-1"
    events = messages_events(b"".join(response.chunks()))
    usage = events[-2][1]["usage"]
    assert day_usage(dynamodb, record.key_id) == {
        "requests": 1, "tokens": usage["input_tokens"] + usage["output_tokens"]}
    refused = app_module.serve(proxy_event("/v1/messages", body, {}, "req-2"), FakeContext(20))
    assert refused.status == 401
    assert json.loads(b"".join(refused.chunks())) == {
        "type": "error", "request_id": "req-2", "error": {
            "type": "authentication_error", "message": "No API key: send it as x-api-key: <key> "
            "or as Authorization: Bearer <key>."}}
    event = proxy_event("/v1/messages", {**body, "top_k": 3}, {}, "req-3")
    event["headers"]["x-api-key"] = secret
    refused = app_module.serve(event, FakeContext(20))
    assert refused.status == 400
    assert json.loads(b"".join(refused.chunks()))["request_id"] == "req-3"


SONNET_4 = "us.anthropic.claude-sonnet-4-20250514-v1:0"  # Bedrock's CountTokens counts it


def test_count_tokens_asks_bedrock_for_the_models_it_counts(
        make_api: ApiFactory, emulator: EmulatorControl) -> None:
    api = make_api(allowed_models=(MODEL, CLAUDE, SONNET_4))
    body = {"model": SONNET_4, "system": "Be brief.", "tools": [WEATHER],
            "messages": [{"role": "user", "content": "Weather in Lima?"}]}
    counted = json.loads(post(api, body, "/v1/messages/count_tokens").body)["input_tokens"]
    (sent,) = emulator.requests()
    assert (sent["operation"], sent["modelId"]) == ("CountTokens",
                                                    "anthropic.claude-sonnet-4-20250514-v1:0")
    converse = sent["body"]["input"]["converse"]
    assert set(converse) == {"messages", "system", "toolConfig"}
    assert converse["system"] == [{"text": "Be brief."}]
    _, answer = message(api, **body, max_tokens=32)
    assert answer["usage"]["input_tokens"] == counted  # what Converse then counts
    emulator.clear_requests()
    estimate = json.loads(post(api, {**body, "model": CLAUDE},
                               "/v1/messages/count_tokens").body)["input_tokens"]
    assert emulator.requests() == [] and estimate >= counted  # no CountTokens: the bound


LONG_SYSTEM = "You follow the house rules. " * 400  # well over Sonnet 4's 1,024-token minimum


def test_a_cached_system_prompt_is_written_then_read_and_billed_at_cache_prices(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        dynamodb: Any) -> None:
    from decimal import Decimal

    from chalicelib.models.pricing import DEFAULT_CACHE_PRICES, DEFAULT_PRICES
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 1_000_000})
    api = make_api(key=None, allowed_models=(MODEL, SONNET_4))
    body = {"model": SONNET_4, "max_tokens": 32, "tools": [WEATHER],
            "system": [{"type": "text", "text": LONG_SYSTEM,
                        "cache_control": {"type": "ephemeral"}},
                       {"type": "text", "text": "Today is Tuesday."}],
            "messages": [{"role": "user", "content": "Hello"}]}
    first = json.loads(post(api, body, headers={"x-api-key": secret}).body)["usage"]
    second = json.loads(post(api, {**body, "messages": [{"role": "user", "content": "Hi again"}]},
                             headers={"x-api-key": secret}).body)["usage"]
    assert first["cache_creation_input_tokens"] > 1024 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0 and second["cost_usd"] < first["cost_usd"]
    base = "anthropic.claude-sonnet-4-20250514-v1:0"
    (price_in, price_out), (write, read) = DEFAULT_PRICES[base], DEFAULT_CACHE_PRICES[base]
    assert (write, read) == (price_in * Decimal("1.25"), price_in * Decimal("0.1"))
    expected = (second["input_tokens"] * price_in + second["output_tokens"] * price_out
                + second["cache_read_input_tokens"] * read) / 1_000_000
    assert second["cost_usd"] == pytest.approx(float(expected), abs=1e-8)
    sent = emulator.requests()[0]["body"]
    assert sent["system"] == [{"text": LONG_SYSTEM}, {"cachePoint": {"type": "default"}},
                              {"text": "Today is Tuesday."}]
    # The key's tokens count the cached prefix too, written or read.
    assert day_usage(dynamodb, record.key_id)["tokens"] == sum(
        u["input_tokens"] + u["output_tokens"] + u["cache_creation_input_tokens"]
        + u["cache_read_input_tokens"] for u in (first, second))
    streamed = post(api, {**body, "stream": True}, headers={"x-api-key": secret})
    usage = messages_events(streamed.body)[-2][1]["usage"]
    assert usage["cache_read_input_tokens"] == first["cache_creation_input_tokens"]


def test_cache_marks_change_nothing_for_a_model_that_does_not_cache(
        api: Api, emulator: EmulatorControl) -> None:
    marked = [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}},
              {"type": "text", "text": "More."}]
    message(api, system=marked, cache_control={"type": "ephemeral", "ttl": "1h"})
    message(api, system="Rules.\nMore.")
    first, second = emulator.requests()
    assert first["body"]["prompt"] == second["body"]["prompt"]
    _, body = message(api, model=CLAUDE, system=marked)  # Haiku 4.5: 4,096 minimum, not met
    assert body["usage"]["cache_creation_input_tokens"] == 0
    five = [{"type": "text", "text": f"t{i}", "cache_control": {"type": "ephemeral"}}
            for i in range(5)]
    error = error_of(post(api, {"model": CLAUDE, "max_tokens": 5, "messages": HELLO,
                                "system": five}))
    assert error[:2] == (400, "invalid_request_error") and "maximum of 4" in error[2]


SCRIPTED = "one two STOP three END four"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model,stops,matched", [
    (MODEL, ["END", "STOP"], "STOP"),
    (CLAUDE, ["END", "STOP"], "STOP"),
    (CLAUDE, ["STOP"], "STOP"),
    (MODEL, ["never"], None),
    (CLAUDE, ["never", "nor this"], None),
])
def test_the_stop_sequence_that_ended_the_answer_is_named(
        api: Api, emulator: EmulatorControl, model: str, stops: list[str], matched: str | None,
        stream: bool) -> None:
    emulator.respond_next(SCRIPTED)
    response = post(api, {"model": model, "max_tokens": 64, "messages": HELLO,
                          "stop_sequences": stops, "stream": stream})
    assert response.status_code == 200
    if stream:
        events = messages_events(response.body)
        text = "".join(data["delta"]["text"] for name, data in events
                       if name == "content_block_delta")
        delta = next(data["delta"] for name, data in events if name == "message_delta")
    else:
        body = json.loads(response.body)
        text, delta = body["content"][0]["text"], body
    assert (delta["stop_reason"], delta["stop_sequence"]) == (
        ("stop_sequence", matched) if matched else ("end_turn", None))
    assert text == ("one two " if matched else SCRIPTED)
    sent = emulator.requests()[-1]["body"]
    if model == CLAUDE:
        # Converse's stopReason does not say which matched: Claude's own field is asked for.
        assert sent["inferenceConfig"]["stopSequences"] == stops
        assert sent.get("additionalModelResponseFieldPaths") == (
            ["/stop_sequence"] if len(stops) > 1 else None)
