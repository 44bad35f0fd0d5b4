"""wire/responses.py and wire/response_object.py: a Responses body -> the one
ChatRequest, and a Completion -> OpenAI's response object (pure, table-driven);
Codex CLI's recorded request (tests/fixtures/codex_request.json) parses."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.chat import Completion, Message, ToolCall, Usage
from chalicelib.config import Settings
from chalicelib.errors import InvalidRequestError
from chalicelib.wire.response_object import ItemIds, completed, output_items
from chalicelib.wire.responses import (CUSTOM_PARAMETERS, chat_request, items_to_messages,
                                       parse_responses_body)

SETTINGS = Settings()
MODEL = SETTINGS.default_model
CODEX = Path(__file__).resolve().parents[1] / "fixtures" / "codex_request.json"
FN = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


def request(body: dict[str, Any]) -> Any:
    call = parse_responses_body({"model": MODEL, **body}, SETTINGS)
    return call, chat_request(call, call.items, SETTINGS)


def test_codex_cli_request_parses_with_hosted_tools_left_out() -> None:
    body = json.loads(CODEX.read_text())
    assert len(CODEX.read_bytes()) > 30_000 and body["store"] is False
    call, chat = request({**body, "model": MODEL})
    kinds = {tool["type"] for tool in body["tools"]}
    assert {"function", "namespace", "web_search"} <= kinds
    assert {t.name for t in chat.tools} == {t["name"] for t in body["tools"]
                                            if t["type"] == "function"}
    assert call.stream and not call.store and call.echo["prompt_cache_key"]
    assert chat.messages[0].role == "system"  # developer messages join the system turn
    assert chat.messages[-1].role == "user"
    assert all(not t.strict for t in chat.tools)  # Codex sends strict: false


@pytest.mark.parametrize("body, expected", [
    ({"input": "Hi"}, [Message("user", "Hi")]),
    ({"input": "Hi", "instructions": "Be brief."}, [Message("system", "Be brief."),
                                                    Message("user", "Hi")]),
    ({"input": [{"role": "developer", "content": "A"}, {"role": "system", "content": "B"},
                {"role": "user", "content": [{"type": "input_text", "text": "x"},
                                             {"type": "input_text", "text": "y"}]}],
      "instructions": "I"}, [Message("system", "I\n\nA\n\nB"), Message("user", "x\ny")]),
    ({"input": [{"role": "user", "content": "q"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "z"},
                {"type": "message", "role": "assistant", "id": "msg_1",
                 "content": [{"type": "output_text", "text": "let me look",
                              "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
                 "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "done"}],
      "tools": [FN]},
     [Message("user", "q"),
      Message("assistant", "let me look", tool_calls=(ToolCall("call_1", "f", "{}"),)),
      Message("tool", "done", tool_call_id="call_1")]),
])
def test_items_become_turns(body: dict[str, Any], expected: list[Message]) -> None:
    _, chat = request(body)
    assert list(chat.messages) == expected


def test_custom_tools_are_one_string_argument_and_answer_as_custom_calls() -> None:
    grammar = {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}
    call, chat = request({"input": "patch it", "tools": [
        {"type": "custom", "name": "apply_patch", "description": "Edit files.",
         "format": grammar}], "tool_choice": {"type": "custom", "name": "apply_patch"}})
    (tool,) = chat.tools
    assert tool.parameters == CUSTOM_PARAMETERS and "start: /.+/" in tool.description
    assert chat.tool_choice.mode == "function" and call.custom_tools == {"apply_patch"}
    answer = Completion(MODEL, "", "tool_calls", Usage(3, 4),
                        (ToolCall("call_9", "apply_patch", '{"input": "*** Begin Patch"}'),))
    (item,) = output_items(answer, call.custom_tools, ItemIds())
    assert item["type"] == "custom_tool_call" and item["input"] == "*** Begin Patch"
    assert item["id"].startswith("ctc_") and item["call_id"] == "call_9"
    replayed = items_to_messages(({"type": "custom_tool_call", "id": "ctc_1", "call_id": "c",
                                   "name": "apply_patch", "input": "*** Begin Patch"},))
    assert json.loads(replayed[0].tool_calls[0].arguments) == {"input": "*** Begin Patch"}


@pytest.mark.parametrize("fmt, kind", [
    ({"type": "text"}, "text"), ({"type": "json_object"}, "json_object"),
    ({"type": "json_schema", "name": "city", "strict": True,
      "schema": {"type": "object", "properties": {"name": {"type": "string"}},
                 "required": ["name"], "additionalProperties": False}}, "json_schema")])
def test_text_format_is_the_response_format(fmt: dict[str, Any], kind: str) -> None:
    _, chat = request({"input": "Hi", "text": {"format": fmt, "verbosity": "medium"}})
    assert chat.response_format.type == kind


@pytest.mark.parametrize("body, param", [
    ({"input": "Hi", "seed": 1}, "seed"),
    ({"input": None}, "input"),
    ({"input": 3}, "input"),
    ({"input": [{"type": "input_image"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input[0].content[0].type"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "Hi", "temperature": 2.5}, "temperature"),
    ({"input": "Hi", "tools": [{"type": "teleport"}]}, "tools[0].type"),
    ({"input": "Hi", "tools": [FN, FN]}, "tools[1]"),
    ({"input": "Hi", "tool_choice": "required"}, "tool_choice"),
    ({"input": "Hi", "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"input": "Hi", "tool_choice": {"type": "function", "name": "g"}, "tools": [FN]},
     "tool_choice.name"),
    ({"input": "Hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"input": "Hi", "reasoning": {"effort": "maximal"}}, "reasoning.effort"),
    ({"input": "Hi", "top_logprobs": 3}, "top_logprobs"),
    ({"input": "Hi", "conversation": "conv_1"}, "conversation"),
    ({"input": "Hi", "background": True, "store": False}, "background"),
    ({"input": "Hi", "stream_options": {"include_obfuscation": False}}, "stream_options"),
    ({"input": "Hi", "include": "x"}, "include"),
    ({"input": "Hi", "truncation": "sometimes"}, "truncation"),
    ({"input": "Hi", "metadata": {"a": 1}}, "metadata"),
    ({"input": "Hi", "previous_response_id": 5}, "previous_response_id"),
    ({"input": [{"type": "function_call_output", "call_id": "nobody", "output": "x"}]},
     "input"),
    ({"input": [{"role": "user", "content": "q"}, {"type": "function_call", "call_id": "c",
                                                   "name": "f", "arguments": "{}"}],
      "tools": [FN]}, "input"),
])
def test_what_cannot_be_honoured_names_its_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        request(body)
    assert raised.value.param == param


def test_the_response_object_is_openais() -> None:
    call, _ = request({"input": "Hi", "max_output_tokens": 5, "metadata": {"k": "v"},
                       "temperature": 0.4})
    cut = Completion(MODEL, "Hel", "length", Usage(7, 5))
    body = completed(call, "resp_1", 100, cut)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"
    assert body["usage"] == {"input_tokens": 7, "input_tokens_details": {"cached_tokens": 0},
                             "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                             "total_tokens": 12, "cost_usd": None}
    assert body["temperature"] == 0.4 and body["max_output_tokens"] == 5
    assert body["metadata"] == {"k": "v"}
    only_calls = Completion(MODEL, "", "tool_calls", Usage(1, 1), (ToolCall("call_1", "f", "{}"),))
    (item,) = completed(call, "resp_2", 100, only_calls)["output"]
    assert item["type"] == "function_call" and item["id"].startswith("fc_")
