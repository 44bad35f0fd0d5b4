"""POST /v1/completions (OpenAI's legacy completions) through the app: the
prompt as one user turn, plain, buffered and really streamed, and what cannot
be honoured refused with the field named."""
from __future__ import annotations

import json
from typing import Any

import pytest

import app as app_module
from chalicelib.tenancy.keys import KeyStore
from tests.conftest import MODEL, Api, ApiFactory
from tests.functional.test_streaming import (FakeContext, data_events, day_usage, key_context,
                                             proxy_event)
from tests.openapi_check import sse_events
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
# What LlamaIndex's OpenAILike (is_chat_model=False) sends for llm.chat().
TRANSCRIPT = "system: Be brief.\nuser: Hello\nassistant: "
USER_TURN = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
             "system: Be brief.\nuser: Hello\nassistant:<|eot_id|>"
             "<|start_header_id|>assistant<|end_header_id|>\n\n")


def post(api: Api, body: Any, path: str = "/v1/completions") -> Any:
    return api.http.post(path, headers=JSON, body=json.dumps({"model": MODEL, **body}))


def test_the_prompt_is_a_user_turn_and_the_answer_its_reply(api: Api,
                                                            emulator: EmulatorControl) -> None:
    response = post(api, {"prompt": [TRANSCRIPT], "max_tokens": 256, "temperature": 0.7,
                          "top_p": 1, "n": 1, "frequency_penalty": 0, "presence_penalty": 0,
                          "logprobs": None, "seed": None})
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["object"] == "text_completion"
    assert body["id"] == f"cmpl-{response.headers['x-request-id']}"
    (choice,) = body["choices"]
    assert choice["text"] and choice["finish_reason"] in ("stop", "length")
    (sent,) = emulator.requests()
    assert sent["body"]["prompt"] == USER_TURN
    assert (sent["body"]["max_gen_len"], sent["body"]["temperature"]) == (256, 0.35)
    chat = json.loads(post(api, {"messages": [{"role": "user", "content": TRANSCRIPT}],
                                 "max_tokens": 256, "temperature": 0.7, "top_p": 1},
                           "/v1/chat/completions").body)
    assert choice["text"] == chat["choices"][0]["message"]["content"]  # the same one path
    assert body["usage"] == chat["usage"]


def test_the_buffered_stream_joins_to_the_plain_text(api: Api) -> None:
    plain = json.loads(post(api, {"prompt": "Hello", "temperature": 0}).body)
    response = post(api, {"prompt": "Hello", "temperature": 0, "stream": True,
                          "stream_options": {"include_usage": True}})
    assert response.headers["Content-Type"] == "text/event-stream"
    events = sse_events(response.body)
    assert "".join(e["choices"][0]["text"] for e in events if e["choices"]) == \
        plain["choices"][0]["text"]
    assert events[-2]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert events[-1]["usage"] == plain["usage"] and events[-1]["choices"] == []


def test_the_real_stream_entry_streams_and_bills(make_api: ApiFactory, key_store: KeyStore,
                                                 emulator: EmulatorControl, dynamodb: Any) -> None:
    make_api()
    authorizer, key_id = key_context(key_store, tokens_per_day=100_000)
    response = app_module.serve(proxy_event("/v1/completions", {
        "model": MODEL, "prompt": "Tell me about streams", "stream": True,
        "stream_options": {"include_usage": True}}, authorizer), FakeContext(30))
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    pieces = list(response.chunks())
    events = data_events(pieces)
    assert len([e for e in events if e["choices"] and e["choices"][0]["text"]]) > 3
    assert all(e["object"] == "text_completion" and e["id"] == "cmpl-req-1" for e in events)
    usage = events[-1]["usage"]
    assert day_usage(dynamodb, key_id) == {"requests": 1, "tokens": usage["total_tokens"]}
    assert b"".join(pieces).endswith(b"data: [DONE]\n\n")
    bad = app_module.serve(proxy_event("/v1/completions", {
        "model": MODEL, "prompt": "x", "stream": True, "echo": True}, authorizer), FakeContext(30))
    assert bad.status == 400
    assert json.loads(b"".join(bad.chunks()))["error"]["param"] == "echo"


@pytest.mark.parametrize("body,param", [
    ({"prompt": "x", "suffix": "}"}, "suffix"),
    ({"prompt": [1, 2]}, "prompt"),
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": "x", "logprobs": 2}, "logprobs"),
    ({"prompt": "x", "best_of": 2}, "best_of"),
])
def test_what_cannot_be_honoured_is_a_400_naming_it(api: Api, emulator: EmulatorControl,
                                                    body: dict, param: str) -> None:
    response = post(api, body)
    assert response.status_code == 400
    error = json.loads(response.body)["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", param)
    assert not emulator.requests()
