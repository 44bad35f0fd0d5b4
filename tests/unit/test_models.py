"""The model registry and the Llama adapter's pure translation."""
from __future__ import annotations

import pytest

from chalicelib.chat import ChatRequest, Message, Usage
from chalicelib.errors import ModelNotFoundError, UpstreamError
from chalicelib.models.registry import (REGISTRY, RawChunk, RawCompletion, adapter_for, build_llama_body,
                                        get_model, parse_llama_body, parse_llama_chunk)


@pytest.mark.parametrize("model_id", [
    "meta.llama3-1-8b-instruct-v1:0", "us.meta.llama3-1-8b-instruct-v1:0",
    "meta.llama3-1-70b-instruct-v1:0", "us.meta.llama3-1-405b-instruct-v1:0",
    "meta.llama3-2-1b-instruct-v1:0", "us.meta.llama3-2-3b-instruct-v1:0",
    "us.meta.llama3-2-11b-instruct-v1:0", "us.meta.llama3-2-90b-instruct-v1:0",
    "us.meta.llama3-3-70b-instruct-v1:0",
])
def test_llama_3x_ids_map_to_the_llama_adapter(model_id: str) -> None:
    spec = get_model(model_id)
    assert spec.family == "llama3"
    assert spec.max_output_tokens == 2048
    assert adapter_for(model_id).build_body is build_llama_body


@pytest.mark.parametrize("model_id", ["", "gpt-4", "anthropic.claude-v2", "us.meta.llama2-13b"])
def test_unknown_ids_raise_a_typed_error(model_id: str) -> None:
    with pytest.raises(ModelNotFoundError):
        get_model(model_id)


def test_every_llama_3x_base_id_has_its_us_profile() -> None:
    llama = {m for m, spec in REGISTRY.items() if spec.family == "llama3"}
    bases = {m for m in llama if not m.startswith("us.")}
    assert {f"us.{m}" for m in bases} == {m for m in llama if m.startswith("us.")}


def test_build_body() -> None:
    request = ChatRequest(messages=(Message("user", "Hi"),), model="m", max_tokens=7,
                          temperature=0.2, top_p=0.8)
    assert build_llama_body(request) == {
        "prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "max_gen_len": 7, "temperature": 0.2, "top_p": 0.8}


@pytest.mark.parametrize("payload,expected", [
    ({"generation": "\n\nHello", "prompt_token_count": 3, "generation_token_count": 2,
      "stop_reason": "stop"}, RawCompletion("Hello", "stop", Usage(3, 2))),
    ({"generation": "cut", "prompt_token_count": 3, "generation_token_count": 9,
      "stop_reason": "length"}, RawCompletion("cut", "length", Usage(3, 9))),
    ({"generation": "", "prompt_token_count": 1, "generation_token_count": 0,
      "stop_reason": "content_filtered"}, RawCompletion("", "stop", Usage(1, 0))),
])
def test_parse_body(payload: dict, expected: RawCompletion) -> None:
    assert parse_llama_body(payload) == expected


@pytest.mark.parametrize("payload", [
    None, [], {}, {"generation": 3}, {"generation": "x", "prompt_token_count": -1,
                                      "generation_token_count": 1},
    {"generation": "x", "prompt_token_count": "3", "generation_token_count": 1},
])
def test_malformed_bodies_are_upstream_errors(payload: object) -> None:
    with pytest.raises(UpstreamError):
        parse_llama_body(payload)


@pytest.mark.parametrize("payload,expected", [
    ({"generation": "Hi", "prompt_token_count": 5, "generation_token_count": 1,
      "stop_reason": None}, RawChunk("Hi", None, None, 5, 1)),
    ({"generation": " there", "generation_token_count": 2, "stop_reason": "stop",
      "amazon-bedrock-invocationMetrics": {"inputTokenCount": 5, "outputTokenCount": 2,
                                           "invocationLatency": 9, "firstByteLatency": 1}},
     RawChunk(" there", "stop", Usage(5, 2), None, 2)),
    ({"generation": None, "stop_reason": "length"}, RawChunk("", "length", None)),
])
def test_parse_chunk(payload: dict, expected: RawChunk) -> None:
    assert parse_llama_chunk(payload) == expected


def test_every_served_model_has_a_price_with_its_source() -> None:
    from chalicelib.models.catalog import CHAT_MODELS, EMBEDDING_MODELS, PROFILE_REGIONS
    from chalicelib.models.pricing import DEFAULT_PRICES, base_model
    for row in (*CHAT_MODELS, *EMBEDDING_MODELS):
        assert row.price_source and "2026" in row.price_source
        assert set(row.profiles) <= set(PROFILE_REGIONS)
    for model_id, spec in REGISTRY.items():
        if spec.api == "converse" or spec.kind == "embedding":
            assert base_model(model_id) == spec.base_id and spec.base_id in DEFAULT_PRICES


@pytest.mark.parametrize("model_id, api, kind", [
    ("us.meta.llama3-1-8b-instruct-v1:0", "invoke", "chat"),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "converse", "chat"),
    ("eu.amazon.nova-micro-v1:0", "converse", "chat"),
    ("us.meta.llama4-maverick-17b-instruct-v1:0", "converse", "chat"),
    ("cohere.command-r-plus-v1:0", "converse", "chat"),
    ("cohere.embed-multilingual-v3", "invoke", "embedding"),
])
def test_families_and_their_apis(model_id: str, api: str, kind: str) -> None:
    spec = get_model(model_id)
    assert (spec.api, spec.kind) == (api, kind)


def test_profile_only_models_have_no_base_id() -> None:
    # Bedrock serves these only through an inference profile (on-demand base ids fail).
    assert "anthropic.claude-sonnet-4-5-20250929-v1:0" not in REGISTRY
    assert "us.anthropic.claude-sonnet-4-5-20250929-v1:0" in REGISTRY
