"""Agent frameworks and client libraries, unchanged, against `make run`: the
OpenAI Agents SDK (on Chat Completions), LiteLLM as a client and LlamaIndex's
OpenAILike, each configured as docs/clients.md says; and the clients that call
the legacy /v1/completions (OpenAILike by default, LangChain's OpenAI class).

The emulator answers as Llama would (a call to an offered tool with arguments
from the conversation where they fit its schema, text after a tool result, JSON
valid for a requested schema); every test also checks what reached Bedrock, the prompt."""
from __future__ import annotations

import asyncio
import json
import os

# LiteLLM fetches its model price map from the internet at import unless told
# to use the copy it ships: tests run offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import openai  # noqa: E402
import pytest  # noqa: E402
from agents import (Agent, ModelSettings, OpenAIChatCompletionsModel, OpenAIProvider,  # noqa: E402
                    RunConfig, Runner, function_tool, set_tracing_disabled)
from llama_index.core.agent.workflow import FunctionAgent  # noqa: E402
from llama_index.core.llms import ChatMessage  # noqa: E402
from llama_index.core.prompts import PromptTemplate  # noqa: E402
from llama_index.core.tools import FunctionTool  # noqa: E402
from llama_index.llms.openai_like import OpenAILike  # noqa: E402
from langchain_openai import OpenAI as LangChainOpenAI  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from tests.e2e.stack import LocalStack  # noqa: E402
from tests.support import EmulatorControl  # noqa: E402

# LlamaIndex's workflows read deprecated pydantic attributes: its noise, not ours.
pytestmark = [pytest.mark.e2e,
              pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")]
MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
OPEN = "<|start_header_id|>assistant<|end_header_id|>\n\n"
IPYTHON = "<|start_header_id|>ipython<|end_header_id|>\n\n"
SCHEMA_MARKER = "It must be valid against this JSON Schema:\n"

# The Agents SDK uploads traces to OpenAI by default; nothing here may leave
# the machine (and docs/clients.md says to do the same).
set_tracing_disabled(True)


class Report(BaseModel):
    city: str
    temperature_c: int


class City(BaseModel):
    name: str
    country: str


def prompts(emulator: EmulatorControl) -> list[str]:
    return [r["body"]["prompt"] for r in emulator.requests()]


def sent_schema(prompt: str) -> dict:
    start = prompt.index(SCHEMA_MARKER) + len(SCHEMA_MARKER)
    return json.JSONDecoder().raw_decode(prompt, start)[0]


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


# --- the OpenAI Agents SDK ---------------------------------------------------

def weather_tool(asked: list[str]):  # type: ignore[no-untyped-def]
    @function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        asked.append(city)
        return f"It is 21 degrees in {city}."
    return get_weather


def async_client(stack: LocalStack) -> openai.AsyncOpenAI:
    # A fresh client per event loop (asyncio.run() makes a new one per test);
    # OpenAIProvider(base_url=...) would share one httpx client across loops.
    return openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)


def chat_model(stack: LocalStack) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(model=MODEL, openai_client=async_client(stack))


def test_agents_sdk_tool_loop_with_output_type(stack: LocalStack,
                                               emulator: EmulatorControl) -> None:
    asked: list[str] = []
    agent = Agent(name="weather", instructions="Use the tools you have.", model=chat_model(stack),
                  tools=[weather_tool(asked)], output_type=Report)
    result = asyncio.run(Runner.run(agent, "What is the weather in Paris?"))
    assert isinstance(result.final_output, Report) and len(asked) == 1
    kinds = [type(item).__name__ for item in result.new_items]
    assert kinds == ["ToolCallItem", "ToolCallOutputItem", "MessageOutputItem"]
    usage = result.context_wrapper.usage
    assert usage.requests == 2 and usage.input_tokens > 0 and usage.output_tokens > 0
    first, second = prompts(emulator)
    # The SDK sends its strict tool and the output schema (json_schema) together.
    assert '"name": "get_weather"' in first and "Environment: ipython" in first
    assert sent_schema(first)["required"] == ["city", "temperature_c"]
    assert f"{IPYTHON}It is 21 degrees in {asked[0]}.<|eot_id|>" in second


def test_agents_sdk_streams_a_tool_loop_with_usage(stack: LocalStack,
                                                   emulator: EmulatorControl) -> None:
    asked: list[str] = []

    async def run() -> tuple[str, list[str], int, int]:
        agent = Agent(name="weather", model=chat_model(stack), tools=[weather_tool(asked)],
                      model_settings=ModelSettings(include_usage=True))
        streamed = Runner.run_streamed(agent, "What is the weather in Oslo?")
        events = []
        async for event in streamed.stream_events():
            events.append(getattr(event, "name", None)
                          or getattr(getattr(event, "data", None), "type", ""))
        usage = streamed.context_wrapper.usage
        return str(streamed.final_output), events, usage.input_tokens, usage.output_tokens

    final, events, input_tokens, output_tokens = asyncio.run(run())
    assert len(asked) == 1 and f"21 degrees in {asked[0]}" in final
    assert {"tool_called", "tool_output", "response.function_call_arguments.delta"} <= set(events)
    # The SDK's tools are strict: the final text still streams as it comes.
    assert events.count("response.output_text.delta") > 3
    assert input_tokens > 0 and output_tokens > 0  # include_usage: the usage chunk
    assert len(emulator.requests()) == 2


def test_agents_sdk_per_run_provider_on_chat_completions(stack: LocalStack,
                                                         emulator: EmulatorControl) -> None:
    # The other documented set-up: a plain model name and a provider told to
    # use Chat Completions, for every agent of the run (handoffs included).
    provider = OpenAIProvider(openai_client=async_client(stack), use_responses=False)
    spanish = Agent(name="spanish", model=MODEL, instructions="Answer in Spanish.",
                    handoff_description="Speaks Spanish.")
    triage = Agent(name="triage", model=MODEL, handoffs=[spanish],
                   instructions="Hand Spanish questions to the Spanish agent.")
    result = asyncio.run(Runner.run(triage, "Hola, que tal?",
                                    run_config=RunConfig(model_provider=provider)))
    assert result.last_agent.name == "spanish" and result.final_output
    first, second = prompts(emulator)
    assert '"name": "transfer_to_spanish"' in first
    assert second.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                             "Answer in Spanish.")


# --- LiteLLM -----------------------------------------------------------------

@pytest.fixture
def litellm_args(stack: LocalStack) -> dict:
    # "openai/<model>" selects LiteLLM's OpenAI-compatible client.
    return {"model": f"openai/{MODEL}", "api_base": f"{stack.url}/v1", "api_key": stack.key,
            "num_retries": 0}


def test_litellm_tool_round_trip(litellm_args: dict, emulator: EmulatorControl) -> None:
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]
    reply = litellm.completion(messages=messages, tools=[WEATHER_TOOL], **litellm_args)
    assert reply.choices[0].finish_reason == "tool_calls"
    message = reply.choices[0].message
    (call,) = message.tool_calls
    city = json.loads(call.function.arguments)["city"]
    messages += [message.model_dump(), {"role": "tool", "tool_call_id": call.id,
                                        "content": f"21 degrees in {city}"}]
    final = litellm.completion(messages=messages, tools=[WEATHER_TOOL], **litellm_args)
    assert f"21 degrees in {city}" in final.choices[0].message.content
    assert final.usage.prompt_tokens > 0 and final.usage.completion_tokens > 0
    assert f"{IPYTHON}21 degrees in {city}<|eot_id|>" in prompts(emulator)[-1]


def test_litellm_response_format_from_a_pydantic_model(litellm_args: dict,
                                                       emulator: EmulatorControl) -> None:
    reply = litellm.completion(messages=[{"role": "user", "content": "The capital of France?"}],
                               response_format=City, temperature=0.2, stop=["\n\n"],
                               **litellm_args)
    City.model_validate_json(reply.choices[0].message.content)
    ((request),) = emulator.requests()
    assert request["body"]["temperature"] == 0.1
    assert sent_schema(request["body"]["prompt"])["required"] == ["name", "country"]


def test_litellm_streams_text_and_tool_calls(litellm_args: dict) -> None:
    chunks = list(litellm.completion(messages=[{"role": "user", "content": "Hello"}], stream=True,
                                     stream_options={"include_usage": True}, **litellm_args))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = [c.usage for c in chunks if getattr(c, "usage", None)][-1]
    assert len(chunks) > 3 and text and usage.completion_tokens > 0
    called = litellm.stream_chunk_builder(list(litellm.completion(
        messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER_TOOL],
        tool_choice="required", stream=True, **litellm_args)))
    assert called.choices[0].finish_reason == "tool_calls"
    (call,) = called.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)


# --- LlamaIndex --------------------------------------------------------------

@pytest.fixture
def llama(stack: LocalStack) -> OpenAILike:
    # is_chat_model=True: without it OpenAILike calls /v1/completions, which is
    # not served; is_function_calling_model=True for tools and structured_predict.
    return OpenAILike(model=MODEL, api_base=f"{stack.url}/v1", api_key=stack.key,
                      is_chat_model=True, is_function_calling_model=True,
                      context_window=128000, max_retries=0)


def test_llamaindex_chat_and_stream_chat(llama: OpenAILike, emulator: EmulatorControl) -> None:
    messages = [ChatMessage(role="system", content="Be brief."),
                ChatMessage(role="user", content="Hello")]
    reply = llama.chat(messages)
    streamed = list(llama.stream_chat(messages))
    assert reply.message.content and len(streamed) > 1
    assert streamed[-1].message.content == reply.message.content  # temperature 0.1 both times
    (prompt, _) = prompts(emulator)
    assert "system<|end_header_id|>\n\nBe brief.<|eot_id|>" in prompt


def test_llamaindex_function_agent_and_structured_predict(llama: OpenAILike,
                                                          emulator: EmulatorControl) -> None:
    asked: list[str] = []

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        asked.append(city)
        return f"It is 21 degrees in {city}."

    async def run() -> str:
        agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=get_weather)], llm=llama,
                              system_prompt="Use the tools you have.")
        return str(await agent.run("What is the weather in Paris?"))

    answer = asyncio.run(run())
    assert len(asked) == 1 and f"21 degrees in {asked[0]}" in answer
    first, second = prompts(emulator)
    assert '"name": "get_weather"' in first
    assert f"{IPYTHON}It is 21 degrees in {asked[0]}.<|eot_id|>" in second
    city = llama.structured_predict(City, PromptTemplate("The capital of {country}?"),
                                    country="France")
    assert isinstance(city, City)
    # structured_predict offers a tool named after the model and requires a call.
    prompt = prompts(emulator)[-1]
    assert '"name": "City"' in prompt and prompt.endswith(OPEN + '{"name": "')


# --- the legacy /v1/completions ----------------------------------------------

USER = "<|start_header_id|>user<|end_header_id|>\n\n"


def test_llamaindex_openailike_by_default_uses_legacy_completions(
        stack: LocalStack, emulator: EmulatorControl) -> None:
    llm = OpenAILike(model=MODEL, api_base=f"{stack.url}/v1", api_key=stack.key, max_retries=0)
    assert llm.complete("Hello").text
    assert len(list(llm.stream_complete("Hello"))) > 1
    # Its chat() writes a transcript into the prompt: that is the user turn.
    reply = llm.chat([ChatMessage(role="system", content="Be brief."),
                      ChatMessage(role="user", content="Hello")])
    assert reply.message.content
    prompt = prompts(emulator)[-1]
    assert f"{USER}system: Be brief.\nuser: Hello\nassistant:<|eot_id|>{OPEN}" in prompt


def test_langchain_openai_llm_class(stack: LocalStack, emulator: EmulatorControl) -> None:
    # LangChain's completion-model class sends prompt as a list and its own
    # defaults (n 1, penalties 0, logprobs null, max_tokens 256).
    llm = LangChainOpenAI(model=MODEL, base_url=f"{stack.url}/v1",
                          api_key=stack.key, max_retries=0)  # type: ignore[arg-type]
    assert llm.invoke("Hello") and len(list(llm.stream("Hello"))) > 1
    sent = emulator.requests()[0]["body"]
    assert sent["max_gen_len"] == 256 and sent["temperature"] == 0.35
