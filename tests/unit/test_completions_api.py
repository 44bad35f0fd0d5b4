"""OpenAI's legacy completions translation (pure): requests in, objects out."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.chat import Completion, Message, Usage
from chalicelib.config import Settings
from chalicelib.errors import (ApiError, InvalidRequestError, ModelNotFoundError,
                               UnsupportedParameterError)
from chalicelib.wire.completions import parse_completions_request, render_text_completion
from chalicelib.wire.openai import StreamOptions

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
EMBEDDER = "amazon.titan-embed-text-v2:0"
SETTINGS = Settings(allowed_models=(MODEL, EMBEDDER))


def parse(**fields: Any) -> Any:
    return parse_completions_request({"model": MODEL, "prompt": "hi", **fields}, SETTINGS)


def test_the_prompt_is_one_user_turn_with_the_chat_defaults() -> None:
    request, options = parse()
    assert request.messages == (Message("user", "hi"),)
    assert (request.max_tokens, request.temperature, request.top_p, request.stop) == (512, 0.5, 0.9, ())
    assert not request.tools and request.response_format.type == "text"
    assert options == StreamOptions(stream=False, include_usage=False)


@pytest.mark.parametrize("fields,attr,value", [
    ({"prompt": ["a transcript\nassistant: "]}, "messages", (Message("user", "a transcript\nassistant: "),)),
    ({"temperature": 0.7}, "temperature", 0.35),
    ({"top_p": 0.5}, "top_p", 0.5),
    ({"max_tokens": 10}, "max_tokens", 10),
    ({"stop": ["\n", "user:"]}, "stop", ("\n", "user:")),
    # what LangChain's OpenAI class sends by default, and other neutral values
    ({"frequency_penalty": 0, "presence_penalty": 0, "logprobs": None, "n": 1, "seed": None,
      "best_of": 1, "echo": False, "suffix": None, "logit_bias": {}, "user": "u"}, "max_tokens", 512),
])
def test_honoured_and_neutral_fields(fields: dict, attr: str, value: Any) -> None:
    assert getattr(parse(**fields)[0], attr) == value


def test_stream_options() -> None:
    assert parse(stream=True, stream_options={"include_usage": True})[1] == StreamOptions(True, True)


@pytest.mark.parametrize("fields,error,param", [
    ({"model": "gpt-3.5-turbo-instruct"}, ModelNotFoundError, "model"),
    ({"model": None}, InvalidRequestError, "model"),
    ({"model": EMBEDDER}, InvalidRequestError, "model"),
    ({"prompt": None}, InvalidRequestError, "prompt"),
    ({"prompt": ""}, InvalidRequestError, "prompt"),
    ({"prompt": 3}, InvalidRequestError, "prompt"),
    ({"prompt": []}, InvalidRequestError, "prompt"),
    ({"prompt": [1, 2, 3]}, UnsupportedParameterError, "prompt"),
    ({"prompt": ["a", "b"]}, UnsupportedParameterError, "prompt"),
    ({"echo": True}, UnsupportedParameterError, "echo"),
    ({"suffix": "}"}, UnsupportedParameterError, "suffix"),
    ({"best_of": 3}, UnsupportedParameterError, "best_of"),
    ({"n": 2}, UnsupportedParameterError, "n"),
    ({"logprobs": 0}, UnsupportedParameterError, "logprobs"),
    ({"presence_penalty": 1}, UnsupportedParameterError, "presence_penalty"),
    ({"max_tokens": 0}, InvalidRequestError, "max_tokens"),
    ({"temperature": 3}, InvalidRequestError, "temperature"),
    ({"stream_options": {"include_usage": True}}, InvalidRequestError, "stream_options"),
    ({"messages": [{"role": "user", "content": "x"}]}, InvalidRequestError, "messages"),
    ({"tools": []}, InvalidRequestError, "tools"),
])
def test_refusals_name_the_field(fields: dict, error: type[ApiError], param: str) -> None:
    with pytest.raises(error) as caught:
        parse(**fields)
    assert type(caught.value) is error and caught.value.param == param


def test_render_text_completion() -> None:
    completion = Completion(MODEL, "Hello.", "length", Usage(3, 4))
    assert render_text_completion(completion, "cmpl-1", 7) == {
        "id": "cmpl-1", "object": "text_completion", "created": 7, "model": MODEL,
        "system_fingerprint": None,
        "choices": [{"text": "Hello.", "index": 0, "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                  "prompt_tokens_details": {"cached_tokens": 0}, "cost_usd": None}}
