"""The endpoint's Llama 3.1 prompt format for tools and JSON, rendered by hand
from its contract (the lead's FORMAT.md), with example tools and schemas: what
the emulator's tests feed it. Independent of chalicelib's own renderer on
purpose, so that a drift on either side shows.
"""
from __future__ import annotations

import json
from typing import Any

from chalicelib.models.llama import format_message

TOOLS_INTRO = ("Given the following functions, please respond with a JSON for a function call "
               "with its proper arguments that best answers the given prompt.")
FORMAT_LINE = ('Respond in the format {"name": function name, "parameters": dictionary of '
               'argument name and its value}. Do not use variables.')
AUTO_LINE = "If none of the functions fits, answer the user in plain text instead."
JSON_OBJECT = "Respond with a single JSON object and nothing else: no prose, no code fences."
JSON_SCHEMA = ("Respond with a single JSON document and nothing else: no prose, no code fences. "
               "It must be valid against this JSON Schema:\n")

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "unit"], "additionalProperties": False}}}
FLIGHT = {"type": "function", "function": {
    "name": "book_flight", "description": "Book a flight for a passenger",
    "parameters": {
        "type": "object",
        "$defs": {"passenger": {"type": "object", "properties": {
            "name": {"type": "string", "minLength": 1},
            "email": {"type": "string", "format": "email"},
            "seat": {"enum": ["aisle", "window", None]}},
            "required": ["name", "email", "seat"], "additionalProperties": False}},
        "properties": {
            "destination": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "passengers": {"type": "array", "items": {"$ref": "#/$defs/passenger"},
                           "minItems": 1, "maxItems": 3},
            "options": {"type": "object", "properties": {
                "class": {"const": "economy"},
                "bags": {"type": "integer", "minimum": 0, "exclusiveMaximum": 3}},
                "required": ["class", "bags"]}},
        "required": ["destination", "date", "passengers", "options"]}}}
TOOLS = [WEATHER, FLIGHT]
PERSON = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    "address": {"$ref": "#/definitions/address"}},
    "required": ["name", "age", "address"], "additionalProperties": False,
    "definitions": {"address": {"type": "object", "properties": {
        "city": {"type": "string"}, "zip": {"type": ["string", "null"], "maxLength": 10}},
        "required": ["city", "zip"]}}}


def render(messages: list[tuple[str, str]], *, tools: list[dict] | None = None,
           auto: bool = False, system: str = "", schema: Any = None,
           json_object: bool = False, prefill: str = "") -> str:
    """A prompt as the endpoint renders it (FORMAT.md)."""
    system_text = ("Environment: ipython\n\n" if tools else "") + system
    if json_object:
        system_text += "\n\n" + JSON_OBJECT
    if schema is not None:
        system_text += "\n\n" + JSON_SCHEMA + json.dumps(schema, ensure_ascii=False)
    prompt = "<|begin_of_text|>"
    if system_text.strip():
        prompt += format_message("system", system_text)
    offered = False
    for role, content in messages:
        if role == "user" and tools and not offered:
            offered = True
            head = TOOLS_INTRO + "\n\n" + FORMAT_LINE + ("\n" + AUTO_LINE if auto else "")
            defs = "\n\n".join(json.dumps(t, indent=4, ensure_ascii=False) for t in tools)
            content = f"{head}\n\n{defs}\n\n{content}"
        prompt += format_message(role, content)
    return prompt + "<|start_header_id|>assistant<|end_header_id|>\n\n" + prefill
