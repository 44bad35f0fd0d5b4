"""The emulator's answers that follow the prompt: values from the conversation
(devstack.conversation_values), the libraries' conventions (devstack.prompt_conventions),
and what devstack.llama_answers and devstack.prose write with them."""
from __future__ import annotations

import json
import random
from typing import Any

import pytest

from devstack.conversation_values import Conversation, proper_nouns, request_phrase
from devstack.generator import generate
from devstack.llama_answers import answer, full_answer
from devstack.prompt_conventions import (arithmetic, asked_shape, keys_in_prose, observation,
                                         read_code_agent, read_dspy)
from devstack.prompt_reading import read_prompt
from devstack.prose import reply
from devstack.schema_instances import instance
from tests.llama_format import TOOLS, WEATHER, render

FINAL = {"type": "function", "function": {
    "name": "final_answer", "description": "Provides a final answer to the given problem.",
    "parameters": {"type": "object", "properties": {"answer": {"type": "string"}},
                   "required": ["answer"]}}}
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize("text,hint,value", [
    ("Weather in Paris?", "city", "Paris"),
    ("What is the weather like in New York today?", "location", "New York"),
    ("Paris weather?", "city", "Paris"),
    ("New task:\nWhat is the weather in Paris?", "city", "Paris"),
    ("I want to visit Buenos Aires next week", "destination", "Buenos Aires"),
    ("Book a flight from Lisbon to Tokyo", "destination", "Tokyo"),
    ("Book a flight from Lisbon to Tokyo", "origin", "Lisbon"),
    ("Add 3 and 4", "city", None),  # a verb that starts the sentence names nothing
    ("Who wrote Hamlet?", "author", "Hamlet"),
    ("Mail bob@example.org about it", "email", "bob@example.org"),
    ("Anything on 2026-11-25?", "date", "2026-11-25"),
    ("Show it in fahrenheit", "unit", "fahrenheit"),
    ("Translate this into French", "language", "French"),
    ("What is the weather in Paris?", "query", "the weather in Paris"),
    ("Tell me a joke about cats, respond in JSON", "topic", "A joke about cats"),
    ("Tell me a joke about cats", "punchline", None),
])
def test_a_string_from_the_conversation(text: str, hint: str, value: str | None) -> None:
    assert Conversation([text]).string(hint) == value


def test_numbers_in_order_and_the_same_name_gets_the_same_number() -> None:
    talk = Conversation(["Add 3 and 4.5"])
    assert [talk.number("a"), talk.number("b"), talk.number("a"), talk.number("c")] == [
        3.0, 4.5, 3.0, None]


def test_the_first_option_mentioned() -> None:
    talk = Conversation(["Is it negative or positive?", "positive first"])
    assert talk.choice(["positive", "negative"]) == "negative"
    assert talk.choice(["up", "down"]) is None


@pytest.mark.parametrize("schema,text,expected", [
    (CITY, "Weather in Paris?", {"city": "Paris"}),
    # A value that does not fit the schema is not taken: the builder's own is.
    ({"type": "object", "properties": {"city": {"type": "string", "maxLength": 3}},
      "required": ["city"]}, "Weather in Paris?", None),
    ({"type": "object", "properties": {"city": {"enum": ["Oslo", "Paris"]}},
      "required": ["city"]}, "Weather in Paris?", {"city": "Paris"}),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer",
                                                                       "maximum": 3}},
      "required": ["a", "b"]}, "Add 7 and 40", {"a": 7}),
])
def test_the_builder_takes_what_fits(schema: dict[str, Any], text: str,
                                     expected: dict[str, Any] | None) -> None:
    built = instance(schema, random.Random(0), source=Conversation([text]))
    if expected is None:
        assert built["city"] != "Paris" and len(built["city"]) <= 3
    else:
        assert {k: built[k] for k in expected} == expected
    if "b" in schema["properties"]:
        assert built["b"] <= 3  # 40 does not fit its maximum


def test_request_phrase_and_proper_nouns() -> None:
    assert request_phrase("What does this endpoint run on?") == "this endpoint run on"
    assert request_phrase("Please tell me about Lambda. And more.") == "Lambda"
    assert proper_nouns("Fly from Lisbon to New York") == [("Lisbon", "from"), ("New York", "to")]


@pytest.mark.parametrize("texts,shape", [
    (['Schema: {"type": "object", "properties": {"x": {"type": "integer"}}}'],
     {"type": "object", "properties": {"x": {"type": "integer"}}}),
    (['Answer like {"city": "Paris", "population": 2, "tags": ["a"]}'],
     {"type": "object", "required": ["city", "population", "tags"], "properties": {
         "city": {"type": "string"}, "population": {"type": "integer"},
         "tags": {"type": "array", "minItems": 1, "items": {"type": "string"}}}}),
    (["respond in JSON with `setup` and `punchline` keys"],
     {"type": "object", "required": ["setup", "punchline"],
      "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}}}),
    (["Just talk to me {not json}"], None),
])
def test_the_shape_a_json_answer_takes(texts: list[str], shape: dict[str, Any] | None) -> None:
    assert asked_shape(texts) == shape


def test_keys_in_prose_ignore_quotes_outside_key_sentences() -> None:
    assert keys_in_prose('He said "hi". Use the "name" and "age" fields.') == ["name", "age"]


@pytest.mark.parametrize("text,found", [
    ("What is 3 + 4?", ("3 + 4", 7.0)), ("2 * (3 + 4)", ("2 * (3 + 4)", 14.0)),
    ("(2 + 3) * 4 = ?", ("(2 + 3) * 4", 20.0)), ("1 / 0", None), ("no sums here", None),
    ("9 ^ 99", None),
])
def test_arithmetic(text: str, found: tuple[str, float] | None) -> None:
    assert arithmetic(text) == found


def test_observations() -> None:
    assert observation("Observation:\nSunny") == "Sunny"
    assert observation("Observation:\nExecution logs:\nSunny\nLast output from code snippet:\n"
                       "None") == "Sunny"
    assert observation("An observation") is None


DSPY_SYSTEM = """Your input fields are:
1. `question` (str):
Your output fields are:
1. `reasoning` (str):\x20
2. `answer` (int):
3. `mood` (Literal['happy', 'sad']):
All interactions will be structured in the following way, with the appropriate values filled in.

[[ ## question ## ]]
{question}

[[ ## completed ## ]]"""  # \x20: the trailing space dspy writes
DSPY_USER = """[[ ## question ## ]]
What is 3 + 4? I am sad.

Respond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`."""


def test_dspy_fields_and_their_answer() -> None:
    read = read_dspy(DSPY_SYSTEM, DSPY_USER)
    assert read is not None and not read.as_json
    assert read.outputs == (("reasoning", "str"), ("answer", "int"),
                            ("mood", "Literal['happy', 'sad']"))
    assert read.inputs == {"question": "What is 3 + 4? I am sad."}
    written = answer(render([("user", DSPY_USER)], system=DSPY_SYSTEM), random.Random(0))
    assert written == ("[[ ## reasoning ## ]]\nThe question asks for 3 + 4, which is 7.\n\n"
                       "[[ ## answer ## ]]\n7\n\n[[ ## mood ## ]]\nsad\n\n[[ ## completed ## ]]")
    as_json = answer(render([("user", DSPY_USER)], system=DSPY_SYSTEM, json_object=True,
                            prefill="{"), random.Random(0))
    assert json.loads("{" + (as_json or "")) == {
        "reasoning": "The question asks for 3 + 4, which is 7.", "answer": 7, "mood": "sad"}


CODE_SYSTEM = """You are an expert assistant who can solve any task using code blobs.
In a cycle of Thought, Code, and Observation sequences. The code sequence must be opened with
'<code>', and closed with '</code>'. Return with `final_answer`.
<code>
def get_weather(city: string) -> string:
    \"\"\"The weather in a city.

    Args:
        city: the city's name
    \"\"\"

def final_answer(answer: any) -> any:
    \"\"\"Provides a final answer to the given problem.\"\"\"

</code>"""


def test_code_agent_calls_the_tool_then_answers() -> None:
    read = read_code_agent(CODE_SYSTEM)
    assert read is not None and [t.name for t in read.tools] == ["get_weather", "final_answer"]
    first = answer(render([("user", "New task:\nWhat is the weather in Paris?")],
                          system=CODE_SYSTEM), random.Random(0))
    assert first is not None and first.startswith("Thought: ")
    assert "<code>\nresult = get_weather(city='Paris')\nprint(result)\n</code>" in first
    second = answer(render([("user", "New task:\nWhat is the weather in Paris?"),
                            ("assistant", first),
                            ("user", "Observation:\nExecution logs:\nSunny\nLast output from "
                                     "code snippet:\nNone")], system=CODE_SYSTEM),
                    random.Random(0))
    assert second is not None and second.endswith("<code>\nfinal_answer('Sunny')\n</code>")
    direct = answer(render([("user", "What is 6 * 7?")], system=CODE_SYSTEM), random.Random(0))
    assert direct is not None and direct.endswith("final_answer(42)\n</code>")


def call(prompt: str) -> dict[str, Any]:
    written = full_answer(read_prompt(prompt), random.Random(0))
    assert written is not None
    return json.loads(written)


def test_tool_calls_take_the_city_and_reach_the_final_answer() -> None:
    made = call(render([("user", "Weather in Paris?")], tools=TOOLS))
    assert made["name"] == "get_weather" and made["parameters"]["city"] == "Paris"
    offered = [WEATHER, FINAL]
    # The final-answer tool is not the first step while another tool fits...
    assert call(render([("user", "Weather in Paris?")], tools=offered))["name"] == "get_weather"
    # ...after a tool result (OpenAI's tool role, or smolagents' observation) it is the answer.
    for result in (("ipython", "Sunny, 21 C"), ("user", "Observation:\nSunny, 21 C")):
        made = call(render([("user", "Weather in Paris?"), ("assistant", "Calling tools: x"),
                            result], tools=offered))
        assert made == {"name": "final_answer", "parameters": {"answer": "Sunny, 21 C"}}
    # A request no other tool fits goes to the final answer at once.
    assert call(render([("user", "Hello there")], tools=offered))["name"] == "final_answer"


def test_text_is_about_the_message_and_deterministic() -> None:
    text = reply("Tell me about Lambda.", random.Random(1), 60)
    assert '"Tell me about Lambda."' in text and "Lambda" in text.split('"', 2)[2]
    assert len(text) >= 240 and text.endswith(".")
    prompt = render([("user", "Tell me about Lambda.")])
    kw: dict[str, Any] = dict(temperature=0.5, top_p=0.9, max_tokens=512, seed=0)
    assert generate("m", prompt, **kw) == generate("m", prompt, **kw)
    assert "Tell me about Lambda." in generate("m", prompt, **kw).text


@pytest.mark.parametrize("paths,ok", [
    (None, True), ([], True), (["/stop_sequence"], True), (["/a/b~0c~1d"], True),
    ([""], False), (["stop_sequence"], False), (["/a~2"], False), ("/stop_sequence", False),
    ([1], False),
])
def test_the_emulator_checks_response_field_paths_as_bedrock_does(paths: Any, ok: bool) -> None:
    from devstack.bedrock_wire import BedrockError
    from devstack.converse_wire import _response_fields
    if ok:
        assert _response_fields(paths) == (paths or [])
    else:
        with pytest.raises(BedrockError):
            _response_fields(paths)


def test_the_emulator_returns_claudes_stop_sequence_only_when_asked() -> None:
    from chalicelib.models.registry import REGISTRY
    from devstack.converse_wire import response_fields
    claude = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    nova = next(m.id for m in REGISTRY.values() if m.owned_by == "amazon" and m.kind == "chat")
    assert response_fields(claude, [], "X") is None
    assert response_fields(claude, ["/stop_sequence", "/other"], "X") == {"stop_sequence": "X"}
    assert response_fields(claude, ["/stop_sequence"], None) == {"stop_sequence": None}
    assert response_fields(nova, ["/stop_sequence"], "X") == {}
