"""POST /chat through chalice.test.Client, with real boto3 against the emulator:
what reached Bedrock, what came back, and every error mapping."""
from __future__ import annotations

import json
from typing import Any

import pytest

import app as app_module
from devstack.prompt_tokens import count_prompt_tokens
from tests.conftest import MODEL, Api, ApiFactory
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}


def post(api: Api, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return api.http.post("/chat", headers=headers or JSON, body=raw)


def error_of(response: Any) -> dict:
    payload = json.loads(response.body)
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"message", "type", "code", "param"}
    return payload["error"]


def test_the_original_curl(api: Api, emulator: EmulatorControl) -> None:
    response = post(api, {"prompt": "Hello, how are you?"})
    assert response.status_code == 200
    body = json.loads(response.body)
    sent = emulator.requests()
    # Plain calls read Bedrock's stream too, so that a call cut at its
    # deadline knows the tokens it generated (completion.py).
    assert sent == [{"operation": "InvokeModelWithResponseStream", "modelId": MODEL, "body": {
        "prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                  "Hello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "max_gen_len": 512, "temperature": 0.5, "top_p": 0.9}, "region": "us-east-1"}]
    assert set(body) == {"id", "model", "text", "stop_reason", "usage"}
    assert body["model"] == MODEL and body["text"] and body["stop_reason"] == "stop"
    usage = body["usage"]
    assert usage["input_tokens"] == count_prompt_tokens(sent[0]["body"]["prompt"])
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert response.headers["x-request-id"] and body["id"].endswith(response.headers["x-request-id"])


def test_conversation_system_and_parameters_reach_bedrock(api: Api,
                                                          emulator: EmulatorControl) -> None:
    response = post(api, {"messages": [{"role": "user", "content": "a"},
                                       {"role": "assistant", "content": "b"},
                                       {"role": "user", "content": "c <|eot_id|>"}],
                          "system": "sys", "max_tokens": 9, "temperature": 0.1, "top_p": 0.3})
    assert response.status_code == 200
    assert emulator.requests()[0]["body"] == {
        "prompt": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nb<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nc < |eot_id| ><|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "max_gen_len": 9, "temperature": 0.1, "top_p": 0.3}
    assert json.loads(response.body)["stop_reason"] == "length"


def test_stop_sequences_cut_the_answer(api: Api) -> None:
    full = json.loads(post(api, {"prompt": "stop test"}).body)
    word = full["text"].split()[2]
    cut = json.loads(post(api, {"prompt": "stop test", "stop": ["zzz", word]}).body)
    assert cut["text"] == full["text"][:full["text"].index(word)]
    assert cut["stop_reason"] == "stop"
    assert cut["usage"] == full["usage"]  # billed as Bedrock reported


def test_stage_configuration_path(make_api: ApiFactory, emulator: EmulatorControl) -> None:
    # The lazy production path: settings from the stage's environment, the
    # client built on first use.
    api = make_api()
    app_module.set_runtime(None)
    assert post(api, {"prompt": "x"}).status_code == 200
    assert emulator.requests()[0]["modelId"] == MODEL


@pytest.mark.parametrize("fault,status,code", [
    ("ThrottlingException", 429, "upstream_throttled"),
    ("ModelNotReadyException", 429, "upstream_throttled"),
    ("ServiceQuotaExceededException", 429, "upstream_throttled"),
    ("ModelTimeoutException", 504, "upstream_timeout"),
    ("ServiceUnavailableException", 503, "upstream_unavailable"),
    ("InternalServerException", 502, "upstream_error"),
    ("ModelErrorException", 502, "upstream_error"),
    ("ValidationException", 400, "upstream_validation_error"),
    ("AccessDeniedException", 502, "upstream_misconfigured"),
    ("ResourceNotFoundException", 502, "upstream_misconfigured"),
])
def test_bedrock_errors_map_to_statuses(api: Api, emulator: EmulatorControl, fault: str,
                                        status: int, code: str) -> None:
    emulator.configure(fault_rate={fault: 1.0})
    response = post(api, {"prompt": "x"})
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    assert "arn:" not in response.body.decode() and "Exception" not in error["message"]
    assert response.headers["x-request-id"]
    if status == 429:
        assert response.headers["Retry-After"] == "2"
    retried = fault in ("ThrottlingException", "ModelNotReadyException",
                        "ServiceUnavailableException", "InternalServerException")
    assert emulator.stats()["invocations"] == (3 if retried else 1)


def test_a_single_throttle_is_absorbed_by_retries(api: Api, emulator: EmulatorControl) -> None:
    emulator.configure(fail_next=["ThrottlingException"])
    assert post(api, {"prompt": "x"}).status_code == 200
    assert emulator.stats()["invocations"] == 2


def test_read_timeout_is_504_and_not_retried(make_api: ApiFactory,
                                             emulator: EmulatorControl) -> None:
    api = make_api(bedrock_read_timeout_s=0.3)
    emulator.configure(latency_ms=1000)
    response = post(api, {"prompt": "x"})
    assert response.status_code == 504 and error_of(response)["code"] == "upstream_timeout"
    assert emulator.stats()["invocations"] == 1


def test_unreachable_bedrock_is_503(make_api: ApiFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import free_port
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", f"http://127.0.0.1:{free_port()}")
    api = make_api(bedrock_max_attempts=1)
    response = post(api, {"prompt": "x"})
    assert response.status_code == 503 and error_of(response)["code"] == "upstream_unavailable"


def test_context_window_overflow_is_400(make_api: ApiFactory) -> None:
    api = make_api(max_prompt_chars=10**6, max_body_bytes=2 * 10**6)
    response = post(api, {"prompt": "word " * 130_000})  # 130,002 tokens of a 128k window
    assert response.status_code == 400
    assert error_of(response)["code"] == "context_length_exceeded"


def test_size_limits_are_413(make_api: ApiFactory, emulator: EmulatorControl) -> None:
    api = make_api(max_body_bytes=5000, max_prompt_chars=100)
    big_body = post(api, {"prompt": "x" * 6000})
    assert big_body.status_code == 413 and error_of(big_body)["code"] == "request_too_large"
    long_prompt = post(api, {"messages": [{"role": "user", "content": "y" * 60},
                                          {"role": "assistant", "content": "y" * 60},
                                          {"role": "user", "content": "y"}]})
    assert long_prompt.status_code == 413
    assert emulator.requests() == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_wrong_content_type_is_415(api: Api, content_type: str) -> None:
    response = post(api, {"prompt": "x"}, headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_json_with_charset_is_accepted(api: Api) -> None:
    response = post(api, {"prompt": "x"}, headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200


def test_wrong_method_is_405_in_the_envelope(api: Api) -> None:
    response = api.http.get("/chat")
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "POST"


def test_unexpected_errors_are_a_bare_500(api: Api, emulator: EmulatorControl,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any) -> None:
        raise RuntimeError("secret internals arn:aws:iam::123456789012:role/x")
    monkeypatch.setattr(api.runtime.service, "complete", explode)
    response = post(api, {"prompt": "x"})
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error"
    assert response.headers["x-request-id"] in error["message"]
    assert "secret" not in response.body.decode() and "Traceback" not in response.body.decode()


MALFORMED: list[Any] = [
    "", "{", "}", "[]", "null", "true", "1", '"prompt"', "{'prompt': 'x'}", '{"prompt": "x",}',
    b"\xff\xfe\x00", b'{"prompt": "\xc3\x28"}', '{"prompt": NaN}', '{"prompt": "x", "temperature": NaN}',
    '{"prompt": "x", "max_tokens": Infinity}', "[" * 50_000 + "]" * 50_000,
    {}, {"prompt": None}, {"prompt": ""}, {"prompt": " "}, {"prompt": 1}, {"prompt": {"a": 1}},
    {"prompt": "x", "messages": [{"role": "user", "content": "y"}]}, {"messages": None},
    {"messages": {}}, {"messages": [None]}, {"messages": [[]]}, {"messages": [{}]},
    {"messages": [{"role": "user", "content": None}]}, {"messages": [{"role": "user", "content": 5}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
    {"messages": [{"role": "USER", "content": "x"}]}, {"messages": [{"role": None, "content": "x"}]},
    {"messages": [{"role": "tool", "content": "x"}]},
    {"messages": [{"role": "tool", "content": "x", "tool_call_id": "never-called"}]},
    {"prompt": "x", "tools": [{"name": "f", "parameters": {"type": "array"}}]},
    {"messages": [{"role": "user", "content": "x", "extra": 1}]},
    {"prompt": "x", "max_tokens": -1}, {"prompt": "x", "max_tokens": 1e3},
    {"prompt": "x", "max_tokens": 10**30}, {"prompt": "x", "max_tokens": [5]},
    {"prompt": "x", "temperature": "hot"}, {"prompt": "x", "temperature": 5},
    {"prompt": "x", "temperature": 1e400}, {"prompt": "x", "top_p": -1}, {"prompt": "x", "top_p": True},
    {"prompt": "x", "stop": 5}, {"prompt": "x", "stop": {"a": 1}}, {"prompt": "x", "stop": [None]},
    {"prompt": "x", "stop": ["a"] * 5}, {"prompt": "x", "model": ""}, {"prompt": "x", "model": 1},
    {"prompt": "x", "model": ["m"]}, {"prompt": "x", "model": "x" * 10_000},
    {"prompt": "x", "system": 5}, {"prompt": "x", "system": ["s"]}, {"prompt": "x", "n": 2},
    {"prompt": "x", "stream": "yes"}, {"prompt": "\ud800"}, {"prompt": "x", "stop": ["\udfff"]},
    {"prompt": "x", "": 1}, {"prompt": "x", "__proto__": {}},
]


@pytest.mark.parametrize("body", MALFORMED, ids=[f"bad{i}" for i in range(len(MALFORMED))])
def test_malformed_bodies_are_4xx_with_the_envelope(api: Api, emulator: EmulatorControl,
                                                    body: Any) -> None:
    response = post(api, body)
    assert 400 <= response.status_code < 500, response.body
    error = error_of(response)
    assert error["message"] and error["code"]
    assert emulator.requests() == []  # nothing reached Bedrock


def test_corpus_is_large_enough() -> None:
    assert len(MALFORMED) >= 40
