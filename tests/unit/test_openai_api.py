"""OpenAI chat.completions translation (pure): requests in, objects out."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.chat import Completion, Message, Usage
from chalicelib.config import Settings
from chalicelib.errors import (ApiError, InvalidRequestError, ModelNotFoundError,
                               UnsupportedParameterError)
from chalicelib.models.registry import REGISTRY
from chalicelib.wire.response_object import usage_field as response_usage
from chalicelib.wire.openai import (StreamOptions, parse_openai_request, render_completion,
                                    render_models)

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
SETTINGS = Settings()
USER = [{"role": "user", "content": "hi"}]


def parse(**fields: Any) -> Any:
    return parse_openai_request({"model": MODEL, "messages": USER, **fields}, SETTINGS)


def test_defaults() -> None:
    request, options = parse()
    assert request.messages == (Message("user", "hi"),)
    assert (request.max_tokens, request.temperature, request.top_p, request.stop) == (512, 0.5, 0.9, ())
    assert options == StreamOptions(stream=False, include_usage=False)


@pytest.mark.parametrize("fields,attr,value", [
    ({"temperature": 0}, "temperature", 0.0),
    ({"temperature": 2}, "temperature", 1.0),
    ({"temperature": 0.7}, "temperature", 0.35),
    ({"top_p": 0.5}, "top_p", 0.5),
    ({"max_tokens": 10}, "max_tokens", 10),
    ({"max_completion_tokens": 20}, "max_tokens", 20),
    ({"max_tokens": 10, "max_completion_tokens": 20}, "max_tokens", 20),
    ({"stop": "\n"}, "stop", ("\n",)),
    ({"stop": ["a", "b"]}, "stop", ("a", "b")),
    ({"n": 1, "logprobs": False, "tools": [], "response_format": {"type": "text"},
      "frequency_penalty": 0, "presence_penalty": 0.0, "user": "u1", "seed": 42,
      "tool_choice": "none", "parallel_tool_calls": True, "store": False,
      "reasoning_effort": "none", "verbosity": "medium", "logit_bias": {}, "service_tier": "flex",
      "metadata": {"a": "b"}, "modalities": ["text"]}, "max_tokens", 512),
])
def test_honoured_and_neutral_fields(fields: dict, attr: str, value: Any) -> None:
    assert getattr(parse(**fields)[0], attr) == value


@pytest.mark.parametrize("messages,expected", [
    ([{"role": "developer", "content": "d"}, {"role": "user", "content": "u"}],
     (Message("system", "d"), Message("user", "u"))),
    ([{"role": "system", "content": "a"}, {"role": "developer", "content": "b"},
      {"role": "user", "content": "u"}], (Message("system", "a\n\nb"), Message("user", "u"))),
    ([{"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}],
     (Message("user", "one\ntwo"),)),
    ([{"role": "user", "content": "x", "name": "alice"}], (Message("user", "x", name="alice"),)),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "refusal": None},
      {"role": "user", "content": "q2"}],
     (Message("user", "q"), Message("assistant", "a"), Message("user", "q2"))),
    # what the openai SDK's message.model_dump() sends back (annotations, audio,
    # function_call all null), and OpenAI's own answers (annotations: [])
    ([{"role": "user", "content": "q"},
      {"role": "assistant", "content": "a", "refusal": None, "annotations": None, "audio": None,
       "function_call": None, "tool_calls": None},
      {"role": "assistant", "content": "b", "annotations": []}, {"role": "user", "content": "q2"}],
     (Message("user", "q"), Message("assistant", "a"), Message("assistant", "b"),
      Message("user", "q2"))),
])
def test_messages(messages: list, expected: tuple) -> None:
    assert parse(messages=messages)[0].messages == expected


def test_stream_options() -> None:
    assert parse(stream=True)[1] == StreamOptions(True, False)
    assert parse(stream=True, stream_options={"include_usage": True})[1] == StreamOptions(True, True)


@pytest.mark.parametrize("fields,error,param", [
    ({"model": "gpt-4o"}, ModelNotFoundError, "model"),
    ({"model": None}, InvalidRequestError, "model"),
    ({"messages": []}, InvalidRequestError, "messages"),
    ({"messages": "hi"}, InvalidRequestError, "messages"),
    ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, InvalidRequestError,
     "messages[0].tool_call_id"),
    ({"messages": [{"role": "tool", "content": "x"}]}, InvalidRequestError,
     "messages[0].tool_call_id"),
    ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, UnsupportedParameterError,
     "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     UnsupportedParameterError, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": []}]}, InvalidRequestError, "messages[0].content"),
    ({"messages": [{"role": "user", "content": None}]}, InvalidRequestError, "messages[0].content"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                   {"role": "user", "content": "x"}]}, InvalidRequestError,
     "messages[0].tool_calls[0]"),
    ({"messages": [{"role": "assistant", "content": None}]}, InvalidRequestError,
     "messages[0].content"),
    ({"tools": [{"type": "web_search"}]}, UnsupportedParameterError, "tools[0].type"),
    ({"functions": [{"name": "f"}]}, UnsupportedParameterError, "functions"),
    ({"function_call": {"name": "f"}}, UnsupportedParameterError, "function_call"),
    ({"n": 2}, UnsupportedParameterError, "n"),
    ({"logprobs": True}, UnsupportedParameterError, "logprobs"),
    ({"top_logprobs": 3}, UnsupportedParameterError, "top_logprobs"),
    ({"response_format": {"type": "json_schema"}}, InvalidRequestError,
     "response_format.json_schema"),
    ({"frequency_penalty": 0.5}, UnsupportedParameterError, "frequency_penalty"),
    ({"logit_bias": {"50256": -100}}, UnsupportedParameterError, "logit_bias"),
    ({"reasoning_effort": "low"}, UnsupportedParameterError, "reasoning_effort"),
    ({"verbosity": "low"}, UnsupportedParameterError, "verbosity"),
    ({"temperature": 2.5}, InvalidRequestError, "temperature"),
    ({"top_p": 1.5}, InvalidRequestError, "top_p"),
    ({"max_tokens": 0}, InvalidRequestError, "max_tokens"),
    ({"max_completion_tokens": 4096}, InvalidRequestError, "max_completion_tokens"),
    ({"stop": ["a"] * 5}, InvalidRequestError, "stop"),
    ({"stream": "yes"}, InvalidRequestError, "stream"),
    ({"stream_options": {"include_usage": True}}, InvalidRequestError, "stream_options"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, InvalidRequestError,
     "stream_options.include_usage"),
    ({"frobnicate": 1}, InvalidRequestError, "frobnicate"),
])
def test_refusals_name_the_field(fields: dict, error: type[ApiError], param: str) -> None:
    with pytest.raises(error) as caught:
        parse(**fields)
    assert type(caught.value) is error and caught.value.param == param


def test_model_is_required() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_openai_request({"messages": USER}, SETTINGS)
    assert caught.value.param == "model"


COMPLETION = Completion(model=MODEL, text="Hello there", stop_reason="length", usage=Usage(5, 3))


def test_render_completion() -> None:
    assert render_completion(COMPLETION, "chatcmpl-1", 1700000000) == {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": MODEL,
        "system_fingerprint": None,
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "length",
                     "message": {"role": "assistant", "content": "Hello there", "refusal": None}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
                  "prompt_tokens_details": {"cached_tokens": 0}, "cost_usd": None}}


def test_render_models() -> None:
    listed = render_models(Settings(allowed_models=(MODEL, "us.meta.llama3-3-70b-instruct-v1:0")))
    assert [m["id"] for m in listed["data"]] == [MODEL, "us.meta.llama3-3-70b-instruct-v1:0"]
    assert all(m["object"] == "model" and m["owned_by"] == "meta" and m["created"] > 0
               and m["kind"] == "chat" for m in listed["data"])


def test_render_models_says_which_are_embedding_models() -> None:
    embedder = next(spec.id for spec in REGISTRY.values() if spec.kind == "embedding")
    listed = render_models(Settings(allowed_models=(MODEL, embedder)))
    assert {m["id"]: m["kind"] for m in listed["data"]} == {MODEL: "chat", embedder: "embedding"}


# Python's True == 1 and False == 0: a boolean must never pass for a neutral
# number (nor a number for a neutral boolean), and the fields accepted and
# ignored must still have OpenAI's types.
@pytest.mark.parametrize("field,value", [
    ("n", True), ("n", "1"), ("top_logprobs", False), ("frequency_penalty", False),
    ("presence_penalty", False), ("logprobs", 0), ("logprobs", "false"),
    ("seed", "42"), ("seed", True), ("seed", 4.2), ("user", 5), ("user", ["u"]),
    ("metadata", [1]), ("metadata", {"a": 1}), ("metadata", "m"), ("store", "yes"), ("store", 0),
    ("service_tier", 5), ("prompt_cache_key", {}), ("safety_identifier", 1),
])
def test_a_value_of_the_wrong_type_is_refused(field: str, value: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse(**{field: value})
    assert caught.value.param == field


@pytest.mark.parametrize("field,value", [
    ("n", 1), ("n", 1.0), ("n", None), ("top_logprobs", 0), ("frequency_penalty", 0.0),
    ("presence_penalty", -0.0), ("logprobs", False), ("seed", -3), ("seed", None),
    ("user", "u"), ("metadata", {"a": "b"}), ("metadata", {}), ("store", True),
    ("service_tier", "auto"), ("prompt_cache_key", "k"), ("safety_identifier", "s"),
])
def test_a_neutral_or_ignored_value_of_the_right_type_is_accepted(field: str, value: Any) -> None:
    assert parse(**{field: value})[0].max_tokens == 512


# Bedrock reports the cached prefix besides the uncached input; OpenAI's
# prompt_tokens / input_tokens count the whole prompt and name the cached part.
@pytest.mark.parametrize("usage,cached,prompt,cached_tokens,total", [
    (Usage(5, 3), False, 5, 0, 8),
    (Usage(5, 3, cache_read_tokens=4096), False, 4101, 4096, 4104),
    (Usage(5, 3, cache_write_tokens=4096), False, 4101, 0, 4104),
    (Usage(5, 3, cache_read_tokens=100, cache_write_tokens=200), False, 305, 100, 308),
    (Usage(5, 3), True, 5, 5, 8),  # a response-cache hit: nothing processed afresh
])
def test_usage_counts_the_cached_prefix_in_the_prompt(usage: Usage, cached: bool, prompt: int,
                                                      cached_tokens: int, total: int) -> None:
    completion = Completion(model=MODEL, text="hi", stop_reason="stop", usage=usage,
                            cached=cached)
    chat = render_completion(completion, "chatcmpl-1", 1)["usage"]
    assert (chat["prompt_tokens"], chat["prompt_tokens_details"], chat["total_tokens"]) == (
        prompt, {"cached_tokens": cached_tokens}, total)
    assert chat["completion_tokens"] == 3
    response = response_usage(completion)
    assert (response["input_tokens"], response["input_tokens_details"],
            response["total_tokens"]) == (prompt, {"cached_tokens": cached_tokens}, total)
