"""The official anthropic SDK, unchanged, against the stack that `make run` starts:
create, stream, a tool round trip, count_tokens, both ways of sending the key,
and each error as the exception class the SDK raises for Anthropic's API."""
from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
WEATHER: Any = {"name": "get_weather", "description": "Current weather for a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}}
ASK: Any = [{"role": "user", "content": "Name three AWS regions."}]


@pytest.fixture
def client(stack: LocalStack) -> anthropic.Anthropic:
    # max_retries=0 so each error surfaces at once.
    return anthropic.Anthropic(base_url=stack.url, api_key=stack.key, max_retries=0)


@pytest.mark.parametrize("model", [LLAMA, CLAUDE])
def test_create(client: anthropic.Anthropic, emulator: EmulatorControl, model: str) -> None:
    # Today's SDK has no temperature argument; older clients (Claude Code, LangChain) send it.
    message = client.messages.create(model=model, max_tokens=100, system="You are concise.",
                                     messages=ASK, extra_body={"temperature": 0.2})
    assert message.id.startswith("msg_") and message.model == model
    assert message.role == "assistant" and message.content[0].type == "text"
    assert message.content[0].text and message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message._request_id
    sent = emulator.requests()[0]["body"]
    if model == LLAMA:
        assert "<|start_header_id|>system<|end_header_id|>\n\nYou are concise.<|eot_id|>" in \
            sent["prompt"]
        assert (sent["temperature"], sent["max_gen_len"]) == (0.2, 100)
    else:
        assert sent["system"] == [{"text": "You are concise."}]
        assert sent["inferenceConfig"]["maxTokens"] == 100


@pytest.mark.parametrize("model", [LLAMA, CLAUDE])
def test_stream_joins_to_the_plain_text(client: anthropic.Anthropic, model: str) -> None:
    plain = client.messages.create(model=model, max_tokens=100, messages=ASK,
                                   extra_body={"temperature": 0})
    with client.messages.stream(model=model, max_tokens=100, messages=ASK,
                                extra_body={"temperature": 0}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text == final.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == plain.stop_reason
    assert (final.usage.input_tokens, final.usage.output_tokens) == \
        (plain.usage.input_tokens, plain.usage.output_tokens)


@pytest.mark.parametrize("model", [LLAMA, CLAUDE])
def test_tools_round_trip(client: anthropic.Anthropic, emulator: EmulatorControl,
                          model: str) -> None:
    question: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(model=model, max_tokens=200, tools=[WEATHER],
                                   tool_choice={"type": "any"}, messages=question)
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and "city" in call.input  # type: ignore[operator]
    emulator.clear_requests()
    turns: Any = [*question, {"role": "assistant", "content": first.content},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                "content": "18C and sunny"}]}]
    second = client.messages.create(model=model, max_tokens=200, tools=[WEATHER],
                                    messages=turns)
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    sent = emulator.requests()[0]["body"]
    if model == LLAMA:
        assert "ipython<|end_header_id|>\n\n18C and sunny<|eot_id|>" in sent["prompt"]
    else:
        assert sent["messages"][-1]["content"] == [{"toolResult": {
            "toolUseId": call.id, "content": [{"text": "18C and sunny"}]}}]
    with client.messages.stream(model=model, max_tokens=200, tools=[WEATHER],
                                tool_choice={"type": "tool", "name": "get_weather"},
                                messages=question) as stream:
        streamed = stream.get_final_message()
    (call,) = [block for block in streamed.content if block.type == "tool_use"]
    assert call.name == "get_weather" and "city" in call.input  # type: ignore[operator]


def test_count_tokens(client: anthropic.Anthropic, emulator: EmulatorControl) -> None:
    counted = client.messages.count_tokens(model=LLAMA, messages=ASK, system="Be brief.",
                                           tools=[WEATHER])
    plain = client.messages.count_tokens(model=LLAMA, messages=ASK)
    assert counted.input_tokens > plain.input_tokens > 0
    assert emulator.requests() == []  # nothing ran
    used = client.messages.create(model=LLAMA, max_tokens=10, messages=ASK).usage
    assert plain.input_tokens >= used.input_tokens  # never less than Bedrock counts


def test_both_ways_of_sending_the_key(stack: LocalStack) -> None:
    for client in (anthropic.Anthropic(base_url=stack.url, api_key=stack.key, max_retries=0),
                   anthropic.Anthropic(base_url=stack.url, auth_token=stack.key,
                                       api_key=None, max_retries=0)):
        assert client.messages.create(model=LLAMA, max_tokens=10, messages=ASK).content
    for client in (anthropic.Anthropic(base_url=stack.url, api_key="wrong", max_retries=0),
                   anthropic.Anthropic(base_url=stack.url, auth_token="wrong", api_key=None,
                                       max_retries=0)):
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.messages.create(model=LLAMA, max_tokens=10, messages=ASK)
        assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore


@pytest.mark.parametrize("faults, kwargs, exception, kind", [
    ({}, {"max_tokens": 10, "speed": "fast"}, anthropic.BadRequestError,
     "invalid_request_error"),
    ({}, {"max_tokens": 10, "model": "claude-nonexistent"}, anthropic.NotFoundError,
     "not_found_error"),
    ({"fail_next": ["ThrottlingException"] * 8}, {"max_tokens": 10}, anthropic.RateLimitError,
     "rate_limit_error"),
    ({"fail_next": ["ServiceUnavailableException"] * 8}, {"max_tokens": 10},
     anthropic.OverloadedError, "overloaded_error"),
    ({"fail_next": ["ModelErrorException"] * 8}, {"max_tokens": 10},
     anthropic.InternalServerError, "api_error"),
])
def test_errors_raise_the_sdks_classes(client: anthropic.Anthropic, emulator: EmulatorControl,
                                       faults: dict[str, Any], kwargs: dict[str, Any],
                                       exception: type[anthropic.APIStatusError],
                                       kind: str) -> None:
    if faults:
        emulator.configure(**faults)
    with pytest.raises(exception) as caught:
        client.messages.create(**{"model": LLAMA, "messages": ASK, **kwargs})
    assert caught.value.body["error"]["type"] == kind  # type: ignore[index]
    if exception is anthropic.RateLimitError:
        assert int(caught.value.response.headers["retry-after"]) >= 1


def test_a_failure_mid_stream_raises_from_the_error_event(client: anthropic.Anthropic,
                                                          emulator: EmulatorControl) -> None:
    emulator.configure(fault_rate={"ModelStreamErrorException": 1.0}, fail_in_stream=True)
    received = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model=LLAMA, max_tokens=200, messages=ASK) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert "".join(received)  # the text before the failure came first
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_structured_output_through_output_config(client: anthropic.Anthropic,
                                                 emulator: EmulatorControl) -> None:
    schema = {"type": "object", "properties": {"regions": {"type": "array",
                                                           "items": {"type": "string"}}},
              "required": ["regions"], "additionalProperties": False}
    message = client.messages.create(model=LLAMA, max_tokens=200, messages=ASK,
                                     output_config={"format": {"type": "json_schema",
                                                               "schema": schema}})
    import json
    assert isinstance(json.loads(message.content[0].text)["regions"], list)  # type: ignore
    assert '"regions"' in emulator.requests()[0]["body"]["prompt"]  # the schema was in it
