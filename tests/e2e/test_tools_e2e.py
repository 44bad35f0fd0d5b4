"""Tools and structured output with real clients, unchanged, against `make run`:
the official openai SDK and LangChain's ChatOpenAI. The emulator answers as
Llama would: a call to an offered tool with arguments made from its schema,
text after a tool result, and JSON valid for a requested schema."""
from __future__ import annotations

import json
from typing import Literal

import openai
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"]}}}


class Person(BaseModel):
    name: str
    age: int
    role: Literal["admin", "user"]


@pytest.fixture
def client(stack: LocalStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)


@pytest.fixture
def chat(stack: LocalStack) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=f"{stack.url}/v1", api_key=stack.key,  # type: ignore[arg-type]
                      max_retries=0, temperature=0)


def test_openai_tool_round_trip(client: openai.OpenAI, emulator: EmulatorControl) -> None:
    messages: list = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    arguments = json.loads(call.function.arguments)
    assert call.function.name == "get_weather" and arguments["unit"] in ("celsius", "fahrenheit")
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'}]
    final = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert "21" in (final.choices[0].message.content or "")
    assert "<|start_header_id|>ipython<|end_header_id|>" in emulator.requests()[-1]["body"]["prompt"]


def test_openai_streamed_tool_calls(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER],
        tool_choice="required", stream=True, stream_options={"include_usage": True})
    names, arguments, finish, usage = [], "", None, None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                if delta.function and delta.function.name:
                    names.append(delta.function.name)
                arguments += (delta.function.arguments or "") if delta.function else ""
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert names == ["get_weather"] and finish == "tool_calls"
    assert set(json.loads(arguments)) == {"city", "unit"}
    assert usage is not None and usage.completion_tokens > 0


def test_openai_parse_with_pydantic(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Invent a user."}],
        response_format=Person)
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and person.role in ("admin", "user")


def test_langchain_bind_tools_agent_loop(chat: ChatOpenAI) -> None:
    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"It is 21 degrees in {city}."

    model = chat.bind_tools([get_weather])
    history: list = [HumanMessage("What is the weather in Paris?")]
    reply = model.invoke(history)
    assert reply.tool_calls and reply.tool_calls[0]["name"] == "get_weather"
    history.append(reply)
    for call in reply.tool_calls:
        history.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = model.invoke(history)
    assert not final.tool_calls and "21 degrees" in str(final.content)


@pytest.mark.parametrize("method", ["function_calling", "json_mode", "json_schema"])
def test_langchain_with_structured_output(chat: ChatOpenAI, emulator: EmulatorControl,
                                          method: str) -> None:
    if method == "json_mode":
        # json_mode sends no schema: the fields are in the prompt, which the
        # emulator does not read, so it gets Llama's answer (after the "{"
        # prefill) from the script. The other methods send the schema.
        emulator.configure(respond_next=['"name": "Ada", "age": 36, "role": "admin"}'])
    structured = chat.with_structured_output(Person, method=method)  # type: ignore[arg-type]
    person = structured.invoke("Invent a user. Answer in JSON with name, age and role.")
    assert isinstance(person, Person)
    sent = emulator.requests()[-1]["body"]["prompt"]
    assert sent.endswith("<|end_header_id|>\n\n{" if method != "function_calling"
                         else '{"name": "Person", "parameters": ')
