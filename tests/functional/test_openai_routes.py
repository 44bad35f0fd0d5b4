"""/v1/chat/completions and /v1/models through chalice.test.Client against the
emulator: the same core as /chat, streamed and not, and errors mid-stream."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import MODEL, Api, ApiFactory
from tests.openapi_check import sse_events
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
BASE = {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Hello"}]}


def post(api: Api, body: Any) -> Any:
    return api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(body))


def test_completion_reaches_bedrock_like_chat(api: Api, emulator: EmulatorControl) -> None:
    response = post(api, {**BASE, "temperature": 1, "max_tokens": 50})
    assert response.status_code == 200
    completion = json.loads(response.body)
    native = json.loads(api.http.post("/chat", headers=JSON, body=json.dumps({
        "messages": BASE["messages"], "temperature": 0.5, "max_tokens": 50})).body)
    first, second = emulator.requests()
    assert first == second  # one path to Bedrock, whichever API
    assert first["operation"] == "InvokeModelWithResponseStream" and first["body"]["temperature"] == 0.5
    assert completion["choices"][0]["message"]["content"] == native["text"]
    assert completion["usage"]["prompt_tokens"] == native["usage"]["input_tokens"]
    assert completion["id"] == f"chatcmpl-{response.headers['x-request-id']}"


def test_stream_joins_to_the_plain_answer(api: Api, emulator: EmulatorControl) -> None:
    plain = json.loads(post(api, BASE).body)
    response = post(api, {**BASE, "stream": True, "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    events = sse_events(response.body)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert events[-1]["usage"] == plain["usage"]
    assert [r["operation"] for r in emulator.requests()] == ["InvokeModelWithResponseStream",
                                                             "InvokeModelWithResponseStream"]


def test_stream_stops_and_lengths(api: Api) -> None:
    plain = json.loads(post(api, BASE).body)["choices"][0]["message"]["content"]
    word = plain.split()[2]
    events = sse_events(post(api, {**BASE, "stream": True, "stop": [word]}).body)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert text == plain[:plain.index(word)] and events[-1]["choices"][0]["finish_reason"] == "stop"
    events = sse_events(post(api, {**BASE, "stream": True, "max_tokens": 3}).body)
    assert events[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("fault,status,code", [
    ("ThrottlingException", 429, "upstream_throttled"),
    ("ModelTimeoutException", 504, "upstream_timeout"),
    ("ServiceUnavailableException", 503, "upstream_unavailable"),
    ("InternalServerException", 502, "upstream_error"),
    ("ModelStreamErrorException", 502, "upstream_error"),
    ("ValidationException", 400, "upstream_validation_error"),
])
def test_errors_inside_the_stream_become_http_errors(api: Api, emulator: EmulatorControl,
                                                     fault: str, status: int, code: str) -> None:
    emulator.configure(fault_rate={fault: 1.0}, fail_in_stream=True)
    response = post(api, {**BASE, "stream": True})
    assert response.status_code == status
    assert json.loads(response.body)["error"]["code"] == code
    if status == 429:
        assert response.headers["Retry-After"]


@pytest.mark.parametrize("fault,status", [("ThrottlingException", 429),
                                          ("AccessDeniedException", 502)])
def test_errors_before_the_stream(api: Api, emulator: EmulatorControl, fault: str,
                                  status: int) -> None:
    emulator.configure(fault_rate={fault: 1.0})
    assert post(api, {**BASE, "stream": True}).status_code == status


@pytest.mark.parametrize("body,status,code", [
    ({**BASE, "model": "gpt-4o"}, 404, "model_not_found"),
    ({**BASE, "tools": [{"type": "function", "function": {"name": "no spaces"}}]}, 400,
     "invalid_request"),
    ({**BASE, "functions": [{"name": "f"}]}, 400, "unsupported_parameter"),
    ({**BASE, "n": 3}, 400, "unsupported_parameter"),
    ({**BASE, "logprobs": True}, 400, "unsupported_parameter"),
    ({**BASE, "response_format": {"type": "json_schema"}}, 400, "invalid_request"),
    ({**BASE, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}, 400,
     "unsupported_parameter"),
    ({**BASE, "temperature": 3}, 400, "invalid_request"),
    ({"messages": BASE["messages"]}, 400, "invalid_request"),
    ({**BASE, "frobnicate": True}, 400, "invalid_request"),
])
def test_refusals(api: Api, emulator: EmulatorControl, body: dict, status: int, code: str) -> None:
    response = post(api, body)
    assert response.status_code == status
    assert json.loads(response.body)["error"]["code"] == code
    assert emulator.requests() == []


def test_models(make_api: ApiFactory) -> None:
    api = make_api(allowed_models=(MODEL, "us.meta.llama3-3-70b-instruct-v1:0"))
    listed = json.loads(api.http.get("/v1/models").body)
    assert [m["id"] for m in listed["data"]] == [MODEL, "us.meta.llama3-3-70b-instruct-v1:0"]
    one = api.http.get(f"/v1/models/{MODEL}")
    assert one.status_code == 200 and json.loads(one.body)["id"] == MODEL
    encoded = api.http.get("/v1/models/us.meta.llama3-1-8b-instruct-v1%3A0")
    assert json.loads(encoded.body)["id"] == MODEL
    missing = api.http.get("/v1/models/gpt-4o")
    assert missing.status_code == 404
    assert json.loads(missing.body)["error"]["code"] == "model_not_found"
