"""Reading an answer in the light of the request, and the one repair attempt (pure + a fake)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.models.answers import repair_request, shape
from chalicelib.chat import ChatRequest, Message, ResponseFormat, Tool, ToolChoice
from chalicelib.completion import ChatService
from chalicelib.errors import UnusableAnswerError
from chalicelib.models.prompting import render
from chalicelib.models.schemas import canonical

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
WEATHER = Tool("get_weather", "", canonical(
    {"type": "object", "properties": {"city": {"type": "string"},
                                      "unit": {"enum": ["c", "f"]}},
     "required": ["city"], "additionalProperties": False}), strict=True)
LOOSE = Tool("search", "", canonical({"type": "object", "properties": {"q": {"type": "string"}},
                                      "required": ["q"]}))
PERSON = canonical({"type": "object", "properties": {"name": {"type": "string"},
                                                     "age": {"type": "integer"}},
                    "required": ["name", "age"]})


def request(**fields: Any) -> ChatRequest:
    base: dict[str, Any] = dict(messages=(Message("user", "q"),), model=MODEL, max_tokens=50,
                                temperature=0.0, top_p=0.9)
    return ChatRequest(**{**base, **fields})


def ids() -> Any:
    counter = iter(range(100))
    return lambda: f"call_{next(counter)}"


@pytest.mark.parametrize("fields,generation,reason,expected", [
    # (request fields, generation, Bedrock stop reason) -> (text, stop, calls, problem?)
    ({"tools": (WEATHER,)}, '{"name": "get_weather", "parameters": {"city": "Paris"}}', "stop",
     ("", "tool_calls", [("get_weather", {"city": "Paris"})], False)),
    ({"tools": (WEATHER,)}, "It is sunny.", "stop", ("It is sunny.", "stop", [], False)),
    ({"tools": (WEATHER, LOOSE), "parallel_tool_calls": False},
     '{"name": "get_weather", "parameters": {"city": "A"}}; {"name": "search", "parameters": '
     '{"q": "b"}}', "stop", ("", "tool_calls", [("get_weather", {"city": "A"})], False)),
    ({"tools": (WEATHER, LOOSE)},
     '{"name": "get_weather", "parameters": {"city": "A"}}; {"name": "search", "parameters": '
     '{"q": "b"}}', "stop",
     ("", "tool_calls", [("get_weather", {"city": "A"}), ("search", {"q": "b"})], False)),
    ({"tools": (WEATHER,), "tool_choice": ToolChoice("required")},
     'get_weather", "parameters": {"city": "Oslo"}}', "stop",
     ("", "tool_calls", [("get_weather", {"city": "Oslo"})], False)),
    ({"tools": (WEATHER, LOOSE), "tool_choice": ToolChoice("function", "search")},
     '{"q": "llamas"}}', "stop", ("", "tool_calls", [("search", {"q": "llamas"})], False)),
    ({"tools": (WEATHER,)}, '{"name": "get_weather", "parameters": {"town": "Paris"}}', "stop",
     ("", "tool_calls", [("get_weather", {"town": "Paris"})], True)),
    ({"tools": (WEATHER,), "tool_choice": ToolChoice("none")},
     '{"name": "get_weather", "parameters": {"city": "Paris"}}', "stop",
     ('{"name": "get_weather", "parameters": {"city": "Paris"}}', "stop", [], False)),
    ({"response_format": ResponseFormat("json_object")}, '"a": 1}\nHope this helps!', "stop",
     ('{"a": 1}', "stop", [], False)),
    ({"response_format": ResponseFormat("json_schema", "p", PERSON)}, '"name": "Ada", "age": 36}',
     "stop", ('{"name": "Ada", "age": 36}', "stop", [], False)),
    ({"response_format": ResponseFormat("json_schema", "p", PERSON)}, '"name": "Ada"}', "stop",
     ('{"name": "Ada"}', "stop", [], True)),
    ({"response_format": ResponseFormat("json_object")}, "Sure! Here you go", "stop",
     ("{Sure! Here you go", "stop", [], True)),
    ({"stop": ("\n",)}, "one\ntwo", "stop", ("one", "stop", [], False)),
])
def test_shape(fields: dict, generation: str, reason: str, expected: tuple) -> None:
    req = request(**fields)
    answer = shape(req, render(req), generation, reason, make_id=ids())
    calls = [(c.name, json.loads(c.arguments)) for c in answer.tool_calls]
    assert (answer.text, answer.stop_reason, calls, answer.problem is not None) == expected


def test_a_cut_answer_is_not_repaired() -> None:
    req = request(response_format=ResponseFormat("json_schema", "p", PERSON))
    answer = shape(req, render(req), '"name": "Ad', "length")
    assert answer.fatal and not answer.repairable and "max_tokens" in (answer.problem or "")


def test_the_repair_request_says_what_was_wrong() -> None:
    req = request(response_format=ResponseFormat("json_object"))
    retry = repair_request(req, "{oops", "the answer is not valid JSON")
    assert [m.role for m in retry.messages] == ["user", "assistant", "user"]
    assert "the answer is not valid JSON" in retry.messages[-1].content
    assert render(retry).prefix == "{"


class FakeGateway:
    """Answers with the given generations in order and keeps the prompts it got."""

    region = "us-east-1"

    def __init__(self, *generations: str) -> None:
        self.generations = list(generations)
        self.prompts: list[str] = []

    def invoke_stream(self, model_id: str, body: dict[str, Any],
                      guardrail: Any = None) -> Iterator[dict[str, Any]]:
        """Every call reads Bedrock's stream (completion.py): one chunk, the last."""
        self.prompts.append(body["prompt"])
        yield {"generation": self.generations.pop(0), "prompt_token_count": 10,
               "generation_token_count": 5, "stop_reason": "stop",
               "amazon-bedrock-invocationMetrics": {"inputTokenCount": 10, "outputTokenCount": 5}}


def test_one_repair_then_the_answer() -> None:
    gateway = FakeGateway('"name": "Ada"}', '"name": "Ada", "age": 36}')
    service = ChatService(gateway)  # type: ignore[arg-type]
    completion = service.complete(request(response_format=ResponseFormat(
        "json_schema", "p", PERSON, strict=True)), "t")
    assert json.loads(completion.text) == {"name": "Ada", "age": 36}
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (20, 10)
    assert "'age' is a required property" in gateway.prompts[1]


def test_a_second_failure_is_an_error_that_bills_both_calls() -> None:
    gateway = FakeGateway("no json here", "still none")
    service = ChatService(gateway)  # type: ignore[arg-type]
    with pytest.raises(UnusableAnswerError) as caught:
        service.complete(request(response_format=ResponseFormat("json_object")), "t")
    assert caught.value.spent[0] == 30 and caught.value.spent[1] is not None
    assert len(gateway.prompts) == 2


def test_loose_tools_keep_a_call_that_does_not_fit_after_the_repair() -> None:
    bad = '{"name": "search", "parameters": {"query": "x"}}'
    gateway = FakeGateway(bad, bad)
    completion = ChatService(gateway).complete(  # type: ignore[arg-type]
        request(tools=(LOOSE,)), "t")
    assert completion.stop_reason == "tool_calls" and len(gateway.prompts) == 2
    assert json.loads(completion.tool_calls[0].arguments) == {"query": "x"}


def test_strict_tools_never_return_arguments_that_do_not_fit() -> None:
    bad = '{"name": "get_weather", "parameters": {"town": "x"}}'
    with pytest.raises(UnusableAnswerError, match="get_weather"):
        ChatService(FakeGateway(bad, bad)).complete(  # type: ignore[arg-type]
            request(tools=(WEATHER,)), "t")


@pytest.mark.parametrize("text,stops,expected", [
    ("a STOP b END", ("END", "STOP"), (2, "STOP")),
    ("a END", ("END", "STOP"), (2, "END")),
    ("a ENDING", ("ENDING", "END"), (2, "ENDING")),  # same place: the first listed
    ("a ENDING", ("END", "ENDING"), (2, "END")),
    ("nothing here", ("END",), (-1, None)),
    ("anything", (), (-1, None)),
])
def test_first_stop_names_the_sequence_it_cut_at(text: str, stops: tuple[str, ...],
                                                 expected: tuple[int, str | None]) -> None:
    from chalicelib.models.answers import first_stop
    assert first_stop(text, stops) == expected
