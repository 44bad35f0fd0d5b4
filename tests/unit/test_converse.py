"""Converse both ways (pure): ChatRequest -> Converse arguments, Converse answers
and ConverseStream events -> completions, and the embeddings wire shape."""
from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from chalicelib.chat import (ChatRequest, Message, ResponseFormat, StreamEnd, TextDelta, Tool,
                             ToolCall, ToolCallDelta, ToolChoice, Usage)
from chalicelib.models.converse import build_request, parse_response, shape_answer, stream_events
from chalicelib.models.embeddings import (build_bodies, encode, input_tokens, parse_request,
                                          parse_vectors)
from chalicelib.errors import InvalidRequestError, UpstreamError
from chalicelib.models.registry import check_capabilities

CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA = "amazon.nova-pro-v1:0"
MISTRAL = "mistral.mistral-large-2407-v1:0"
TOOL = Tool("get_weather", "Weather.", '{"type":"object","properties":{"city":{"type":"string"}}}')
CALL = ToolCall("tooluse_1", "get_weather", '{"city": "Paris"}')


def request(*messages: Message, model: str = NOVA, **fields: Any) -> ChatRequest:
    return ChatRequest(messages=messages, model=model, max_tokens=100, temperature=0.5,
                       top_p=0.9, **fields)


@pytest.mark.parametrize("messages, expected", [
    ((Message("user", "a"), Message("user", "b")),
     [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}]),
    ((Message("assistant", "hello"), Message("user", "hi")),
     [{"role": "user", "content": [{"text": "Please begin."}]},
      {"role": "assistant", "content": [{"text": "hello"}]},
      {"role": "user", "content": [{"text": "hi"}]}]),
    ((Message("user", "q"), Message("assistant", "", tool_calls=(CALL,)),
      Message("tool", "sunny", tool_call_id="tooluse_1"), Message("user", "thanks")),
     [{"role": "user", "content": [{"text": "q"}]},
      {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1",
                                                     "name": "get_weather",
                                                     "input": {"city": "Paris"}}}]},
      {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1",
                                                   "content": [{"text": "sunny"}]}},
                                   {"text": "thanks"}]}]),
    ((Message("user", "q"), Message("assistant", "Sure,  ")),
     [{"role": "user", "content": [{"text": "q"}]},
      {"role": "assistant", "content": [{"text": "Sure,"}]}]),
])
def test_turns(messages: tuple[Message, ...], expected: list[dict[str, Any]]) -> None:
    assert build_request(request(*messages, tools=(TOOL,)))["messages"] == expected


@pytest.mark.parametrize("model, choice, expected", [
    (NOVA, ToolChoice("auto"), {"auto": {}}),
    (NOVA, ToolChoice("required"), {"any": {}}),
    (CLAUDE, ToolChoice("function", "get_weather"), {"tool": {"name": "get_weather"}}),
    (MISTRAL, ToolChoice("auto"), None),
])
def test_tool_choice(model: str, choice: ToolChoice, expected: Any) -> None:
    body = build_request(request(Message("user", "q"), model=model, tools=(TOOL,),
                                 tool_choice=choice))
    assert body["toolConfig"]["tools"][0]["toolSpec"] == {
        "name": "get_weather", "description": "Weather.",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    assert body["toolConfig"].get("toolChoice") == expected


def test_tool_choice_none_sends_no_tools_and_replays_history_as_text() -> None:
    body = build_request(request(Message("user", "q"), Message("assistant", "", tool_calls=(CALL,)),
                                 Message("tool", "sunny", tool_call_id="tooluse_1"),
                                 tools=(TOOL,), tool_choice=ToolChoice("none")))
    assert "toolConfig" not in body
    assert all("text" in block for turn in body["messages"] for block in turn["content"])


def test_system_inference_config_and_json_instruction() -> None:
    body = build_request(request(Message("system", "Be brief."), Message("user", "q"),
                                 model=CLAUDE, stop=("END",),
                                 response_format=ResponseFormat("json_object")))
    assert body["system"][0] == {"text": "Be brief."}
    assert "single JSON object" in body["system"][1]["text"]
    assert body["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5,
                                       "stopSequences": ["END"]}  # Claude 4.5: no topP


@pytest.mark.parametrize("reason, finish", [("end_turn", "stop"), ("stop_sequence", "stop"),
                                            ("max_tokens", "length"), ("tool_use", "tool_calls"),
                                            ("content_filtered", "content_filter")])
def test_parse_response(reason: str, finish: str) -> None:
    answer = parse_response({"output": {"message": {"role": "assistant", "content": [
        {"text": "Hi "}, {"toolUse": {"toolUseId": "tooluse_9", "name": "get_weather",
                                      "input": {"city": "Oslo"}}}]}},
        "stopReason": reason, "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}})
    assert (answer.text, answer.stop_reason, answer.usage) == ("Hi ", finish, Usage(7, 3))
    assert answer.tool_calls == (ToolCall("tooluse_9", "get_weather", '{"city": "Oslo"}'),)


@pytest.mark.parametrize("payload", [
    {}, {"output": {}}, {"output": {"message": {"content": []}}, "stopReason": "end_turn"}])
def test_malformed_answers_are_upstream_errors(payload: Any) -> None:
    with pytest.raises(UpstreamError):
        parse_response(payload)


def test_strict_tool_arguments_are_checked() -> None:
    strict = Tool("get_weather", "", '{"type":"object","properties":{"city":{"type":"string"}},'
                  '"required":["city"]}', strict=True)
    answer = parse_response({"output": {"message": {"content": [
        {"toolUse": {"toolUseId": "t", "name": "get_weather", "input": {}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 1, "outputTokens": 1}})
    shaped = shape_answer(request(Message("user", "q"), tools=(strict,)), answer)
    assert shaped.fatal and "city" in (shaped.problem or "")


def test_stream_events() -> None:
    events = [{"messageStart": {"role": "assistant"}},
              {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Let me"}}},
              {"contentBlockStop": {"contentBlockIndex": 0}},
              {"contentBlockStart": {"contentBlockIndex": 1, "start": {"toolUse": {
                  "toolUseId": "tooluse_2", "name": "get_weather"}}}},
              {"contentBlockDelta": {"contentBlockIndex": 1,
                                     "delta": {"toolUse": {"input": '{"city": '}}}},
              {"contentBlockDelta": {"contentBlockIndex": 1,
                                     "delta": {"toolUse": {"input": '"Rome"}'}}}},
              {"messageStop": {"stopReason": "tool_use"}},
              {"metadata": {"usage": {"inputTokens": 5, "outputTokens": 9}}}]
    out = list(stream_events(events, request(Message("user", "q"), tools=(TOOL,))))
    assert out[:4] == [TextDelta("Let me"), ToolCallDelta(0, "", "tooluse_2", "get_weather"),
                       ToolCallDelta(0, '{"city": '), ToolCallDelta(0, '"Rome"}')]
    end = out[-1]
    assert isinstance(end, StreamEnd) and end.completion.stop_reason == "tool_calls"
    assert end.completion.tool_calls == (ToolCall("tooluse_2", "get_weather", '{"city": "Rome"}'),)
    assert end.completion.usage == Usage(5, 9)
    with pytest.raises(UpstreamError):
        list(stream_events(events[:3], request(Message("user", "q"))))


@pytest.mark.parametrize("model, fields", [
    ("us.deepseek.r1-v1:0", {"tools": (TOOL,)}),
    (MISTRAL, {"tools": (TOOL,), "tool_choice": ToolChoice("required")}),
    ("amazon.titan-embed-text-v2:0", {}),
])
def test_capabilities(model: str, fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match=model.replace(".", r"\.")):
        check_capabilities(request(Message("user", "q"), model=model, **fields))


# --- embeddings wire

ALLOWED = ("amazon.titan-embed-text-v2:0", "cohere.embed-english-v3")


def test_embedding_bodies() -> None:
    titan = parse_request({"model": ALLOWED[0], "input": ["a", "b"], "dimensions": 512}, ALLOWED)
    assert build_bodies(titan) == [{"inputText": "a", "dimensions": 512, "normalize": True},
                                   {"inputText": "b", "dimensions": 512, "normalize": True}]
    cohere = parse_request({"model": ALLOWED[1], "input": "one"}, ALLOWED)
    assert build_bodies(cohere) == [{"texts": ["one"], "input_type": "search_document"}]


def test_vectors_tokens_and_base64() -> None:
    assert parse_vectors("titan-embed", {"embedding": [0.1, 0.2]}, 2) == [
        struct.unpack("<2f", struct.pack("<2f", 0.1, 0.2))]
    assert len(parse_vectors("cohere-embed", {"embeddings": {"float": [[1, 0], [0, 1]]}}, 2)) == 2
    with pytest.raises(UpstreamError):
        parse_vectors("titan-embed", {"embedding": [0.1]}, 2)
    assert input_tokens({"x-amzn-bedrock-input-token-count": "12"}, {}) == 12
    assert input_tokens({}, {"inputTextTokenCount": 4}) == 4
    raw = base64.b64decode(encode((0.5, -1.0), "base64"))
    assert struct.unpack("<2f", raw) == (0.5, -1.0)


def test_a_blank_tool_result_is_not_a_blank_text_block() -> None:
    body = build_request(request(Message("user", "q"), Message("assistant", "", tool_calls=(CALL,)),
                                 Message("tool", "  ", tool_call_id="tooluse_1"), tools=(TOOL,)))
    assert body["messages"][-1]["content"][0]["toolResult"]["content"] == [{"text": "(empty)"}]


@pytest.mark.parametrize("reason,fields,stops,expected", [
    ("stop_sequence", {"stop_sequence": "B"}, ("A", "B"), "B"),
    ("stop_sequence", None, ("A",), "A"),  # the only one sent
    ("stop_sequence", None, ("A", "B"), None),  # cannot be known
    ("stop_sequence", {"stop_sequence": "C"}, ("A", "B"), None),  # not one we sent
    ("stop_sequence", {"stop_sequence": 3}, ("A",), "A"),
    ("end_turn", {"stop_sequence": None}, ("A",), None),
    ("max_tokens", None, ("A",), None),
])
def test_which_stop_sequence_ended_a_converse_answer(reason: str, fields: Any,
                                                     stops: tuple[str, ...],
                                                     expected: str | None) -> None:
    from chalicelib.models.converse import matched_stop
    assert matched_stop(reason, fields, stops) == expected
