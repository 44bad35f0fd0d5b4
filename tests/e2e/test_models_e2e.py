"""Issue 14's "done when", against `make run`'s dev stage: the openai SDK chats
with Llama 3.1 8B, Claude and Nova (plain, streamed, tools) and embeds text
(float and base64); LangChain's OpenAIEmbeddings embeds unchanged but for
``check_embedding_ctx_length=False`` (see docs/models.md)."""
from __future__ import annotations

import json

import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def client(stack: LocalStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)


def test_the_dev_stage_lists_every_family(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {LLAMA, CLAUDE, NOVA, "amazon.titan-embed-text-v2:0", "cohere.embed-english-v3",
            "cohere.embed-multilingual-v3"} == ids


@pytest.mark.parametrize("model", [LLAMA, CLAUDE, NOVA])
def test_plain_and_streamed_chat(client: openai.OpenAI, emulator: EmulatorControl,
                                 model: str) -> None:
    plain = client.chat.completions.create(model=model, messages=ASK, max_tokens=300,
                                           temperature=0)
    assert plain.model == model and plain.choices[0].message.content
    assert plain.usage is not None and plain.usage.prompt_tokens > 0
    operation = emulator.requests()[-1]["operation"]
    # Llama is read from its stream even for a plain call (deadlines, billing).
    assert operation == ("InvokeModelWithResponseStream" if model == LLAMA else "Converse")
    stream = client.chat.completions.create(model=model, messages=ASK, max_tokens=300,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        usage = chunk.usage or usage
    assert "".join(pieces) and usage is not None and usage.completion_tokens > 0
    assert emulator.requests()[-1]["operation"] == (
        "InvokeModelWithResponseStream" if model == LLAMA else "ConverseStream")


@pytest.mark.parametrize("model", [LLAMA, CLAUDE, NOVA])
def test_tools_round_trip(client: openai.OpenAI, model: str) -> None:
    first = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER],
                                           tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    second = client.chat.completions.create(model=model, tools=[WEATHER], messages=[
        *ASK, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "21 C and clear"}])
    assert "21 C and clear" in (second.choices[0].message.content or "")


@pytest.mark.parametrize("model", [CLAUDE, NOVA])
def test_streamed_tool_calls(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER],
                                            stream=True)
    name, arguments, finish = None, "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or []:
            name = call.function.name or name
            arguments += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and "city" in json.loads(arguments) and finish == "tool_calls"


@pytest.mark.parametrize("model, size", [("amazon.titan-embed-text-v2:0", 512),
                                         ("cohere.embed-english-v3", None),
                                         ("cohere.embed-multilingual-v3", None)])
def test_embeddings_float_and_base64(client: openai.OpenAI, model: str, size: int | None) -> None:
    extra = {"dimensions": size} if size else {}
    # The SDK asks for base64 by default and decodes it to floats itself.
    by_default = client.embeddings.create(model=model, input=["hello", "world"], **extra)
    as_floats = client.embeddings.create(model=model, input=["hello", "world"],
                                         encoding_format="float", **extra)
    assert [len(d.embedding) for d in by_default.data] == [size or 1024] * 2
    assert [d.embedding for d in by_default.data] == [d.embedding for d in as_floats.data]
    assert by_default.usage.prompt_tokens > 0 and by_default.model == model


def test_langchain_openai_embeddings(stack: LocalStack) -> None:
    embeddings = OpenAIEmbeddings(model="amazon.titan-embed-text-v2:0", base_url=f"{stack.url}/v1",
                                  api_key=stack.key, check_embedding_ctx_length=False,
                                  max_retries=0)
    vectors = embeddings.embed_documents(["first document", "second document"])
    query = embeddings.embed_query("first document")
    assert len(vectors) == 2 and len(vectors[0]) == 1024
    assert query == pytest.approx(vectors[0])


def test_token_arrays_are_refused_with_the_setting_to_change(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="amazon.titan-embed-text-v2:0", input=[[1, 2, 3]])
    assert "check_embedding_ctx_length=False" in str(caught.value)
