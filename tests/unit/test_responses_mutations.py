"""Any Responses body a careless client can derive from a valid one is served
or refused with an ApiError (a 4xx in the envelope), never another exception:
as tests/unit/test_request_mutations.py does for the chat shapes, through the
parser, the join of items into turns, the reservation, the Llama prompt and
body, the Converse request, and the rendering of an answer."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from chalicelib.chat import Completion, ToolCall, Usage
from chalicelib.config import Settings
from chalicelib.errors import ApiError
from chalicelib.models import converse
from chalicelib.models.prompting import render
from chalicelib.models.registry import adapter_for
from chalicelib.tenancy.limits import reservation_size
from chalicelib.wire.response_object import completed
from chalicelib.wire.responses import chat_request, parse_responses_body
from tests.unit.test_request_mutations import VALUES, replace

LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SETTINGS = dataclasses.replace(Settings(), allowed_models=(LLAMA, CLAUDE))
PATHS = st.lists(st.sampled_from([
    "input", 0, 1, 2, 3, 4, 5, "content", "type", "role", "text", "call_id", "name", "arguments",
    "output", "id", "input", "tools", "parameters", "properties", "format", "definition",
    "tool_choice", "mode", "text", "format", "schema", "strict", "instructions",
    "max_output_tokens", "reasoning", "effort", "include", "metadata", "store", "model",
    "previous_response_id", "temperature", "truncation"]), min_size=1, max_size=5)


def valid() -> dict[str, Any]:
    parameters = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    return {
        "model": LLAMA, "instructions": "Be brief.", "max_output_tokens": 100,
        "input": [{"role": "developer", "content": "d"},
                  {"role": "user", "content": [{"type": "input_text", "text": "u"}]},
                  {"type": "reasoning", "id": "rs_1", "summary": []},
                  {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "c1", "output": "r"},
                  {"type": "message", "role": "assistant",
                   "content": [{"type": "output_text", "text": "ok", "annotations": []}]},
                  {"role": "user", "content": "again"}],
        "tools": [{"type": "function", "name": "f", "parameters": parameters, "strict": False},
                  {"type": "custom", "name": "patch", "format": {
                      "type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
                  {"type": "web_search"}],
        "tool_choice": "auto", "text": {"format": {"type": "text"}},
        "reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"],
        "metadata": {"k": "v"}, "store": False}


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.booleans(), st.lists(st.tuples(PATHS, VALUES), min_size=1, max_size=3))
def test_a_mutated_responses_body_is_served_or_refused(claude: bool,
                                                       changes: list[tuple[list[Any], Any]]) -> None:
    body = valid()
    if claude:
        body["model"] = CLAUDE
    for path, value in changes:
        replace(body, path, value)
    body = json.loads(json.dumps(body))
    try:
        call = parse_responses_body(body, SETTINGS)
        request = chat_request(call, call.items, SETTINGS)
        reservation_size(request)
        if request.model == LLAMA:
            render(request)
            adapter_for(request.model).build_body(request)
        else:
            converse.build_request(request)
        answer = Completion(request.model, "text", "stop", Usage(1, 1),
                            tuple(ToolCall("call_1", t.name, "{}") for t in request.tools))
        json.dumps(completed(call, "resp_x", 0, answer))
    except ApiError:
        pass
