"""Issue 19, item 2: all the schema checks of one request share one time
budget. A hostile schema and answer (items x anyOf branches x patterns) are
refused within it as an unusable answer (422), billed, never repaired (asking
again could only run out again), on every path that checks an answer."""
from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.tenancy.keys import KeyStore
from tests.conftest import MODEL, ApiFactory
from tests.functional.test_adversarial import CLAUDE, JSON, error_of, limited
from tests.functional.test_hardening import day_tokens
from tests.functional.test_jobs import drain, limited_jobs_api, status, submit
from tests.openapi_check import sse_events
from tests.support import EmulatorControl, hostile_answer, hostile_schema

SHAPES = ["json_schema", "strict", "required", "stream"]


def hostile_request(shape: str, model: str = MODEL) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": 1000,
                            "messages": [{"role": "user", "content": "x"}]}
    if shape == "json_schema":
        return {**body, "response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "strict": True, "schema": hostile_schema()}}}
    body["tools"] = [{"type": "function", "function": {
        "name": "f", "parameters": hostile_schema(), "strict": shape != "required"}}]
    if shape == "required":
        body["tool_choice"] = "required"
    if shape == "stream":
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def hostile_text(shape: str) -> str:
    if shape == "json_schema":
        return json.dumps(hostile_answer())[1:]  # the assistant turn is prefilled with "{"
    return '{"name": "f", "parameters": ' + json.dumps(hostile_answer()) + "}"


def assert_unusable(response: Any) -> None:
    if response.status_code == 200:  # a stream: the error is its last event
        errors = [e["error"] for e in sse_events(response.body)
                  if isinstance(e, dict) and "error" in e]
        assert errors and errors[-1]["code"] == "invalid_model_output", response.body
        return
    assert response.status_code == 422, response.body
    error = error_of(response)
    assert error["code"] == "invalid_model_output"
    assert "took longer than" in error["message"]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_hostile_schema_is_refused_within_the_budget_and_billed(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl, dynamodb: Any,
        shape: str) -> None:
    api, key_id = limited(make_api, key_store)
    emulator.respond_next(hostile_text(shape), hostile_text(shape))
    response = api.http.post("/v1/chat/completions", headers=JSON,
                             body=json.dumps(hostile_request(shape)))
    assert_unusable(response)
    assert emulator.stats()["invocations"] == 1  # no repair: it could only run out again
    # What the one call generated (the answer alone is ~400 tokens), not the
    # reservation, nor nothing.
    assert len(hostile_text(shape)) // 8 < day_tokens(dynamodb, key_id) < 3 * 1000


def test_a_converse_answer_that_runs_out_is_billed(make_api: ApiFactory, key_store: KeyStore,
                                                   emulator: EmulatorControl,
                                                   dynamodb: Any) -> None:
    api, key_id = limited(make_api, key_store, allowed_models=(MODEL, CLAUDE))
    answer = json.dumps(hostile_answer())
    emulator.respond_next(answer, answer)
    response = api.http.post("/v1/chat/completions", headers=JSON,
                             body=json.dumps(hostile_request("json_schema", CLAUDE)))
    assert_unusable(response)
    assert emulator.stats()["invocations"] == 1
    assert 0 < day_tokens(dynamodb, key_id) < 3 * 1000


def test_a_job_whose_answer_runs_out_fails_billed_and_is_not_retried(
        make_api: ApiFactory, key_store: KeyStore, job_queues: dict[str, str], sqs: Any,
        emulator: EmulatorControl, dynamodb: Any) -> None:
    api, key_id = limited_jobs_api(make_api, key_store, job_queues)
    emulator.respond_next(hostile_text("json_schema"), hostile_text("json_schema"))
    accepted = submit(api, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1000,
                            "response_format": {"type": "json_schema",
                                                "schema": hostile_schema()}})
    assert drain(sqs, job_queues["jobs"]) == 1
    done = json.loads(status(api, accepted["job_id"]).body)
    assert done["status"] == "failed"
    assert "invalid_model_output" in json.dumps(done["error"])
    assert emulator.stats()["invocations"] == 1
    assert 0 < day_tokens(dynamodb, key_id) < 3 * 1000
