"""Reading calls out of what Llama really emits (table-driven, pure)."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.models.tool_parser import ParsedCall, parse

NAMES = ("get_weather", "search")
W = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
S = '{"name": "search", "parameters": {"q": "llamas"}}'
PARIS = ParsedCall("get_weather", {"city": "Paris"})
LLAMAS = ParsedCall("search", {"q": "llamas"})

CASES: list[tuple[str, str, str, tuple[ParsedCall, ...]]] = [
    ("bare JSON", W, "", (PARIS,)),
    ("arguments instead of parameters",
     '{"name": "get_weather", "arguments": {"city": "Paris"}}', "", (PARIS,)),
    ("arguments as JSON text",
     '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}', "", (PARIS,)),
    ("type function, flat", '{"type": "function", "name": "get_weather", '
     '"parameters": {"city": "Paris"}}', "", (PARIS,)),
    ("type function, nested (OpenAI)", '{"type": "function", "function": {"name": "get_weather", '
     '"arguments": {"city": "Paris"}}}', "", (PARIS,)),
    ("python tag", "<|python_tag|>" + W, "", (PARIS,)),
    ("python tag and eom", "<|python_tag|>" + W + "<|eom_id|>", "", (PARIS,)),
    ("function tag", '<function=get_weather>{"city": "Paris"}</function>', "", (PARIS,)),
    ("function tag unclosed", '<function=get_weather>{"city": "Paris"}', "", (PARIS,)),
    ("two calls with ;", f"{W}; {S}", "", (PARIS, LLAMAS)),
    ("two calls on lines", f"{W}\n{S}", "", (PARIS, LLAMAS)),
    ("a list of calls", f"[{W}, {S}]", "", (PARIS, LLAMAS)),
    ("code fence", f"```json\n{W}\n```", "", (PARIS,)),
    ("bare code fence", f"```\n{W}\n```", "", (PARIS,)),
    ("prose around", f"Let me look that up.\n{W}\nOne moment.", "Let me look that up.\nOne moment.",
     (PARIS,)),
    ("prose and a fence", f"Sure:\n```json\n{W}\n```", "Sure:", (PARIS,)),
    ("flattened arguments", '{"name": "get_weather", "city": "Paris"}', "", (PARIS,)),
    ("no arguments", '{"name": "search"}', "", (ParsedCall("search", {}),)),
    ("unknown tool stays text", '{"name": "launch", "parameters": {}}',
     '{"name": "launch", "parameters": {}}', ()),
    ("a list with an unknown tool stays text", f'[{W}, {{"name": "x", "parameters": {{}}}}]',
     f'[{W}, {{"name": "x", "parameters": {{}}}}]', ()),
    ("unknown function tag stays text", "<function=launch>{}</function>",
     "<function=launch>{}</function>", ()),
    ("prose stays text", "It is sunny in Paris; enjoy!", "It is sunny in Paris; enjoy!", ()),
    ("plain JSON stays text", '{"city": "Paris"}', '{"city": "Paris"}', ()),
    ("a call nested in other JSON stays text", '{"answer": ' + W + '}', '{"answer": ' + W + '}', ()),
    ("broken JSON stays text", '{"name": "get_weather", "parameters": {"city": "Pa',
     '{"name": "get_weather", "parameters": {"city": "Pa', ()),
    ("deep nesting", "[" * 5000, "[" * 5000, ()),
]


@pytest.mark.parametrize("text,content,calls", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_shapes(text: str, content: str, calls: tuple[ParsedCall, ...]) -> None:
    answer = parse(text, NAMES)
    assert (answer.content, answer.calls) == (content, calls)


def test_no_tools_means_no_calls() -> None:
    assert parse(W, ()).calls == ()


@pytest.mark.parametrize("arguments", ['"not json', "[1, 2]", "3"])
def test_odd_arguments_are_kept_for_the_schema_check(arguments: Any) -> None:
    text = '{"name": "search", "arguments": ' + ('"\\"not json"' if arguments == '"not json'
                                                 else arguments) + "}"
    (call,) = parse(text, NAMES).calls
    assert call.name == "search" and not isinstance(call.arguments, dict)
