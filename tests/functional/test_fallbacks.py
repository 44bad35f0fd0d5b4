"""Fallback chains through the app, with the emulator failing a model or a
region (``fail_models``, ``fail_regions``): the next link answers, the
client sees the model it asked for and ``x-served-*`` names what answered,
billing is at the served model's price, cooldowns skip a failed link for
every process, and nothing the request caused itself moves it on."""
from __future__ import annotations

import io
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.chat import ChatRequest, Message, Usage
from chalicelib.jobs.store import request_from_json, request_to_json
from chalicelib.models.pricing import DEFAULT_PRICES, cost_usd
from chalicelib.observe.telemetry import Telemetry
from chalicelib.tenancy.keys import KeyStore
from chalicelib.tenancy.limits import DAY, Need, day_pk, micros, need_of, worst_micros
from tests.conftest import MODEL, Api, ApiFactory
from tests.functional.test_budgets import USAGE, usd_of
from tests.functional.test_jobs import drain, status, submit
from tests.support import EmulatorControl

NOVA = "us.amazon.nova-lite-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
WEST = f"{MODEL}@us-west-2"
JSON = {"Content-Type": "application/json"}
LINKS = (MODEL, NOVA, CLAUDE, WEST, f"{NOVA}@us-west-2")


@pytest.fixture(autouse=True)
def _no_cooldowns(dynamodb: Any) -> Any:
    """Cooldowns are shared by every process, tests included: each test
    starts and ends with none open on the links these tests use."""
    def clear() -> None:
        for link in LINKS:
            dynamodb.delete_item(TableName=USAGE, Key={"pk": {"S": f"cooldown#{link}"}})
    clear()
    yield
    clear()


def chained(make_api: ApiFactory, key_store: KeyStore, links: tuple[str, ...] = (NOVA,),
            **settings: Any) -> tuple[Api, str]:
    secret, record = key_store.create("acme", now=int(time.time()))
    api = make_api(key=secret, allowed_models=(MODEL, NOVA, CLAUDE),
                   fallbacks={MODEL: links}, bedrock_max_attempts=1, **settings)
    return api, record.key_id


def chat(api: Api, content: str = "Hello there", **extra: Any) -> Any:
    return api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 40,
         **extra}))


def called(emulator: EmulatorControl) -> list[tuple[str, str]]:
    return [(r["modelId"], r.get("region", "")) for r in emulator.requests()]


def test_a_failing_model_is_answered_by_the_next_link_at_its_price(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
        dynamodb: Any) -> None:
    api, key_id = chained(make_api, key_store)
    emulator.configure(fail_models={MODEL: "ServiceUnavailableException"})
    response = chat(api)
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    # The client sees the model it asked for; the headers, what answered.
    assert body["model"] == MODEL
    assert response.headers["x-served-model"] == NOVA
    assert response.headers["x-served-region"] == "us-east-1"
    assert called(emulator) == [(MODEL, "us-east-1"), (NOVA, "us-east-1")]
    usage = body["usage"]
    nova = cost_usd(DEFAULT_PRICES, NOVA, Usage(usage["prompt_tokens"], usage["completion_tokens"]))
    llama = cost_usd(DEFAULT_PRICES, MODEL, Usage(usage["prompt_tokens"],
                                                  usage["completion_tokens"]))
    assert nova != llama
    assert Decimal(str(usage["cost_usd"])) == nova
    assert usd_of(dynamodb, day_pk(key_id, int(time.time() // DAY))) == micros(nova)


def test_a_healthy_model_says_it_served_itself(make_api: ApiFactory, key_store: KeyStore,
                                               emulator: EmulatorControl) -> None:
    api, _ = chained(make_api, key_store)
    response = chat(api)
    assert response.status_code == 200
    assert (response.headers["x-served-model"], response.headers["x-served-region"]) == (
        MODEL, "us-east-1")
    assert called(emulator) == [(MODEL, "us-east-1")]


def test_a_failing_region_is_answered_through_another(make_api: ApiFactory, key_store: KeyStore,
                                                      emulator: EmulatorControl) -> None:
    api, _ = chained(make_api, key_store, links=(WEST, NOVA))
    emulator.configure(fail_regions={"us-east-1": "ThrottlingException"})
    response = chat(api)
    assert response.status_code == 200, response.body
    assert (response.headers["x-served-model"], response.headers["x-served-region"]) == (
        MODEL, "us-west-2")
    assert called(emulator) == [(MODEL, "us-east-1"), (MODEL, "us-west-2")]


def test_the_cooldown_skips_a_failed_link_for_every_process(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    log = io.StringIO()
    api, _ = chained(make_api, key_store, cooldown_failures=2,
                     telemetry=Telemetry("dev", stream=log))
    emulator.configure(fail_models={MODEL: "ThrottlingException"})
    for _ in range(2):
        assert chat(api).status_code == 200
    records = [json.loads(line) for line in log.getvalue().splitlines()]
    opened = [r for r in records if "CooldownOpened" in r]
    assert [(r["link"], r["CooldownOpened"]) for r in opened] == [(MODEL, [1.0])]
    served = [r for r in records if "ServedRequests" in r]
    assert {r["served_model"] for r in served} == {NOVA}
    lines = [r for r in records if r.get("message") == "request"]
    assert [(r["served_model"], r["fallbacks"]) for r in lines] == [(NOVA, 1), (NOVA, 1)]
    emulator.clear_requests()
    # This process knows at once; a new one (another Lambda) reads the table.
    assert chat(api).status_code == 200
    fresh, _ = chained(make_api, key_store)
    assert chat(fresh).headers["x-served-model"] == NOVA
    assert called(emulator) == [(NOVA, "us-east-1")] * 2


def test_every_link_cooling_still_tries_them_all(make_api: ApiFactory, key_store: KeyStore,
                                                 emulator: EmulatorControl) -> None:
    api, _ = chained(make_api, key_store, cooldown_failures=1)
    emulator.configure(fail_models={MODEL: "ThrottlingException", NOVA: "ThrottlingException"})
    failed = chat(api)
    assert failed.status_code == 429
    assert json.loads(failed.body)["error"]["code"] == "upstream_throttled"
    emulator.configure(fail_models={})
    emulator.clear_requests()
    # Both links cooling down: the chain is tried anyway, in its order.
    assert chat(api).headers["x-served-model"] == MODEL
    assert called(emulator) == [(MODEL, "us-east-1")]


@pytest.mark.parametrize("error, status", [("ValidationException", 400),
                                           ("AccessDeniedException", 500)])
def test_what_moves_on_and_what_does_not(make_api: ApiFactory, key_store: KeyStore,
                                         emulator: EmulatorControl, error: str,
                                         status: int) -> None:
    api, _ = chained(make_api, key_store)
    emulator.configure(fail_models={MODEL: error})
    response = chat(api)
    if status == 400:  # the request's own fault: never another model
        assert response.status_code == 400
        assert called(emulator) == [(MODEL, "us-east-1")]
    else:  # no access to the model here (misconfigured): the next link can serve
        assert response.status_code == 200
        assert response.headers["x-served-model"] == NOVA


def test_a_stream_falls_back_before_its_first_byte_only(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    api, _ = chained(make_api, key_store)
    emulator.configure(fail_models={MODEL: "ModelNotReadyException"})
    streamed = chat(api, stream=True)
    assert streamed.status_code == 200
    assert streamed.headers["x-served-model"] == NOVA
    chunks = [json.loads(line[6:]) for line in streamed.body.decode().splitlines()
              if line.startswith("data: {")]
    assert {c["model"] for c in chunks} == {MODEL}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    # Broken after its first event: the client has part of an answer, so
    # no other model takes over.
    emulator.configure(fail_models={}, fail_in_stream=True, fail_next=["ModelStreamErrorException"])
    emulator.clear_requests()
    broken = chat(api, stream=True)
    assert broken.status_code != 200 or b"error" in broken.body
    assert called(emulator) == [(MODEL, "us-east-1")]


def test_tools_and_json_answers_fall_back_too(make_api: ApiFactory, key_store: KeyStore,
                                              emulator: EmulatorControl) -> None:
    api, _ = chained(make_api, key_store)
    emulator.configure(fail_models={MODEL: "ServiceUnavailableException"})
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    response = chat(api, "Where is the Louvre? Answer as JSON.", response_format={
        "type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}})
    assert response.status_code == 200, response.body
    assert response.headers["x-served-model"] == NOVA
    assert set(json.loads(json.loads(response.body)["choices"][0]["message"]["content"])) == {
        "city"}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    called_tools = chat(api, "What is the weather in Paris?", tools=tools, tool_choice="required")
    assert called_tools.status_code == 200, called_tools.body
    message = json.loads(called_tools.body)["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert called_tools.headers["x-served-model"] == NOVA


def test_messages_and_responses_routes_take_the_same_chain(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl) -> None:
    api, _ = chained(make_api, key_store)
    emulator.configure(fail_models={MODEL: "ServiceUnavailableException"})
    messages = api.http.post("/v1/messages", headers=JSON, body=json.dumps({
        "model": MODEL, "max_tokens": 30, "messages": [{"role": "user", "content": "Hi"}]}))
    assert messages.status_code == 200, messages.body
    assert json.loads(messages.body)["model"] == MODEL
    assert messages.headers["x-served-model"] == NOVA
    responses = api.http.post("/v1/responses", headers=JSON, body=json.dumps({
        "model": MODEL, "input": "Hi", "max_output_tokens": 30}))
    assert responses.status_code == 200, responses.body
    assert json.loads(responses.body)["model"] == MODEL
    assert responses.headers["x-served-model"] == NOVA


def test_a_job_takes_its_chain(make_api: ApiFactory, key_store: KeyStore, sqs: Any,
                               job_queues: dict[str, str], emulator: EmulatorControl) -> None:
    api, _ = chained(make_api, key_store, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)
    emulator.configure(fail_models={MODEL: "ServiceUnavailableException"})
    accepted = submit(api, {"prompt": "Hello, job", "max_tokens": 30})
    assert drain(sqs, job_queues["jobs"]) == 1
    done = json.loads(status(api, accepted["job_id"]).body)
    assert done["status"] == "succeeded", done
    assert done["result"]["model"] == MODEL
    assert called(emulator)[-1] == (NOVA, "us-east-1")


def test_jobs_keep_their_chain_and_reservations_cover_the_dearest_link() -> None:
    request = ChatRequest(messages=(Message("user", "hi " * 300),), model=MODEL, max_tokens=100,
                          temperature=0.5, top_p=0.9, fallbacks=(WEST, CLAUDE))
    assert request_from_json(request_to_json(request)).fallbacks == (WEST, CLAUDE)
    need = need_of(request)
    assert need.alternatives == (CLAUDE,)
    alone = worst_micros(Need(MODEL, need.input_tokens, need.output_tokens), DEFAULT_PRICES)
    claude = worst_micros(Need(CLAUDE, need.input_tokens, need.output_tokens), DEFAULT_PRICES)
    assert worst_micros(need, DEFAULT_PRICES) == claude > alone
