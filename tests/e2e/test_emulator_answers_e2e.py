"""Libraries that parse what the model writes, unscripted, against `make run`.

instructor's JSON mode, LangChain's ``json_mode``, dspy (ChatAdapter, its default,
and JSONAdapter) and smolagents (ToolCallingAgent and CodeAgent) each put their
own conventions into the prompt and parse the answer strictly; the emulator
answers in kind (devstack/llama_answers.py), with values taken from the
conversation. Every test also checks what reached Bedrock."""
from __future__ import annotations

import json
import os
from typing import Literal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM (dspy's client): offline

import dspy  # noqa: E402
import instructor  # noqa: E402
import openai  # noqa: E402
import pytest  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from smolagents import CodeAgent, OpenAIServerModel, ToolCallingAgent, tool  # noqa: E402

from tests.e2e.stack import LocalStack  # noqa: E402
from tests.support import EmulatorControl  # noqa: E402

pytestmark = pytest.mark.e2e
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


class Joke(BaseModel):
    setup: str
    punchline: str


class Person(BaseModel):
    name: str
    age: int
    city: str


def prompts(emulator: EmulatorControl) -> list[str]:
    return [r["body"].get("prompt", "") for r in emulator.requests()]


def client(stack: LocalStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=stack.key, max_retries=0)


@pytest.mark.parametrize("model", [LLAMA, CLAUDE])
def test_tool_arguments_come_from_the_conversation(stack: LocalStack, emulator: EmulatorControl,
                                                   model: str) -> None:
    for question, city in (("Weather in Paris?", "Paris"),
                           ("What is the weather like in New York today?", "New York")):
        answer = client(stack).chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}], tools=WEATHER)
        call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "get_weather", {"city": city})
    sent = emulator.requests()[-1]["body"]
    assert "New York" in json.dumps(sent)


def test_instructor_json_mode(stack: LocalStack, emulator: EmulatorControl) -> None:
    patched = instructor.from_openai(client(stack), mode=instructor.Mode.JSON)
    person = patched.chat.completions.create(
        model=LLAMA, response_model=Person, max_retries=0,
        messages=[{"role": "user", "content": "Alice Martin is 34 and lives in Lyon."}])
    assert person.model_dump() == {"name": "Alice Martin", "age": 34, "city": "Lyon"}
    joke = patched.chat.completions.create(
        model=LLAMA, response_model=Joke, max_retries=0,
        messages=[{"role": "user", "content": "Tell me a joke about cats."}])
    assert "cats" in joke.setup and "cats" in joke.punchline
    prompt = prompts(emulator)[-1]
    # instructor's own instruction with the schema, and the endpoint's json_object line.
    assert "match the following json_schema" in prompt and '"punchline"' in prompt
    assert "Respond with a single JSON object and nothing else" in prompt


def test_langchain_json_mode(stack: LocalStack, emulator: EmulatorControl) -> None:
    llm = ChatOpenAI(model=LLAMA, base_url=stack.url + "/v1", api_key=stack.key,  # type: ignore[arg-type]
                     max_retries=0)
    # LangChain's json_mode sends no schema: the keys are in the user's words, as in its docs.
    structured = llm.with_structured_output(Joke, method="json_mode")
    joke = structured.invoke("Tell me a joke about cats, respond in JSON with `setup` and "
                             "`punchline` keys")
    assert isinstance(joke, Joke) and "a joke about cats" in joke.setup
    example = llm.with_structured_output(None, method="json_mode").invoke(
        'Describe Paris as JSON like {"city": "...", "country": "...", "population": 0}')
    assert set(example) == {"city", "country", "population"}  # type: ignore[arg-type]
    assert example["city"] == "Paris" and isinstance(example["population"], int)  # type: ignore[index]
    assert "respond in JSON with `setup` and `punchline` keys" in prompts(emulator)[0]


class Sentiment(dspy.Signature):
    """Classify the sentiment of a review."""

    review: str = dspy.InputField()
    sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()


@pytest.mark.parametrize("adapter", ["chat", "json"])
def test_dspy(stack: LocalStack, emulator: EmulatorControl, adapter: str) -> None:
    lm = dspy.LM("openai/" + LLAMA, api_base=stack.url + "/v1", api_key=stack.key, cache=False,
                 num_retries=0)
    chosen = dspy.ChatAdapter(use_json_adapter_fallback=False) if adapter == "chat" \
        else dspy.JSONAdapter()
    with dspy.context(lm=lm, adapter=chosen):
        solved = dspy.ChainOfThought("question -> answer: int")(question="What is 3 + 4?")
        rated = dspy.Predict(Sentiment)(review="A negative experience: the soup was cold.")
    assert solved.answer == 7 and "3 + 4" in solved.reasoning
    assert rated.sentiment == "negative"
    sent = prompts(emulator)
    assert len(sent) == 2  # no retry, no fallback to another adapter
    marker = "[[ ## completed ## ]]" if adapter == "chat" else "Outputs will be a JSON object"
    assert marker in sent[0] and "What is 3 + 4?" in sent[0]


@tool
def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name
    """
    return f"Sunny, 21 C in {city}"


@pytest.mark.parametrize("kind,model", [("tools", LLAMA), ("tools", CLAUDE), ("code", LLAMA)])
def test_smolagents_reaches_its_final_answer(stack: LocalStack, emulator: EmulatorControl,
                                             kind: str, model: str) -> None:
    server = OpenAIServerModel(model, api_base=stack.url + "/v1", api_key=stack.key)
    agent_class = ToolCallingAgent if kind == "tools" else CodeAgent
    agent = agent_class(tools=[get_weather], model=server, max_steps=4, verbosity_level=0)
    assert agent.run("What is the weather in Paris?") == "Sunny, 21 C in Paris"
    sent = emulator.requests()
    assert len(sent) == 2  # the tool, then final_answer with its observation
    last = json.dumps(sent[-1]["body"])
    assert "Observation" in last and "Sunny, 21 C in Paris" in last
    if kind == "code":
        assert "<code>" in sent[0]["body"]["prompt"]


def test_text_is_sentences_about_the_message(stack: LocalStack, emulator: EmulatorControl) -> None:
    answer = client(stack).chat.completions.create(
        model=LLAMA, messages=[{"role": "user", "content": "Tell me about Lambda cold starts."}])
    text = answer.choices[0].message.content or ""
    assert "Tell me about Lambda cold starts." in text
    sentences = [s for s in text.split(". ") if s]
    assert len(sentences) >= 2 and all(s[0].isupper() or s[0] == '"' for s in sentences)
    again = client(stack).chat.completions.create(
        model=LLAMA, messages=[{"role": "user", "content": "Tell me about Lambda cold starts."}])
    assert again.choices[0].message.content == text  # deterministic


def test_a_scripted_answer_still_wins(stack: LocalStack, emulator: EmulatorControl) -> None:
    # The JSON answer follows the endpoint's "{" prefill, as a real generation does.
    emulator.respond_next('{"name": "get_weather", "parameters": {"city": "Oslo"}}',
                          '"setup": "scripted", "punchline": "exactly"}')
    answer = client(stack).chat.completions.create(
        model=LLAMA, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=WEATHER)
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    joke = instructor.from_openai(client(stack), mode=instructor.Mode.JSON).chat.completions.create(
        model=LLAMA, response_model=Joke, max_retries=0,
        messages=[{"role": "user", "content": "Tell me a joke about cats."}])
    assert joke.model_dump() == {"setup": "scripted", "punchline": "exactly"}
