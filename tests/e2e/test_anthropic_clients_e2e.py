"""LangChain's ChatAnthropic, unchanged, against the stack that `make run`
starts: invoke, stream, bind_tools (a tool round trip) and
with_structured_output, for Llama and for Claude."""
from __future__ import annotations

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, ToolMessage
from pydantic import BaseModel

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    celsius: float


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18C and sunny in {city}"


@pytest.fixture(params=[LLAMA, CLAUDE])
def chat(request: Any, stack: LocalStack) -> ChatAnthropic:
    return ChatAnthropic(model=request.param, base_url=stack.url,  # type: ignore[call-arg]
                         api_key=stack.key, max_retries=0, max_tokens=200, temperature=0)


def test_invoke_and_stream(chat: ChatAnthropic, emulator: EmulatorControl) -> None:
    answer = chat.invoke("Name three AWS regions.")
    assert isinstance(answer.content, str) and answer.content
    assert answer.usage_metadata and answer.usage_metadata["input_tokens"] > 0
    streamed = "".join(str(chunk.content) for chunk in chat.stream("Name three AWS regions."))
    assert streamed == answer.content
    assert emulator.requests()[0]["body"]  # the key's request reached Bedrock


def test_bind_tools_round_trip(chat: ChatAnthropic, emulator: EmulatorControl) -> None:
    tools = chat.bind_tools([get_weather], tool_choice="get_weather")
    question = HumanMessage("What is the weather in Paris?")
    first = tools.invoke([question])
    (call,) = first.tool_calls
    assert call["name"] == "get_weather" and "city" in call["args"]
    emulator.clear_requests()
    second = chat.bind_tools([get_weather]).invoke(
        [question, first, ToolMessage(get_weather(**call["args"]), tool_call_id=call["id"])])
    assert second.content and not second.tool_calls
    sent = emulator.requests()[0]["body"]
    assert "18C and sunny" in (sent.get("prompt") or str(sent["messages"]))


def test_with_structured_output(chat: ChatAnthropic) -> None:
    weather = chat.with_structured_output(Weather).invoke("The weather in Oslo, please.")
    assert isinstance(weather, Weather) and weather.city
