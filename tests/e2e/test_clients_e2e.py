"""Popular Python clients, unchanged, against `make run`: tools and structured
output through instructor, pydantic-ai, LangChain (incl. create_agent) and the
`llm` CLI, plus the openai SDK's round-trip habits.

The emulator answers as Llama would: a call to an offered tool with arguments
made from its schema, text after a tool result, JSON valid for a requested
schema. Where a client sends no schema (instructor's JSON and MD_JSON modes
put it in the prompt text), or a test needs a particular answer (parallel
calls, an answer the client's validator rejects), the emulator's scripted
`respond_next` feeds what Llama really writes; the endpoint still has to read
it. Every test also checks what reached Bedrock, the prompt."""
from __future__ import annotations

import asyncio
import enum
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import instructor
import openai
import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import AfterValidator, BaseModel
from pydantic_ai import Agent, NativeOutput, PromptedOutput
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
OPEN = "<|start_header_id|>assistant<|end_header_id|>\n\n"
IPYTHON = "<|start_header_id|>ipython<|end_header_id|>\n\n"
SCHEMA_MARKER = "It must be valid against this JSON Schema:\n"


class Address(BaseModel):
    street: str
    city: str


class Colour(str, enum.Enum):
    red = "red"
    blue = "blue"


class User(BaseModel):
    """A nested model, an enum, a Literal, a list and an Optional: pydantic's
    schema then has $defs/$ref, enum and anyOf-with-null."""
    name: str
    age: int
    role: Literal["admin", "user"]
    colour: Colour
    address: Address
    tags: list[str]
    nickname: Optional[str] = None


def _plausible(age: int) -> int:
    # Not in the JSON Schema: only the client's validator can catch it.
    if not 0 <= age <= 130:
        raise ValueError("age must be between 0 and 130")
    return age


class Person(BaseModel):
    name: str
    age: Annotated[int, AfterValidator(_plausible)]


class City(BaseModel):
    name: str
    country: str
    population: Optional[int] = None


def prompts(emulator: EmulatorControl) -> list[str]:
    return [r["body"]["prompt"] for r in emulator.requests()]


def sent_schema(prompt: str) -> dict:
    """The JSON Schema the endpoint wrote into the system turn."""
    start = prompt.index(SCHEMA_MARKER) + len(SCHEMA_MARKER)
    return json.JSONDecoder().raw_decode(prompt, start)[0]


@pytest.fixture
def sdk(stack: LocalStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)


# --- instructor --------------------------------------------------------------

@pytest.mark.parametrize("mode", [instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA])
def test_instructor_modes_with_a_schema(sdk: openai.OpenAI, emulator: EmulatorControl,
                                        mode: instructor.Mode) -> None:
    client = instructor.from_openai(sdk, mode=mode)
    user = client.chat.completions.create(
        model=MODEL, response_model=User, max_retries=0,
        messages=[{"role": "user", "content": "Ada, 36, admin, likes red, 1 Main St London."}])
    assert isinstance(user, User) and isinstance(user.address, Address)
    assert isinstance(user.colour, Colour) and user.role in ("admin", "user")
    (prompt,) = prompts(emulator)
    if mode == instructor.Mode.JSON_SCHEMA:
        schema = sent_schema(prompt)
        assert schema["$defs"]["Address"]["required"] == ["street", "city"]
        assert prompt.endswith(OPEN + "{")
    else:
        assert prompt.endswith(OPEN + '{"name": "User", "parameters": ')


def test_instructor_json_mode_reads_the_schema_from_the_prompt(
        sdk: openai.OpenAI, emulator: EmulatorControl) -> None:
    # JSON mode sends response_format json_object and the schema as system
    # text only: Llama continues the "{" prefill.
    emulator.respond_next('"name": "Ada", "age": 36, "role": "admin", "colour": "red", '
                          '"address": {"street": "1 Main St", "city": "London"}, '
                          '"tags": ["math"], "nickname": null}')
    client = instructor.from_openai(sdk, mode=instructor.Mode.JSON)
    user = client.chat.completions.create(
        model=MODEL, response_model=User, max_retries=0,
        messages=[{"role": "user", "content": "Ada, 36, admin, likes red, 1 Main St London."}])
    assert user.model_dump() == User(name="Ada", age=36, role="admin", colour=Colour.red,
                                     address=Address(street="1 Main St", city="London"),
                                     tags=["math"]).model_dump()
    (prompt,) = prompts(emulator)
    assert "Respond with a single JSON object and nothing else" in prompt
    assert '"Address"' in prompt and prompt.endswith(OPEN + "{")


def test_instructor_md_json_mode_reads_a_fenced_answer(sdk: openai.OpenAI,
                                                       emulator: EmulatorControl) -> None:
    # MD_JSON sends no response_format: the answer is plain text, as Llama writes it.
    emulator.respond_next('Here is the JSON:\n\n```json\n{"name": "Paris", "country": "France", '
                          '"population": 2100000}\n```')
    client = instructor.from_openai(sdk, mode=instructor.Mode.MD_JSON)
    city = client.chat.completions.create(
        model=MODEL, response_model=City, max_retries=0,
        messages=[{"role": "user", "content": "The capital of France?"}])
    assert city.model_dump() == {"name": "Paris", "country": "France", "population": 2100000}
    (prompt,) = prompts(emulator)
    assert "```json codeblock" in prompt and prompt.endswith(OPEN)


def test_instructor_reasks_through_a_tool_round_trip(sdk: openai.OpenAI,
                                                     emulator: EmulatorControl) -> None:
    # The first answer fits the schema but not the client's validator:
    # instructor replays the call with the error as its tool result.
    emulator.respond_next('{"name": "Ada", "age": 360}}', '{"name": "Ada", "age": 36}}')
    client = instructor.from_openai(sdk, mode=instructor.Mode.TOOLS)
    person = client.chat.completions.create(
        model=MODEL, response_model=Person, max_retries=1,
        messages=[{"role": "user", "content": "Ada is 36."}])
    assert person.model_dump() == {"name": "Ada", "age": 36}
    first, second = prompts(emulator)
    assert first.endswith(OPEN + '{"name": "Person", "parameters": ')
    assert '{"name": "Person", "parameters": {"name": "Ada", "age": 360}}<|eot_id|>' in second
    assert IPYTHON in second and "age must be between 0 and 130" in second


def test_instructor_streams_partial_objects(sdk: openai.OpenAI, emulator: EmulatorControl) -> None:
    client = instructor.from_openai(sdk, mode=instructor.Mode.TOOLS)
    partials = list(client.chat.completions.create_partial(
        model=MODEL, response_model=City, max_retries=0,
        messages=[{"role": "user", "content": "The capital of France?"}]))
    final = City.model_validate(partials[-1].model_dump())
    assert final.name and final.country and len(partials) > 1
    # A forced call is checked whole before it is streamed: one Bedrock call.
    assert len(emulator.requests()) == 1


# --- pydantic-ai -------------------------------------------------------------

@pytest.fixture
def pai_model(stack: LocalStack) -> OpenAIChatModel:
    return OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=f"{stack.url}/v1",
                                                          api_key=stack.key))


def test_pydantic_ai_output_type(pai_model: OpenAIChatModel, emulator: EmulatorControl) -> None:
    # The default output is a tool the model must call: tool_choice "required".
    result = Agent(pai_model, output_type=City).run_sync("The capital of France?")
    assert isinstance(result.output, City) and result.usage.output_tokens > 0
    (prompt,) = prompts(emulator)
    assert '"name": "final_result"' in prompt and prompt.endswith(OPEN + '{"name": "')


def test_pydantic_ai_native_and_prompted_output(pai_model: OpenAIChatModel,
                                                emulator: EmulatorControl) -> None:
    native = Agent(pai_model, output_type=NativeOutput(City)).run_sync("The capital of France?")
    assert isinstance(native.output, City)
    assert sent_schema(prompts(emulator)[-1])["required"] == ["name", "country"]
    # PromptedOutput asks for json_object and puts the schema in the prompt text.
    emulator.respond_next('"name": "Paris", "country": "France"}')
    prompted = Agent(pai_model, output_type=PromptedOutput(City)).run_sync("The capital of France?")
    assert prompted.output == City(name="Paris", country="France")
    assert prompts(emulator)[-1].endswith(OPEN + "{")


def test_pydantic_ai_tool_loop(pai_model: OpenAIChatModel, emulator: EmulatorControl) -> None:
    agent = Agent(pai_model, system_prompt="Use the tools you have.")
    asked: list[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        asked.append(city)
        return f"It is 21 degrees in {city}."

    result = agent.run_sync("What is the weather in Paris?")
    assert len(asked) == 1 and f"21 degrees in {asked[0]}" in result.output
    first, second = prompts(emulator)
    assert "Environment: ipython" in first and '"name": "get_weather"' in first
    assert f'{IPYTHON}It is 21 degrees in {asked[0]}.<|eot_id|>' in second


def test_pydantic_ai_streams_structured_output(pai_model: OpenAIChatModel,
                                               emulator: EmulatorControl) -> None:
    async def run() -> City:
        async with Agent(pai_model, output_type=City).run_stream("The capital?") as streamed:
            return await streamed.get_output()

    assert isinstance(asyncio.run(run()), City)
    assert len(emulator.requests()) == 1


# --- LangChain ---------------------------------------------------------------

@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"It is 21 degrees in {city}."


@tool
def get_time(city: str, clock: Literal["12h", "24h"] = "24h") -> str:
    """Local time in a city."""
    return f"It is 12:00 ({clock}) in {city}."


@pytest.fixture
def chat(stack: LocalStack) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=f"{stack.url}/v1", api_key=stack.key,  # type: ignore[arg-type]
                      max_retries=0, temperature=0)


def test_langchain_parallel_calls_round_trip(chat: ChatOpenAI, emulator: EmulatorControl) -> None:
    # Llama 3.1 writes parallel calls one per line.
    emulator.respond_next('{"name": "get_weather", "parameters": {"city": "Paris"}}\n'
                          '{"name": "get_time", "parameters": {"city": "Tokyo", "clock": "24h"}}')
    model = chat.bind_tools([get_weather, get_time])
    history: list = [HumanMessage("Weather in Paris and the time in Tokyo?")]
    reply = model.invoke(history)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"city": "Tokyo", "clock": "24h"})]
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    history.append(reply)
    tools = {"get_weather": get_weather, "get_time": get_time}
    for call in reply.tool_calls:
        history.append(ToolMessage(tools[call["name"]].invoke(call["args"]), tool_call_id=call["id"]))
    final = model.invoke(history)
    assert not final.tool_calls and final.content
    replay = prompts(emulator)[-1]
    assert ('{"name": "get_weather", "parameters": {"city": "Paris"}}\n'
            '{"name": "get_time", "parameters": {"city": "Tokyo", "clock": "24h"}}<|eot_id|>') in replay
    assert replay.count(IPYTHON) == 2


@pytest.mark.parametrize("choice,options,prefill", [
    ("get_time", {}, '{"name": "get_time", "parameters": '),
    ("any", {}, '{"name": "'),
    ("get_time", {"strict": True, "parallel_tool_calls": False}, '{"name": "get_time", "parameters": '),
])
def test_langchain_tool_choice_forms(chat: ChatOpenAI, emulator: EmulatorControl, choice: str,
                                     options: dict, prefill: str) -> None:
    reply = chat.bind_tools([get_weather, get_time], tool_choice=choice, **options).invoke(
        "What time is it in Tokyo?")
    (call,) = reply.tool_calls
    assert call["name"] in ("get_time", "get_weather") and "city" in call["args"]
    assert choice == "any" or call["name"] == "get_time"
    assert prompts(emulator)[-1].endswith(OPEN + prefill)


def test_langchain_streams_tool_calls(chat: ChatOpenAI) -> None:
    merged = None
    for chunk in chat.bind_tools([get_weather], tool_choice="get_weather").stream("Weather in Oslo?"):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None
    (call,) = merged.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)


class Profile(BaseModel):
    name: str
    nickname: Optional[str] = None
    address: Address
    tags: list[str]


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_langchain_structured_output_include_raw(chat: ChatOpenAI, emulator: EmulatorControl,
                                                 method: str) -> None:
    if method == "json_mode":
        emulator.respond_next('"name": "Ada", "address": {"street": "1 Main St", "city": "London"}, '
                              '"tags": []}')
    structured = chat.with_structured_output(Profile, method=method,  # type: ignore[arg-type]
                                             include_raw=True)
    out = structured.invoke(
        "Invent a profile, in JSON with name, address (street, city) and tags.")
    assert out["parsing_error"] is None and isinstance(out["parsed"], Profile)
    assert isinstance(out["parsed"].address, Address)
    raw = out["raw"]
    assert raw.response_metadata["finish_reason"] in ("stop", "tool_calls")
    assert raw.usage_metadata and raw.usage_metadata["output_tokens"] > 0


def test_langchain_create_agent_loop(chat: ChatOpenAI, emulator: EmulatorControl) -> None:
    agent = create_agent(chat, tools=[get_weather, get_time])
    result = agent.invoke({"messages": [{"role": "user", "content": "Weather in Paris?"}]})
    kinds = [type(m).__name__ for m in result["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    tool_result = result["messages"][2].content
    assert "21 degrees" in tool_result and tool_result in result["messages"][3].content
    assert len(emulator.requests()) == 2


# --- the llm CLI -------------------------------------------------------------

@pytest.fixture
def llm_cli(stack: LocalStack, tmp_path: Path) -> dict[str, str]:
    """llm's documented set-up for an OpenAI-compatible server."""
    (tmp_path / "extra-openai-models.yaml").write_text(
        "- model_id: local-llama\n"
        f"  model_name: {MODEL}\n"
        f"  api_base: \"{stack.url}/v1\"\n"
        "  api_key_name: local\n"
        "  supports_tools: true\n"
        "  supports_schema: true\n")
    (tmp_path / "keys.json").write_text(json.dumps({"local": stack.key}))
    return {**os.environ, "LLM_USER_PATH": str(tmp_path)}


def llm(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(Path(sys.executable).parent / "llm"), "-m", "local-llama", *argv],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def test_llm_cli_schema(llm_cli: dict[str, str], emulator: EmulatorControl) -> None:
    answer = json.loads(llm(llm_cli, "--schema", "name, age int, bio", "Invent a dog.").stdout)
    assert set(answer) == {"name", "age", "bio"} and isinstance(answer["age"], int)
    assert sent_schema(prompts(emulator)[-1])["properties"]["age"] == {"type": "integer"}


def test_llm_cli_tools(llm_cli: dict[str, str], emulator: EmulatorControl) -> None:
    code = ('def get_weather(city: str) -> str:\n'
            '    "Current weather for a city."\n'
            '    return f"It is 21 degrees in {city}."\n')
    done = llm(llm_cli, "--functions", code, "--td", "What is the weather in Paris?")
    assert "Tool call: get_weather(" in done.stdout + done.stderr
    assert "21 degrees" in done.stdout
    first, second = prompts(emulator)
    assert '"name": "get_weather"' in first and "21 degrees" in second.split(IPYTHON)[1]


# --- the openai SDK's habits -------------------------------------------------

def test_openai_message_model_dump_round_trip(sdk: openai.OpenAI) -> None:
    # messages.append(reply.choices[0].message.model_dump()) sends
    # annotations/audio/function_call as null: accepted, as OpenAI does.
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]
    reply = sdk.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    message = reply.choices[0].message
    dumped = message.model_dump()
    assert set(dumped) >= {"annotations", "audio", "function_call"}
    messages += [dumped, {"role": "tool", "tool_call_id": message.tool_calls[0].id,  # type: ignore[index]
                          "content": [{"type": "text", "text": "21 degrees"}]}]
    final = sdk.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    assert "21 degrees" in (final.choices[0].message.content or "")


def test_openai_stream_helper_parses(sdk: openai.OpenAI) -> None:
    with sdk.chat.completions.stream(model=MODEL, response_format=City,
                                     messages=[{"role": "user", "content": "A capital?"}]) as stream:
        for _ in stream:
            pass
        parsed = stream.get_final_completion().choices[0].message.parsed
    assert isinstance(parsed, City)


def test_openai_allowed_tools(sdk: openai.OpenAI, emulator: EmulatorControl) -> None:
    # One long tool list, a subset allowed per request (OpenAI's allowed_tools).
    def function(name: str) -> dict:
        return {"type": "function", "function": {"name": name, "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

    reply = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Time in Tokyo?"}],
        tools=[function("get_weather"), function("get_time")],  # type: ignore[list-item]
        tool_choice={"type": "allowed_tools", "allowed_tools": {
            "mode": "required", "tools": [{"type": "function", "function": {"name": "get_time"}}]}})
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_time"  # type: ignore[union-attr]
    (prompt,) = prompts(emulator)
    assert '"name": "get_time"' in prompt and "get_weather" not in prompt
    assert prompt.endswith(OPEN + '{"name": "')
