"""POST /v1/responses through the app: the one path (what reached Bedrock),
the response object as OpenAI documents it, named streamed events, state per
tenant (previous_response_id, GET, DELETE, input_items), and refusals that
name the field."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

import app as app_module
from chalicelib.tenancy.keys import KeyStore
from tests.conftest import MODEL, Api, ApiFactory
from tests.functional.test_jobs import drain
from tests.functional.test_streaming import (USAGE, FakeContext, day_usage, key_context,
                                             proxy_event, timed_chunks)
from tests.openapi_check import response_events
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
RESPONSES = "llm-endpoint-dev-responses"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False}}


def day_pk(key_id: str) -> str:
    return f"{key_id}#d#{int(time.time() // 86400)}"


def post(api: Api, body: dict[str, Any]) -> Any:
    return api.http.post("/v1/responses", headers=JSON, body=json.dumps({"model": MODEL, **body}))


def test_a_string_input_is_one_user_turn_and_the_answer_a_message(
        api: Api, emulator: EmulatorControl) -> None:
    response = post(api, {"input": "Say hello.", "instructions": "Be brief.",
                          "max_output_tokens": 64, "temperature": 0.6})
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    assert body["object"] == "response" and body["id"].startswith("resp_")
    assert body["status"] == "completed" and body["error"] is None
    (message,) = body["output"]
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["content"][0]["type"] == "output_text" and message["content"][0]["text"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    (sent,) = emulator.requests()
    prompt = sent["body"]["prompt"]
    assert "Be brief." in prompt and "Say hello." in prompt
    assert (sent["body"]["max_gen_len"], sent["body"]["temperature"]) == (64, 0.3)


def test_previous_response_id_continues_without_the_old_instructions(
        api: Api, emulator: EmulatorControl) -> None:
    first = json.loads(post(api, {"input": "My name is Ada.", "instructions": "Pirate."}).body)
    second = post(api, {"input": "What is my name?", "previous_response_id": first["id"]})
    assert second.status_code == 200, second.body
    prompt = emulator.requests()[-1]["body"]["prompt"]
    assert "My name is Ada." in prompt and "What is my name?" in prompt
    assert first["output"][0]["content"][0]["text"] in prompt
    assert "Pirate." not in prompt
    got = api.http.get(f"/v1/responses/{first['id']}")
    assert json.loads(got.body) == first
    items = json.loads(api.http.get(f"/v1/responses/{first['id']}/input_items").body)
    assert [i["content"][0]["text"] for i in items["data"]] == ["My name is Ada."]


def test_another_tenants_response_is_not_found_everywhere(
        make_api: ApiFactory, key_store: KeyStore) -> None:
    mine = make_api()
    first = json.loads(post(mine, {"input": "A secret."}).body)
    other_key, _ = key_store.create("other-tenant-responses", now=int(time.time()))
    theirs = make_api(key=other_key)
    for answer in (theirs.http.get(f"/v1/responses/{first['id']}"),
                   theirs.http.get(f"/v1/responses/{first['id']}/input_items"),
                   post(theirs, {"input": "Go on.", "previous_response_id": first["id"]}),
                   theirs.http.request("DELETE", f"/v1/responses/{first['id']}")):
        assert answer.status_code == 404, answer.body
        assert json.loads(answer.body)["error"]["code"] == "not_found"
    assert mine.http.get(f"/v1/responses/{first['id']}").status_code == 200


def test_store_false_keeps_nothing_and_delete_forgets(api: Api) -> None:
    kept = json.loads(post(api, {"input": "Hi"}).body)
    unkept = json.loads(post(api, {"input": "Hi", "store": False}).body)
    assert unkept["store"] is False
    assert api.http.get(f"/v1/responses/{unkept['id']}").status_code == 404
    deleted = api.http.request("DELETE", f"/v1/responses/{kept['id']}")
    assert json.loads(deleted.body) == {"id": kept["id"], "object": "response.deleted",
                                        "deleted": True}
    assert api.http.get(f"/v1/responses/{kept['id']}").status_code == 404


def test_a_function_call_round_trip(api: Api, emulator: EmulatorControl) -> None:
    first = json.loads(post(api, {"input": "Weather in Paris?", "tools": [WEATHER],
                                  "tool_choice": "required"}).body)
    (call,) = [i for i in first["output"] if i["type"] == "function_call"]
    assert call["id"].startswith("fc_") and call["call_id"].startswith("call_")
    assert call["name"] == "get_weather" and "city" in json.loads(call["arguments"])
    second = post(api, {"previous_response_id": first["id"], "tools": [WEATHER],
                        "input": [{"type": "function_call_output", "call_id": call["call_id"],
                                   "output": "18C and sunny"}]})
    assert second.status_code == 200, second.body
    assert "18C and sunny" in emulator.requests()[-1]["body"]["prompt"]


def test_the_stream_has_named_events_and_joins_to_the_stored_answer(api: Api) -> None:
    response = post(api, {"input": "Count to three.", "stream": True})
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/event-stream"
    events = response_events(response.body)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert kinds[-1] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == text
    assert json.loads(api.http.get(f"/v1/responses/{final['id']}").body) == final


def test_hosted_tools_are_left_out_and_what_cannot_be_honoured_names_its_field(
        api: Api, emulator: EmulatorControl) -> None:
    ok = post(api, {"input": "Hi", "tools": [{"type": "web_search"}, WEATHER]})
    assert ok.status_code == 200, ok.body
    assert "web_search" not in emulator.requests()[-1]["body"]["prompt"]
    for body, param in (({"input": "Hi", "tool_choice": {"type": "web_search_preview"}},
                         "tool_choice"),
                        ({"input": "Hi", "frequency_penalty": 0}, "frequency_penalty"),
                        ({"input": [{"type": "message", "role": "user", "content": [
                            {"type": "input_image", "image_url": "x"}]}]},
                         "input[0].content[0].type"),
                        ({"input": "Hi", "temperature": 3}, "temperature"),
                        ({"input": "Hi", "previous_response_id": "resp_nope"},
                         "previous_response_id")):
        answer = post(api, body)
        assert 400 <= answer.status_code < 500, (body, answer.body)
        assert json.loads(answer.body)["error"]["param"] == param, answer.body


# --- really streamed, through app.serve (make run's and the deploy's entry) ---

def test_the_real_stream_is_paced_and_billed_to_bedrocks_usage(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        dynamodb: Any) -> None:
    make_api()
    authorizer, key_id = key_context(key_store, tokens_per_day=100_000)
    emulator.configure(latency_ms=50, tokens_per_second=100)
    response = app_module.serve(proxy_event("/v1/responses", {
        "model": MODEL, "input": "Tell me a story.", "stream": True}, authorizer),
        FakeContext(30))
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    arrivals = timed_chunks(response)
    deltas = [t for t, piece in arrivals if b"response.output_text.delta" in piece]
    assert len(deltas) > 5 and deltas[-1] - deltas[0] > 0.05  # as Bedrock generates
    events = response_events(b"".join(p for _, p in arrivals))
    usage = events[-1]["response"]["usage"]
    assert day_usage(dynamodb, key_id) == {"requests": 1, "tokens": usage["total_tokens"]}


def test_a_client_that_hangs_up_mid_response_still_pays(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        dynamodb: Any) -> None:
    make_api()
    authorizer, key_id = key_context(key_store, tokens_per_day=100_000)
    body = {"model": MODEL, "input": "Hang up", "store": False}
    plain = app_module.app(proxy_event("/v1/responses", body, authorizer), FakeContext(30))
    whole = json.loads(plain["body"])["usage"]["total_tokens"]
    emulator.configure(tokens_per_second=200)
    response = app_module.serve(proxy_event("/v1/responses", {**body, "stream": True},
                                            authorizer), FakeContext(30))
    chunks = response.chunks()
    received = [next(chunks) for _ in range(6)]
    assert b"response.output_text.delta" in received[-1]
    chunks.close()
    assert day_usage(dynamodb, key_id) == {"requests": 2, "tokens": 2 * whole}


def test_a_failure_mid_stream_is_an_error_event_then_response_failed(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        dynamodb: Any) -> None:
    make_api(bedrock_read_timeout_s=1.0)
    authorizer, key_id = key_context(key_store, tokens_per_day=100_000)
    emulator.configure(reset_in_stream=True)
    response = app_module.serve(proxy_event("/v1/responses", {
        "model": MODEL, "input": "Break", "stream": True}, authorizer), FakeContext(30))
    events = response_events(b"".join(response.chunks()))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["code"] == events[-2]["code"] == "upstream_error"
    used = day_usage(dynamodb, key_id)
    assert used["requests"] == 1 and 0 < used["tokens"] < 200


# --- background: true, through the jobs path ---------------------------------

@pytest.fixture
def background(make_api: ApiFactory, key_store: KeyStore,
               job_queues: dict[str, str]) -> tuple[Api, str]:
    """An app on the test's own jobs queue, and its key's id (limited, so counted)."""
    secret, record = key_store.create("bg-acme", now=int(time.time()),
                                      limits={"tokens_per_day": 100_000})
    return make_api(key=secret, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0), record.key_id


def test_a_background_response_is_queued_then_read_back_done(
        background: tuple[Api, str], sqs: Any, job_queues: dict[str, str],
        emulator: EmulatorControl, dynamodb: Any) -> None:
    api, key_id = background
    queued = json.loads(post(api, {"input": "Write a long essay.", "background": True}).body)
    assert queued["status"] == "queued" and queued["background"] is True and not queued["output"]
    assert json.loads(api.http.get(f"/v1/responses/{queued['id']}").body)["status"] == "queued"
    assert drain(sqs, job_queues["jobs"]) == 1
    done = json.loads(api.http.get(f"/v1/responses/{queued['id']}").body)
    assert done["status"] == "completed" and done["output"][0]["content"][0]["text"]
    assert "Write a long essay." in emulator.requests()[-1]["body"]["prompt"]
    assert day_usage(dynamodb, key_id)["tokens"] == done["usage"]["total_tokens"]
    again = post(api, {"input": "Shorter.", "previous_response_id": queued["id"]})
    assert again.status_code == 200, again.body
    assert "Write a long essay." in emulator.requests()[-1]["body"]["prompt"]
    # Done: cancelling changes nothing.
    assert json.loads(api.http.post(f"/v1/responses/{queued['id']}/cancel").body) == done


def test_cancelling_a_queued_response_releases_its_reservation(
        background: tuple[Api, str], sqs: Any, job_queues: dict[str, str],
        emulator: EmulatorControl, dynamodb: Any) -> None:
    api, key_id = background
    queued = json.loads(post(api, {"input": "Never mind.", "background": True}).body)
    held = dynamodb.get_item(TableName=USAGE, Key={"pk": {"S": day_pk(key_id)}})["Item"]
    assert int(held["tokens"]["N"]) > 0  # the reservation, held while queued
    cancelled = json.loads(api.http.post(f"/v1/responses/{queued['id']}/cancel").body)
    assert cancelled["status"] == "cancelled"
    drain(sqs, job_queues["jobs"])
    assert emulator.requests() == []  # the worker never ran it
    assert day_usage(dynamodb, key_id)["tokens"] == 0
    assert json.loads(api.http.get(f"/v1/responses/{queued['id']}").body)["status"] == \
        "cancelled"
    plain = json.loads(post(api, {"input": "Hi"}).body)
    refused = api.http.post(f"/v1/responses/{plain['id']}/cancel")
    assert refused.status_code == 400


# --- state beyond one DynamoDB item, references, listing ---------------------

def test_a_conversation_outgrows_dynamodbs_item_limit(make_api: ApiFactory,
                                                      emulator: EmulatorControl,
                                                      dynamodb: Any) -> None:
    api = make_api(max_prompt_chars=3_000_000, max_body_bytes=2_000_000)
    # One turn of ~460 KB of ordinary text: its record alone is several items,
    # while the whole conversation stays inside Llama's 128k-token window
    # (the emulator counts tokens as Bedrock does).
    big = "hello world " * 38_000 + " and ends here."
    first = post(api, {"input": big})
    assert first.status_code == 200, first.body[:300]
    first_id = json.loads(first.body)["id"]
    head = dynamodb.get_item(TableName=RESPONSES, Key={"pk": {"S": first_id}})["Item"]
    assert int(head["pieces"]["N"]) >= 2
    second = json.loads(post(api, {"input": "good morning " * 10_000,
                                   "previous_response_id": first_id}).body)
    third = post(api, {"input": "What did I say first?", "previous_response_id": second["id"]})
    assert third.status_code == 200, third.body[:300]
    prompt = emulator.requests()[-1]["body"]["prompt"]
    assert big.strip() in prompt and ("good morning " * 10_000).strip() in prompt
    assert "What did I say first?" in prompt
    items = json.loads(api.http.get(f"/v1/responses/{first_id}/input_items").body)
    assert items["data"][0]["content"][0]["text"] == big


def test_item_references_resolve_within_the_callers_items_only(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    mine = make_api()
    first = json.loads(post(mine, {"input": "Remember: the code is 4321."}).body)
    message_id = first["output"][0]["id"]
    answer = post(mine, {"input": [{"role": "user", "content": "Earlier you said:"},
                                   {"type": "item_reference", "id": message_id},
                                   {"role": "user", "content": "Repeat it."}]})
    assert answer.status_code == 200, answer.body
    assert first["output"][0]["content"][0]["text"] in emulator.requests()[-1]["body"]["prompt"]
    other_key, _ = key_store.create("other-tenant-items", now=int(time.time()))
    theirs = post(make_api(key=other_key),
                  {"input": [{"type": "item_reference", "id": message_id}]})
    assert theirs.status_code == 404
    assert json.loads(theirs.body)["error"]["param"] == "input[0].id"


def test_input_items_are_listed_newest_first_in_pages(api: Api) -> None:
    turns = [{"role": "user", "content": f"turn {n}"} for n in range(5)]
    response = json.loads(post(api, {"input": turns}).body)
    path = f"/v1/responses/{response['id']}/input_items"
    page = json.loads(api.http.get(f"{path}?limit=2").body)
    texts = [i["content"][0]["text"] for i in page["data"]]
    assert texts == ["turn 4", "turn 3"] and page["has_more"] is True
    rest = json.loads(api.http.get(f"{path}?limit=10&after={page['last_id']}").body)
    assert [i["content"][0]["text"] for i in rest["data"]] == ["turn 2", "turn 1", "turn 0"]
    assert rest["has_more"] is False
    ascending = json.loads(api.http.get(f"{path}?order=asc&limit=1").body)
    assert ascending["data"][0]["content"][0]["text"] == "turn 0"
    assert api.http.get(f"{path}?limit=0").status_code == 400


# --- the Converse models -------------------------------------------------------

CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"


@pytest.mark.parametrize("model", [CLAUDE, NOVA])
def test_converse_models_answer_plain_streamed_and_with_tools(
        make_api: ApiFactory, emulator: EmulatorControl, model: str) -> None:
    api = make_api(allowed_models=(MODEL, CLAUDE, NOVA))
    plain = post(api, {"model": model, "instructions": "Be brief.", "input": "Hi"})
    assert plain.status_code == 200, plain.body
    call = emulator.requests()[-1]
    # A plain call too reads ConverseStream (completion.py: a cut call knows what it generated).
    assert (call["operation"], call["modelId"]) == ("ConverseStream", model)
    assert call["body"]["system"] == [{"text": "Be brief."}]
    assert call["body"]["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
    assert json.loads(plain.body)["output"][0]["content"][0]["text"]
    # Not strict (Responses' default is): its calls stream live, read from ConverseStream.
    loose = {**WEATHER, "strict": False}
    streamed = post(api, {"model": model, "input": "Weather in Oslo?", "stream": True,
                          "tools": [loose, {"type": "web_search"}]})
    events = response_events(streamed.body)
    call = emulator.requests()[-1]
    assert call["operation"] == "ConverseStream"
    assert [t["toolSpec"]["name"] for t in call["body"]["toolConfig"]["tools"]] == ["get_weather"]
    final = events[-1]["response"]
    (fc,) = [i for i in final["output"] if i["type"] == "function_call"]
    args = "".join(e["delta"] for e in events
                   if e["type"] == "response.function_call_arguments.delta")
    assert json.loads(args) == json.loads(fc["arguments"]) and "city" in json.loads(args)
    answer = post(api, {"model": model, "previous_response_id": final["id"], "tools": [WEATHER],
                        "input": [{"type": "function_call_output", "call_id": fc["call_id"],
                                   "output": "It is 2 degrees."}]})
    assert answer.status_code == 200, answer.body
    assert "It is 2 degrees." in json.dumps(emulator.requests()[-1]["body"]["messages"])


def test_a_custom_tool_is_called_with_freeform_input_and_answered(
        api: Api, emulator: EmulatorControl) -> None:
    patch = {"type": "custom", "name": "apply_patch", "description": "Edit files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}
    first = json.loads(post(api, {"input": "Fix the typo.", "tools": [patch],
                                  "tool_choice": {"type": "custom", "name": "apply_patch"}}).body)
    (call,) = first["output"]
    assert call["type"] == "custom_tool_call" and call["id"].startswith("ctc_")
    assert isinstance(call["input"], str) and call["input"]
    prompt = emulator.requests()[-1]["body"]["prompt"]
    assert "apply_patch" in prompt and "start: /.+/" in prompt  # the grammar, shown
    second = post(api, {"previous_response_id": first["id"], "tools": [patch], "input": [
        {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "Patched."}]})
    assert second.status_code == 200, second.body
    assert "Patched." in emulator.requests()[-1]["body"]["prompt"]
