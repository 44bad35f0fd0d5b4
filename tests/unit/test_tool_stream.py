"""Tool calls detected in a live stream of text deltas (pure)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from chalicelib.chat import (ChatRequest, Completion, Message, StreamEnd, TextDelta, Tool,
                             ToolCall, ToolCallDelta, Usage)
from chalicelib.errors import UnusableAnswerError
from chalicelib.models.schemas import canonical
from chalicelib.models.tool_stream import completion_events, detect_calls

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
WEATHER = Tool("get_weather", "", canonical({"type": "object", "properties": {
    "city": {"type": "string"}}, "required": ["city"]}))
CALL = '{"name": "get_weather", "parameters": {"city": "Paris"}}'


def request(strict: bool = False) -> ChatRequest:
    tool = Tool(WEATHER.name, "", WEATHER.parameters, strict)
    return ChatRequest(messages=(Message("user", "q"),), model=MODEL, max_tokens=50,
                       temperature=0.5, top_p=0.9, tools=(tool,))


def run(pieces: list[str], req: ChatRequest | None = None) -> list:
    text = "".join(pieces)
    end = StreamEnd(Completion(MODEL, text, "stop", Usage(5, 7)))
    ids = iter(f"call_{i}" for i in range(9))
    return list(detect_calls(req or request(), [*map(TextDelta, pieces), end], lambda: next(ids)))


def texts(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


def test_prose_streams_through_piece_by_piece() -> None:
    events = run(["It is", " sunny", " [mostly] {today}."])
    assert texts(events) == ["It is", " sunny", " [mostly] {today}."]
    assert events[-1].completion.stop_reason == "stop"


@pytest.mark.parametrize("pieces", [
    [CALL[:10], CALL[10:30], CALL[30:]],
    ["<|python", "_tag|>", CALL],
    ["``", "`json\n", CALL, "\n```"],
    ["\n  ", CALL],
    ["<func", 'tion=get_weather>{"city": "Paris"}</function>'],
])
def test_a_call_is_held_back_and_sent_as_deltas(pieces: list[str]) -> None:
    events = run(pieces)
    assert texts(events) in ([], ["\n  "])
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert (deltas[0].index, deltas[0].id, deltas[0].name) == (0, "call_0", "get_weather")
    assert json.loads("".join(d.arguments for d in deltas)) == {"city": "Paris"}
    end = events[-1].completion
    assert end.stop_reason == "tool_calls" and end.tool_calls[0].name == "get_weather"
    assert end.usage == Usage(5, 7)


def test_prose_then_a_call_on_its_own_line() -> None:
    events = run(["Let me check.", "\n", CALL])
    assert texts(events)[0] == "Let me check."
    assert events[-1].completion.text == "Let me check."
    assert events[-1].completion.tool_calls


def test_held_json_that_is_no_call_is_sent_as_text() -> None:
    events = run(["Here:\n", '{"city": ', '"Paris"}'])
    assert "".join(texts(events)) == 'Here:\n{"city": "Paris"}'
    assert events[-1].completion.stop_reason == "stop"


def test_strict_arguments_that_do_not_fit_fail_the_stream() -> None:
    with pytest.raises(UnusableAnswerError) as caught:
        run(['{"name": "get_weather", "parameters": {"town": "x"}}'], request(strict=True))
    assert caught.value.spent[0] == 12


BAD = '{"name": "get_weather", "parameters": {"town": "x"}}'


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("prose,sent,final", [
    ("", ["Calling it."], "Calling it."),  # nothing sent yet: the repaired prose goes out
    ("Let me check.\n", ["Let me check.\n"], "Let me check."),  # sent prose stands, alone
])
def test_calls_that_do_not_fit_are_repaired_before_anything_of_them_is_sent(
        strict: bool, prose: str, sent: list[str], final: str) -> None:
    asked: list[tuple[str, str]] = []
    repaired = Completion(MODEL, "Calling it.", "tool_calls", Usage(9, 11),
                          tool_calls=(ToolCall("call_r", "get_weather", '{"city": "Oslo"}'),))

    def repair(streamed: Completion, problem: str) -> Completion:
        asked.append((streamed.text, problem))
        return repaired

    end = StreamEnd(Completion(MODEL, prose + BAD, "stop", Usage(5, 7)))
    pieces = [TextDelta(prose), TextDelta(BAD)] if prose else [TextDelta(BAD)]
    events = list(detect_calls(request(strict), [*pieces, end], repair=repair))
    ((text, problem),) = asked
    assert text == prose + BAD and "do not fit its schema" in problem and "city" in problem
    assert texts(events) == sent
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.id, d.name) for d in deltas[:1]] == [("call_r", "get_weather")]
    assert "".join(d.arguments for d in deltas) == '{"city": "Oslo"}'
    assert events[-1] == StreamEnd(dataclasses.replace(repaired, text=final))


def test_a_failed_repair_fails_the_stream() -> None:
    def repair(streamed: Completion, problem: str) -> Completion:
        raise UnusableAnswerError("still wrong", spent=(30, None))

    with pytest.raises(UnusableAnswerError):
        run_events = [TextDelta(BAD), StreamEnd(Completion(MODEL, BAD, "stop", Usage(5, 7)))]
        list(detect_calls(request(strict=True), run_events, repair=repair))


def test_a_finished_completion_as_events() -> None:
    completion = Completion(MODEL, "", "tool_calls", Usage(1, 1),
                            tool_calls=(ToolCall("call_9", "get_weather", '{"city": "Rome"}'),))
    events = list(completion_events(completion))
    assert events[0] == ToolCallDelta(0, id="call_9", name="get_weather")
    assert events[1] == ToolCallDelta(0, arguments='{"city": "Rome"}')
    assert events[-1] == StreamEnd(completion)
