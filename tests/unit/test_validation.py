"""Request validation for the native /chat body: what passes, and what each
mistake is called."""
from __future__ import annotations

import json

import pytest

from chalicelib.chat import ChatRequest, Message
from chalicelib.config import Settings
from chalicelib.errors import (ApiError, InvalidRequestError, ModelNotFoundError,
                               RequestTooLargeError)
from chalicelib.wire.native import parse_chat_request
from chalicelib.wire.validation import decode_json_object

SETTINGS = Settings(allowed_models=("us.meta.llama3-1-8b-instruct-v1:0",
                                    "us.meta.llama3-1-70b-instruct-v1:0"),
                    max_prompt_chars=1000)
DEFAULT = "us.meta.llama3-1-8b-instruct-v1:0"


def test_the_original_curl_body() -> None:
    request = parse_chat_request({"prompt": "Hello, how are you?"}, SETTINGS)
    assert request == ChatRequest(messages=(Message("user", "Hello, how are you?"),), model=DEFAULT,
                                  max_tokens=512, temperature=0.5, top_p=0.9, stop=())


VALID = [
    ({"prompt": "hi", "system": "be brief"},
     {"messages": (Message("system", "be brief"), Message("user", "hi"))}),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]},
     {"messages": (Message("system", "s"), Message("user", "u"))}),
    ({"messages": [{"role": "user", "content": "u"}], "system": "s"},
     {"messages": (Message("system", "s"), Message("user", "u"))}),
    ({"prompt": "x", "model": "us.meta.llama3-1-70b-instruct-v1:0"},
     {"model": "us.meta.llama3-1-70b-instruct-v1:0"}),
    ({"prompt": "x", "max_tokens": 1}, {"max_tokens": 1}),
    ({"prompt": "x", "max_tokens": 2048}, {"max_tokens": 2048}),
    ({"prompt": "x", "temperature": 0}, {"temperature": 0.0}),
    ({"prompt": "x", "temperature": 1, "top_p": 0.0}, {"temperature": 1.0, "top_p": 0.0}),
    ({"prompt": "x", "stop": "END"}, {"stop": ("END",)}),
    ({"prompt": "x", "stop": ["a", "b", "c", "\n"]}, {"stop": ("a", "b", "c", "\n")}),
    ({"prompt": "x", "temperature": None, "stop": None}, {"temperature": 0.5, "stop": ()}),
]


@pytest.mark.parametrize("body,expected", VALID)
def test_valid_bodies(body: dict, expected: dict) -> None:
    request = parse_chat_request(body, SETTINGS)
    for field, value in expected.items():
        assert getattr(request, field) == value


INVALID = [
    ({}, InvalidRequestError, "prompt"),
    ({"prompt": "x", "messages": []}, InvalidRequestError, "messages"),
    ({"prompt": ""}, InvalidRequestError, "prompt"),
    ({"prompt": "   \n"}, InvalidRequestError, "prompt"),
    ({"prompt": 5}, InvalidRequestError, "prompt"),
    ({"prompt": ["x"]}, InvalidRequestError, "prompt"),
    ({"prompt": "\ud800"}, InvalidRequestError, "prompt"),
    ({"messages": []}, InvalidRequestError, "messages"),
    ({"messages": "hi"}, InvalidRequestError, "messages"),
    ({"messages": ["hi"]}, InvalidRequestError, "messages[0]"),
    ({"messages": [{"role": "user"}]}, InvalidRequestError, "messages[0].content"),
    ({"messages": [{"role": "robot", "content": "x"}]}, InvalidRequestError, "messages[0].role"),
    ({"messages": [{"role": "ipython", "content": "x"}]}, InvalidRequestError, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x", "nick": "n"}]}, InvalidRequestError,
     "messages[0].nick"),
    ({"messages": [{"role": "tool", "content": "r", "tool_call_id": "c1"}]}, InvalidRequestError,
     "messages[0].tool_call_id"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "name": "f", "arguments": {}}]}]}, InvalidRequestError,
     "messages[0].tool_calls"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
      "system": "again"}, InvalidRequestError, "system"),
    ({"prompt": "x", "system": ""}, InvalidRequestError, "system"),
    ({"prompt": "x", "model": "gpt-4"}, ModelNotFoundError, "model"),
    ({"prompt": "x", "model": "meta.llama3-1-8b-instruct-v1:0"}, ModelNotFoundError, "model"),
    ({"prompt": "x", "model": 3}, InvalidRequestError, "model"),
    ({"prompt": "x", "max_tokens": 0}, InvalidRequestError, "max_tokens"),
    ({"prompt": "x", "max_tokens": 2049}, InvalidRequestError, "max_tokens"),
    ({"prompt": "x", "max_tokens": 10.5}, InvalidRequestError, "max_tokens"),
    ({"prompt": "x", "max_tokens": "10"}, InvalidRequestError, "max_tokens"),
    ({"prompt": "x", "max_tokens": True}, InvalidRequestError, "max_tokens"),
    ({"prompt": "x", "temperature": 1.01}, InvalidRequestError, "temperature"),
    ({"prompt": "x", "temperature": -0.1}, InvalidRequestError, "temperature"),
    ({"prompt": "x", "temperature": float("inf")}, InvalidRequestError, "temperature"),
    ({"prompt": "x", "top_p": 2}, InvalidRequestError, "top_p"),
    ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, InvalidRequestError, "stop"),
    ({"prompt": "x", "stop": [""]}, InvalidRequestError, "stop"),
    ({"prompt": "x", "stop": [1]}, InvalidRequestError, "stop"),
    ({"prompt": "x", "stream": True}, InvalidRequestError, "stream"),
    ({"prompt": "x" * 1001}, RequestTooLargeError, None),
]


@pytest.mark.parametrize("body,error,param", INVALID)
def test_invalid_bodies_name_the_field(body: dict, error: type[ApiError], param: str | None) -> None:
    with pytest.raises(error) as caught:
        parse_chat_request(body, SETTINGS)
    assert type(caught.value) is error
    if param is not None:
        assert caught.value.param == param
    assert caught.value.message


@pytest.mark.parametrize("raw,error", [
    (b"", InvalidRequestError),
    (None, InvalidRequestError),
    (b"{", InvalidRequestError),
    (b"\xff\xfe", InvalidRequestError),
    (b"[1, 2]", InvalidRequestError),
    (b'"text"', InvalidRequestError),
    (b"null", InvalidRequestError),
    (b'{"temperature": NaN}', InvalidRequestError),
    (b'{"temperature": Infinity}', InvalidRequestError),
    (b'{"prompt": "' + b"x" * 2000 + b'"}', RequestTooLargeError),
])
def test_decoding_rejects_non_objects(raw: bytes | None, error: type[ApiError]) -> None:
    with pytest.raises(error):
        decode_json_object(raw, max_bytes=1000)


def test_deep_nesting_is_a_400_not_a_crash() -> None:
    with pytest.raises(InvalidRequestError):
        decode_json_object(b"[" * 100_000 + b"]" * 100_000, max_bytes=10**6)


def test_decoding_accepts_an_object() -> None:
    assert decode_json_object(json.dumps({"prompt": "é"}).encode(), 1000) == {"prompt": "é"}
