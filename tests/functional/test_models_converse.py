"""Claude, Nova and the other Converse families, and /v1/embeddings, through the
whole app (chalice.test.Client -> emulator over HTTP -> moto): what reached
Bedrock, what came back, and limits and cost per key across models."""
from __future__ import annotations

import base64
import json
import struct
import time
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.tenancy.keys import KeyStore
from chalicelib.models.pricing import DEFAULT_PRICES
from tests.conftest import MODEL, Api, ApiFactory
from tests.openapi_check import sse_events
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
MISTRAL = "mistral.mistral-large-2407-v1:0"
DEEPSEEK = "us.deepseek.r1-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
ALLOWED = (MODEL, CLAUDE, NOVA, MISTRAL, DEEPSEEK, TITAN, COHERE,
           "cohere.embed-multilingual-v3")
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


@pytest.fixture
def api(make_api: ApiFactory) -> Api:
    return make_api(allowed_models=ALLOWED)


def post(api: Api, body: dict[str, Any], path: str = "/v1/chat/completions") -> Any:
    return api.http.post(path, headers=JSON, body=json.dumps(body))


def sent(emulator: EmulatorControl, index: int = -1) -> dict[str, Any]:
    return emulator.requests()[index]


def test_models_lists_exactly_the_allowed_ids(api: Api) -> None:
    listed = json.loads(api.http.get("/v1/models").body)["data"]
    assert [m["id"] for m in listed] == list(ALLOWED)
    assert {m["id"]: m["owned_by"] for m in listed}[CLAUDE] == "anthropic"


@pytest.mark.parametrize("model", [CLAUDE, NOVA, MISTRAL, DEEPSEEK])
def test_plain_chat_goes_through_converse_with_the_system_prompt_apart(
        api: Api, emulator: EmulatorControl, model: str) -> None:
    response = post(api, {"model": model, "max_tokens": 400, "stop": ["zzz"], "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"}, {"role": "user", "content": "there"}]})
    assert response.status_code == 200, response.body
    call = sent(emulator)
    # A plain call reads ConverseStream too, so that a call cut short knows
    # what it generated (completion.py).
    assert (call["operation"], call["modelId"]) == ("ConverseStream", model)
    body = call["body"]
    assert body["system"] == [{"text": "Be brief."}]
    # Two user turns in a row become one (Claude insists on alternation).
    assert body["messages"] == [{"role": "user", "content": [{"text": "Hi"}, {"text": "there"}]}]
    assert body["inferenceConfig"]["maxTokens"] == 400
    assert body["inferenceConfig"]["stopSequences"] == ["zzz"]
    # Claude 4.5 refuses temperature and top_p together: only the temperature goes.
    assert ("topP" in body["inferenceConfig"]) == (model != CLAUDE)
    answer = json.loads(response.body)
    assert answer["model"] == model and answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["message"]["content"]
    assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("model, choice, expected", [
    (CLAUDE, "required", {"any": {}}),
    (NOVA, {"type": "function", "function": {"name": "get_weather"}},
     {"tool": {"name": "get_weather"}}),
    (NOVA, "auto", {"auto": {}}),
    (MISTRAL, "auto", None),  # Mistral takes tools but no toolChoice
])
def test_tools_become_tool_config_and_tool_use_becomes_tool_calls(
        api: Api, emulator: EmulatorControl, model: str, choice: Any, expected: Any) -> None:
    response = post(api, {"model": model, "tools": [WEATHER], "tool_choice": choice,
                          "messages": [{"role": "user", "content": "Weather in Paris?"}]})
    assert response.status_code == 200, response.body
    config = sent(emulator)["body"]["toolConfig"]
    assert config["tools"] == [{"toolSpec": {
        "name": "get_weather", "description": "Current weather for a city.",
        "inputSchema": {"json": WEATHER["function"]["parameters"]}}}]
    assert config.get("toolChoice") == expected
    choice_out = json.loads(response.body)["choices"][0]
    assert choice_out["finish_reason"] == "tool_calls"
    call = choice_out["message"]["tool_calls"][0]
    assert call["id"].startswith("tooluse_")  # Bedrock's toolUseId is the call id
    assert call["function"]["name"] == "get_weather"
    assert isinstance(json.loads(call["function"]["arguments"])["city"], str)


def test_a_tool_result_goes_back_as_a_tool_result_block(api: Api,
                                                        emulator: EmulatorControl) -> None:
    response = post(api, {"model": CLAUDE, "tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "tooluse_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "18 C and sunny"}]})
    assert response.status_code == 200, response.body
    messages = sent(emulator)["body"]["messages"]
    assert messages[1] == {"role": "assistant", "content": [{"toolUse": {
        "toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}]}
    assert messages[2] == {"role": "user", "content": [{"toolResult": {
        "toolUseId": "tooluse_1", "content": [{"text": "18 C and sunny"}]}}]}
    answer = json.loads(response.body)["choices"][0]
    assert answer["finish_reason"] == "stop" and "18 C and sunny" in answer["message"]["content"]


def test_streams_use_converse_stream_text_and_tool_calls(api: Api,
                                                         emulator: EmulatorControl) -> None:
    response = post(api, {"model": NOVA, "stream": True, "stream_options": {"include_usage": True},
                          "messages": [{"role": "user", "content": "Tell me a story"}]})
    assert response.status_code == 200
    assert sent(emulator)["operation"] == "ConverseStream"
    events = sse_events(response.body)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text and events[-1]["usage"]["completion_tokens"] > 0
    response = post(api, {"model": CLAUDE, "stream": True, "tools": [WEATHER],
                          "messages": [{"role": "user", "content": "Weather in Rome?"}]})
    assert response.status_code == 200
    assert sent(emulator)["operation"] == "ConverseStream"
    events = sse_events(response.body)
    calls = [c for e in events if e["choices"] for c in e["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "get_weather"
    arguments = "".join(c["function"].get("arguments", "") for c in calls)
    assert "city" in json.loads(arguments)
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == "tool_calls"


def test_a_model_without_tools_streaming_gets_one_plain_converse_call(
        api: Api, emulator: EmulatorControl) -> None:
    response = post(api, {"model": MISTRAL, "stream": True, "tools": [WEATHER],
                          "messages": [{"role": "user", "content": "Weather in Rome?"}]})
    assert response.status_code == 200
    assert sent(emulator)["operation"] == "Converse"


def test_json_schema_holds_on_converse_models(api: Api, emulator: EmulatorControl) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    response = post(api, {"model": NOVA, "messages": [{"role": "user", "content": "A person"}],
                          "response_format": {"type": "json_schema", "json_schema": {
                              "name": "person", "schema": schema}}})
    assert response.status_code == 200, response.body
    assert "valid against this JSON Schema" in sent(emulator)["body"]["system"][-1]["text"]
    document = json.loads(json.loads(response.body)["choices"][0]["message"]["content"])
    assert set(document) == {"name", "age"} and isinstance(document["age"], int)


def test_an_answer_that_breaks_the_schema_is_repaired_once(api: Api,
                                                           emulator: EmulatorControl) -> None:
    emulator.respond_next("not json at all", '{"answer": "ok"}')
    response = post(api, {"model": CLAUDE, "response_format": {"type": "json_object"},
                          "messages": [{"role": "user", "content": "Answer"}]})
    assert response.status_code == 200, response.body
    assert json.loads(json.loads(response.body)["choices"][0]["message"]["content"]) == \
        {"answer": "ok"}
    retry = sent(emulator)["body"]["messages"]
    assert retry[-2] == {"role": "assistant", "content": [{"text": "not json at all"}]}
    assert "could not be used" in retry[-1]["content"][0]["text"]
    usage = json.loads(response.body)["usage"]
    assert usage["prompt_tokens"] > 0  # both calls billed


@pytest.mark.parametrize("model, body, feature", [
    (MISTRAL, {"tools": [WEATHER], "tool_choice": "required"}, "tool_choice"),
    (DEEPSEEK, {"tools": [WEATHER]}, "tools"),
    (MISTRAL, {"messages": [{"role": "user", "content": "Hi"},
                            {"role": "assistant", "content": "Well,"}]}, "prefill"),
])
def test_a_feature_the_model_lacks_is_a_400_naming_both(api: Api, model: str, body: dict[str, Any],
                                                        feature: str) -> None:
    response = post(api, {"model": model, "messages": [{"role": "user", "content": "Hi"}], **body})
    assert response.status_code == 400
    message = json.loads(response.body)["error"]["message"]
    assert model in message and feature in message


def test_claude_continues_a_prefill(api: Api, emulator: EmulatorControl) -> None:
    response = post(api, {"model": CLAUDE, "messages": [
        {"role": "assistant", "content": "Opening line. "},
        {"role": "user", "content": "Go on"}, {"role": "assistant", "content": "Sure,  "}]})
    assert response.status_code == 200, response.body
    messages = sent(emulator)["body"]["messages"]
    assert messages[0] == {"role": "user", "content": [{"text": "Please begin."}]}
    assert messages[-1] == {"role": "assistant", "content": [{"text": "Sure,"}]}


# --- embeddings


def embed(api: Api, body: dict[str, Any]) -> Any:
    return post(api, body, "/v1/embeddings")


def test_titan_embeds_one_text_a_call_with_the_header_token_count(
        api: Api, emulator: EmulatorControl) -> None:
    texts = ["first text", "second one", "third and last"]
    response = embed(api, {"model": TITAN, "input": texts, "dimensions": 256})
    assert response.status_code == 200, response.body
    calls = emulator.requests()
    assert sorted(c["body"]["inputText"] for c in calls) == sorted(texts)  # concurrent calls
    assert all(c["operation"] == "InvokeModel" and c["body"]["dimensions"] == 256 for c in calls)
    answer = json.loads(response.body)
    assert [d["index"] for d in answer["data"]] == [0, 1, 2]
    assert all(len(d["embedding"]) == 256 for d in answer["data"])
    for index, text in enumerate(texts):  # answers in input order, whatever the call order
        alone = json.loads(embed(api, {"model": TITAN, "input": text, "dimensions": 256}).body)
        assert alone["data"][0]["embedding"] == answer["data"][index]["embedding"]
    norm = sum(x * x for x in answer["data"][0]["embedding"])
    assert abs(norm - 1) < 1e-4
    tokens = answer["usage"]["prompt_tokens"]
    assert tokens == sum(max(1, -(-len(t) // 4)) for t in texts) or tokens > 0
    price = DEFAULT_PRICES[TITAN][0]
    assert Decimal(str(answer["usage"]["cost_usd"])) == price * tokens / 1_000_000


def test_cohere_batches_96_texts_a_call_as_search_documents(api: Api,
                                                            emulator: EmulatorControl) -> None:
    texts = [f"document number {i}" for i in range(100)]
    response = embed(api, {"model": COHERE, "input": texts})
    assert response.status_code == 200, response.body
    calls = emulator.requests()
    assert sorted(len(c["body"]["texts"]) for c in calls) == [4, 96]  # calls run concurrently
    assert {c["body"]["input_type"] for c in calls} == {"search_document"}
    data = json.loads(response.body)["data"]
    assert len(data) == 100 and all(len(d["embedding"]) == 1024 for d in data)


def test_base64_is_float32_of_the_same_vector(api: Api) -> None:
    floats = json.loads(embed(api, {"model": TITAN, "input": "same text"}).body)
    packed = json.loads(embed(api, {"model": TITAN, "input": "same text",
                                    "encoding_format": "base64"}).body)
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats["data"][0]["embedding"]


def test_embeddings_are_cached_per_tenant(make_api: ApiFactory, key_store: KeyStore,
                                          emulator: EmulatorControl) -> None:
    mine = make_api(allowed_models=ALLOWED)
    first = embed(mine, {"model": COHERE, "input": ["cache me"]})
    second = embed(mine, {"model": COHERE, "input": ["cache me"]})
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert json.loads(second.body)["data"] == json.loads(first.body)["data"]
    assert json.loads(second.body)["usage"]["cost_usd"] == 0
    secret, _ = key_store.create("other-tenant", now=int(time.time()))
    theirs = make_api(allowed_models=ALLOWED, key=secret)
    assert embed(theirs, {"model": COHERE, "input": ["cache me"]}).headers["x-cache"] == "miss"
    assert len(emulator.requests()) == 2


@pytest.mark.parametrize("body, param", [
    ({"model": TITAN, "input": [1, 2, 3]}, "input"),
    ({"model": TITAN, "input": [[1, 2], [3]]}, "input"),
    ({"model": TITAN, "input": ""}, "input"),
    ({"model": TITAN, "input": []}, "input"),
    ({"model": TITAN, "input": "x", "dimensions": 300}, "dimensions"),
    ({"model": COHERE, "input": "x", "dimensions": 256}, "dimensions"),
    ({"model": TITAN, "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"model": CLAUDE, "input": "x"}, "model"),
    ({"input": "x"}, "model"),
    ({"model": TITAN, "input": "x", "extra": 1}, "extra"),
])
def test_bad_embedding_requests_are_400s_naming_the_field(api: Api, body: dict[str, Any],
                                                          param: str) -> None:
    response = embed(api, body)
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"]["param"] == param


def test_an_embedding_model_on_the_chat_route_is_a_400(api: Api) -> None:
    response = post(api, {"model": TITAN, "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 400
    assert "embedding model" in json.loads(response.body)["error"]["message"]


def test_limits_and_cost_hold_per_key_across_models(make_api: ApiFactory, key_store: KeyStore,
                                                    dynamodb: Any) -> None:
    secret, record = key_store.create("acme", now=int(time.time()), limits={
        "requests_per_minute": 4, "tokens_per_minute": None, "tokens_per_day": None})
    api = make_api(allowed_models=ALLOWED, key=secret, cache_enabled=False)
    costs = []
    for body, path in (({"model": MODEL}, "/v1/chat/completions"),
                       ({"model": CLAUDE}, "/v1/chat/completions"),
                       ({"model": NOVA}, "/v1/chat/completions")):
        response = post(api, {**body, "max_tokens": 20,
                              "messages": [{"role": "user", "content": "Hi"}]}, path)
        assert response.status_code == 200, response.body
        usage = json.loads(response.body)["usage"]
        model = body["model"]
        price_in, price_out = DEFAULT_PRICES[model.split(".", 1)[1]]
        assert float(usage["cost_usd"]) == pytest.approx(float(
            (price_in * usage["prompt_tokens"] + price_out * usage["completion_tokens"])
            / 1_000_000), abs=1e-8)
        costs.append(Decimal(str(usage["cost_usd"])))
    answer = embed(api, {"model": TITAN, "input": "one more"})
    assert answer.status_code == 200
    over = embed(api, {"model": COHERE, "input": "too many"})
    assert over.status_code == 429
    assert json.loads(over.body)["error"]["code"] == "requests_per_minute_exceeded"
    day = int(time.time() // 86_400)
    item = dynamodb.get_item(TableName="llm-endpoint-dev-usage",
                             Key={"pk": {"S": f"{record.key_id}#d#{day}"}},
                             ConsistentRead=True)["Item"]
    assert int(item["requests"]["N"]) == 4
    assert float(item["cost_usd"]["N"]) == pytest.approx(
        float(sum(costs)) + json.loads(answer.body)["usage"]["cost_usd"], abs=1e-7)


def test_native_chat_with_claude_tools(api: Api, emulator: EmulatorControl) -> None:
    tool = {"name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    response = post(api, {"model": CLAUDE, "system": "Use tools.", "prompt": "Weather in Oslo?",
                          "tools": [tool], "tool_choice": {"name": "get_weather"}}, "/chat")
    assert response.status_code == 200, response.body
    body = sent(emulator)["body"]
    assert body["system"] == [{"text": "Use tools."}]
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    call = json.loads(response.body)["tool_calls"][0]
    assert call["name"] == "get_weather" and isinstance(call["arguments"]["city"], str)


def test_jobs_run_converse_models(make_api: ApiFactory, sqs: Any, job_queues: dict[str, str],
                                  emulator: EmulatorControl) -> None:
    from tests.functional.test_jobs import drain, status, submit
    api = make_api(allowed_models=ALLOWED, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)
    accepted = submit(api, {"model": NOVA, "prompt": "Hello, job", "max_tokens": 300})
    drain(sqs, job_queues["jobs"])
    done = json.loads(status(api, accepted["job_id"]).body)
    assert done["status"] == "succeeded", done
    assert done["result"]["model"] == NOVA and done["result"]["text"]
    assert sent(emulator)["operation"] == "ConverseStream"


def test_embeddings_and_converse_calls_are_logged_like_chat(make_api: ApiFactory) -> None:
    import io

    from chalicelib.observe.telemetry import Telemetry
    from tests.functional.test_telemetry import lines
    stream = io.StringIO()
    api = make_api(allowed_models=ALLOWED, telemetry=Telemetry("dev", stream=stream),
                   cache_enabled=False)
    assert embed(api, {"model": TITAN, "input": ["a", "b"]}).status_code == 200
    assert post(api, {"model": CLAUDE, "messages": [{"role": "user", "content": "Hi"}]}
                ).status_code == 200
    logs, emf = lines(stream)
    assert [(log["route"], log["model"]) for log in logs] == [
        ("POST /v1/embeddings", TITAN), ("POST /v1/chat/completions", CLAUDE)]
    assert logs[0]["input_tokens"] > 0 and logs[0]["output_tokens"] == 0
    assert logs[0]["cost_usd"] > 0 and logs[0]["bedrock_ms"] > 0
    assert logs[1]["output_tokens"] > 0 and logs[1]["cost_usd"] > 0
    assert {blob["model"] for blob in emf if "model" in blob} == {TITAN, CLAUDE}


def test_scripted_answers_stream_through_converse_stream(api: Api,
                                                         emulator: EmulatorControl) -> None:
    emulator.respond_next("Exactly these words.")
    response = post(api, {"model": NOVA, "stream": True,
                          "messages": [{"role": "user", "content": "Say it"}]})
    text = "".join(e["choices"][0]["delta"].get("content") or ""
                   for e in sse_events(response.body) if e["choices"])
    assert text == "Exactly these words."
    assert sent(emulator)["operation"] == "ConverseStream"
