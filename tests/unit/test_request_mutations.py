"""Any request a careless client can derive from a valid one is either served
or refused with an ApiError (a 4xx in the envelope), never another exception
(a 500): valid requests of both shapes, with up to three of their parts
replaced by arbitrary JSON, through everything that runs before Bedrock
(parsing, the reservation, the Llama prompt and body, the Converse request)
and after it (reading an answer). 30,000 examples found nothing once the
deep-nesting class was fixed (test_jsontext, functional/test_adversarial);
this keeps the class covered."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from chalicelib.config import Settings
from chalicelib.errors import ApiError
from chalicelib.models import converse
from chalicelib.models.answers import shape
from chalicelib.models.prompting import render
from chalicelib.models.registry import adapter_for
from chalicelib.tenancy.limits import reservation_size
from chalicelib.wire.native import parse_chat_request
from chalicelib.wire.openai import parse_openai_request

LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SETTINGS = dataclasses.replace(Settings(), allowed_models=(LLAMA, CLAUDE))

SCALARS = (st.none() | st.booleans() | st.integers(-3, 3000)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(["", " ", "x", "auto", "none", "required", "function", "text",
                              "json_object", "json_schema", "f", "g", "c1", "{}", "[]",
                              '{"a": 1}', "<|eot_id|>", "\x00", "object", "string", "#",
                              "#/$defs/a"]))
KEYS = st.sampled_from(["type", "function", "name", "description", "parameters", "strict",
                        "properties", "required", "items", "$ref", "$defs", "enum", "id",
                        "arguments", "schema", "mode", "tools", "additionalProperties", "anyOf",
                        "pattern", "format", "const", "a", "prefixItems", "not", "minItems"])
VALUES = st.recursive(SCALARS, lambda inner: (st.lists(inner, max_size=3)
                                              | st.dictionaries(KEYS, inner, max_size=4)),
                      max_leaves=10)
PATHS = st.lists(st.sampled_from([
    "messages", 0, 1, 2, 3, 4, "content", "tool_calls", "function", "arguments", "name", "id",
    "tool_call_id", "role", "tools", "parameters", "properties", "a", "type", "required",
    "tool_choice", "response_format", "json_schema", "schema", "stop", "max_tokens", "model",
    "description", "strict"]), min_size=1, max_size=6)
ANSWERS = st.text(max_size=60) | st.sampled_from([
    '{"name": "f", "parameters": {"a": 1}}', '<function=f>{"a": "x"}</function>',
    '[{"name": "f", "arguments": "{}"}]', '{"a": "x"}', '```json\n{"a": 1}\n```'])


def valid(openai: bool) -> dict[str, Any]:
    parameters = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    function = {"name": "f", "description": "d", "parameters": parameters}
    call = ({"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": "x"}'}}
            if openai else {"id": "c1", "name": "f", "arguments": {"a": "x"}})
    body: dict[str, Any] = {
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                     {"role": "assistant", "content": None if openai else "",
                      "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "c1", "content": "r"},
                     {"role": "user", "content": "again"}],
        "tools": [{"type": "function", "function": function} if openai else function],
        "tool_choice": "auto", "response_format": {"type": "text"}, "max_tokens": 100,
        "stop": ["x"]}
    return {"model": LLAMA, **body} if openai else body


def replace(body: Any, path: list[Any], value: Any) -> None:
    node = body
    for key in path[:-1]:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.booleans(), st.booleans(), st.lists(st.tuples(PATHS, VALUES), min_size=1, max_size=3),
       ANSWERS)
def test_a_mutated_request_is_served_or_refused(openai: bool, claude: bool,
                                                changes: list[tuple[list[Any], Any]],
                                                answer: str) -> None:
    body = valid(openai)
    if openai and claude:
        body["model"] = CLAUDE
    for path, value in changes:
        replace(body, path, value)
    body = json.loads(json.dumps(body))  # what a client can send
    try:
        request = (parse_openai_request(body, SETTINGS)[0] if openai
                   else parse_chat_request(body, SETTINGS))
        reservation_size(request)
        if request.model == LLAMA:
            prompt = render(request)
            adapter_for(request.model).build_body(request)
            shape(request, prompt, answer, "stop")
        else:
            converse.build_request(request)
    except ApiError:
        pass  # a 4xx in the envelope: what a bad request should get
