"""The Responses API's clients, unchanged, against `make run`: the openai SDK
(create, stream, parse, retrieve, delete, input_items, function-call round
trips through previous_response_id and through replayed items under
store: false), the OpenAI Agents SDK in its default mode, and LangChain's
ChatOpenAI(use_responses_api=True). Each test checks what reached Bedrock too."""
from __future__ import annotations

import asyncio
import json

import openai
import pytest
from agents import Agent, OpenAIProvider, RunConfig, Runner, function_tool, set_tracing_disabled
from langchain_core.tools import tool as langchain_tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather for a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False},
           "strict": True}

set_tracing_disabled(True)  # nothing may leave the machine


class City(BaseModel):
    name: str
    country: str


@pytest.fixture
def client(stack: LocalStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)


def prompts(emulator: EmulatorControl) -> list[str]:
    return [str(r["body"].get("prompt", json.dumps(r["body"]))) for r in emulator.requests()]


@pytest.mark.parametrize("model", [MODEL, CLAUDE])
def test_create_retrieve_items_delete(client: openai.OpenAI, emulator: EmulatorControl,
                                      model: str) -> None:
    response = client.responses.create(model=model, input="Name three AWS regions.",
                                       instructions="You are concise.", max_output_tokens=100)
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text and response.usage.total_tokens > 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert "Name three AWS regions." in prompts(emulator)[0]
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text
    items = client.responses.input_items.list(response.id)
    assert [i.content[0].text for i in items.data] == ["Name three AWS regions."]
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


@pytest.mark.parametrize("model", [MODEL, CLAUDE])
def test_stream_is_named_events_ending_completed(client: openai.OpenAI, model: str) -> None:
    deltas, numbers = [], []
    with client.responses.stream(model=model, input="Count to five.") as stream:
        for event in stream:
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert numbers == sorted(numbers) and len(deltas) >= 1
    assert final.status == "completed" and final.output_text == "".join(deltas)
    assert client.responses.retrieve(final.id).output_text == final.output_text


@pytest.mark.parametrize("model", [MODEL, CLAUDE])
def test_parse_fills_the_pydantic_model(client: openai.OpenAI, model: str) -> None:
    parsed = client.responses.parse(model=model, input="Where is the Eiffel Tower?",
                                    text_format=City)
    city = parsed.output_parsed
    assert isinstance(city, City) and city.name and city.country


@pytest.mark.parametrize("model", [MODEL, CLAUDE])
def test_function_call_round_trip_through_previous_response_id(
        client: openai.OpenAI, emulator: EmulatorControl, model: str) -> None:
    first = client.responses.create(model=model, input="What is the weather in Paris?",
                                    tools=[WEATHER], tool_choice="required")
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    second = client.responses.create(model=model, previous_response_id=first.id, tools=[WEATHER],
                                     input=[{"type": "function_call_output",
                                             "call_id": call.call_id,
                                             "output": "It is 21 degrees."}])
    assert second.status == "completed" and second.output_text
    assert "It is 21 degrees." in prompts(emulator)[-1]
    assert "What is the weather in Paris?" in prompts(emulator)[-1]


def test_function_call_round_trip_replayed_under_store_false(
        client: openai.OpenAI, emulator: EmulatorControl) -> None:
    history: list = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.responses.create(model=MODEL, input=history, tools=[WEATHER], store=False,
                                    tool_choice="required")
    (call,) = [item for item in first.output if item.type == "function_call"]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id,
                    "output": "It is 3 degrees."})
    second = client.responses.create(model=MODEL, input=history, tools=[WEATHER], store=False)
    assert second.output_text and "It is 3 degrees." in prompts(emulator)[-1]
    for response in (first, second):
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(response.id)


def test_agents_sdk_default_mode_runs_a_tool(stack: LocalStack, emulator: EmulatorControl) -> None:
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        asked.append(city)
        return f"It is 21 degrees in {city}."

    client = openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)
    agent = Agent(name="weather", instructions="Use the tools you have.", model=MODEL,
                  tools=[get_weather])
    result = asyncio.run(Runner.run(agent, "What is the weather in Lima?", run_config=RunConfig(
        model_provider=OpenAIProvider(openai_client=client))))
    assert asked and result.final_output
    assert "It is 21 degrees in" in prompts(emulator)[-1]


def test_langchain_use_responses_api(stack: LocalStack, emulator: EmulatorControl) -> None:
    @langchain_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"It is 5 degrees in {city}."

    llm = ChatOpenAI(model=MODEL, base_url=f"{stack.url}/v1", api_key=stack.key,
                     use_responses_api=True, max_retries=0)
    answer = llm.invoke("Say hello.")
    assert answer.text and "Say hello." in prompts(emulator)[-1]
    called = llm.bind_tools([get_weather], tool_choice="required").invoke("Weather in Rome?")
    assert called.tool_calls and called.tool_calls[0]["name"] == "get_weather"
    streamed = "".join(chunk.text for chunk in llm.stream("Count to three."))
    assert streamed
