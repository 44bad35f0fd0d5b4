"""The emulator's Converse for every family and its embedding models, through
unmodified boto3: answers, token-count headers, and Bedrock's errors."""
from __future__ import annotations

import json
import math
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.models.registry import REGISTRY

CHAT = sorted(m for m, s in REGISTRY.items() if s.api == "converse")
USER = [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]
TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}]}


@pytest.mark.parametrize("model", CHAT)
def test_every_converse_model_answers(runtime: Any, model: str) -> None:
    answer = runtime.converse(modelId=model, messages=USER, inferenceConfig={"maxTokens": 300})
    assert answer["output"]["message"]["content"][0]["text"]
    assert answer["usage"]["inputTokens"] > 0


@pytest.mark.parametrize("model", [m for m in CHAT if REGISTRY[m].tools])
def test_tools_get_a_tool_use_block(runtime: Any, model: str) -> None:
    answer = runtime.converse(modelId=model, messages=USER, toolConfig=TOOLS)
    block = answer["output"]["message"]["content"][-1]["toolUse"]
    assert answer["stopReason"] == "tool_use" and block["name"] == "get_weather"
    assert isinstance(block["input"]["city"], str)


def test_tool_definitions_are_counted_and_cached_first(runtime: Any) -> None:
    """As Bedrock counts: the tools are input tokens, and they open every
    cached prefix (tools, system, messages), so a cache point in the tools
    caches them and one after the system caches both."""
    claude = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    many = {"tools": [{"toolSpec": {"name": f"tool_{n}", "description": "Looks a thing up. " * 40,
                                    "inputSchema": TOOLS["tools"][0]["toolSpec"]["inputSchema"]}}
                      for n in range(40)]}
    bare = runtime.converse(modelId=claude, messages=USER)["usage"]["inputTokens"]
    tools = runtime.converse(modelId=claude, messages=USER, toolConfig=many)["usage"]
    assert tools["inputTokens"] > bare + 4_096
    system = [{"text": "You are terse."}, {"cachePoint": {"type": "default"}}]
    marked = {"tools": [*many["tools"], {"cachePoint": {"type": "default"}}]}
    first = runtime.converse(modelId=claude, messages=USER, toolConfig=marked,
                             system=system)["usage"]
    again = runtime.converse(modelId=claude, messages=USER, toolConfig=marked,
                             system=system)["usage"]
    assert first["cacheWriteInputTokens"] > 4_096 and first["cacheReadInputTokens"] == 0
    assert again["cacheReadInputTokens"] == first["cacheWriteInputTokens"]
    assert again["inputTokens"] == first["inputTokens"] < 100  # the user turn, uncached
    unmarked = runtime.converse(modelId=claude, messages=USER, toolConfig=many,
                                system=system[:1])["usage"]["inputTokens"]
    assert first["inputTokens"] + first["cacheWriteInputTokens"] == unmarked


@pytest.mark.parametrize("call, message", [
    (dict(modelId="anthropic.claude-v9", messages=USER), "model identifier is invalid"),
    (dict(modelId="amazon.nova-lite-v1:0", messages=USER * 2), "alternate"),
    (dict(modelId="us.deepseek.r1-v1:0", messages=USER, toolConfig=TOOLS), "tool use"),
    (dict(modelId="mistral.mistral-large-2407-v1:0", messages=USER,
          toolConfig={**TOOLS, "toolChoice": {"any": {}}}), "toolChoice"),
    (dict(modelId="amazon.titan-embed-text-v2:0", messages=USER), "doesn't support the model"),
    (dict(modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0", messages=USER,
          inferenceConfig={"temperature": 0.5, "topP": 0.9}), "cannot both"),
])
def test_converse_errors_are_bedrocks(runtime: Any, call: dict[str, Any], message: str) -> None:
    with pytest.raises(ClientError) as caught:
        runtime.converse(**call)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert message in caught.value.response["Error"]["Message"]


@pytest.mark.parametrize("model, body, size", [
    ("amazon.titan-embed-text-v2:0", {"inputText": "hello", "dimensions": 256}, 256),
    ("cohere.embed-multilingual-v3", {"texts": ["hello"], "input_type": "search_query"}, 1024),
])
def test_embeddings_are_unit_vectors_with_token_headers(runtime: Any, model: str,
                                                        body: dict[str, Any], size: int) -> None:
    response = runtime.invoke_model(modelId=model, body=json.dumps(body))
    payload = json.loads(response["body"].read())
    vector = payload.get("embedding") or payload["embeddings"][0]
    assert len(vector) == size and math.isclose(sum(x * x for x in vector), 1, rel_tol=1e-9)
    assert int(response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"]) > 0
    again = json.loads(runtime.invoke_model(modelId=model, body=json.dumps(body))["body"].read())
    assert again == payload  # deterministic


@pytest.mark.parametrize("model, body", [
    ("amazon.titan-embed-text-v2:0", {"inputText": "x", "dimensions": 300}),
    ("amazon.titan-embed-text-v2:0", {"text": "x"}),
    ("cohere.embed-english-v3", {"texts": ["x"] * 97, "input_type": "search_document"}),
    ("cohere.embed-english-v3", {"texts": ["x"]}),
])
def test_malformed_embedding_bodies(runtime: Any, model: str, body: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as caught:
        runtime.invoke_model(modelId=model, body=json.dumps(body))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
