"""A ChatRequest as one Llama 3.1 prompt: tools, tool results, JSON formats, prefill (pure).

Tools use the JSON format of Meta's Llama 3.1 custom tool calling, as the
Hugging Face chat template of Llama-3.1-8B-Instruct writes it (SPEC.md, "Llama
3.1 tool calling"): ``Environment: ipython`` in the system turn, the function
definitions at the head of the first user turn, earlier calls replayed as
``{"name": ..., "parameters": ...}`` and results in ``ipython`` turns. It was
chosen over the ``<function=...>`` tag format because it is the format that
the model is most often served with (the template that vLLM, TGI and Ollama
apply), because a forced call is a plain JSON prefix the model continues
(``{"name": "get_weather", "parameters": ``), and because calls and JSON
answers then share one parser.

Every string a client controls (message content, tool names, descriptions,
schemas, replayed arguments, tool results) goes through ``neutralise`` so
that the only special tokens in the prompt are the ones placed here.

``response_format`` adds an instruction (and the schema) to the system turn,
and the assistant turn is prefilled with ``{`` where the answer must be an
object. A conversation that ends with an assistant message leaves that turn
open: the model continues it.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from chalicelib import jsontext
from chalicelib.chat import ChatRequest, Message, Tool, ToolCall
from chalicelib.models.llama import BEGIN_OF_TEXT, END_HEADER, START_HEADER, format_message, neutralise

TOOLS_PREAMBLE = (
    "Given the following functions, please respond with a JSON for a function call with its "
    "proper arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument name '
    'and its value}. Do not use variables.')
AUTO_HINT = "If none of the functions fits, answer the user in plain text instead."
ENVIRONMENT = "Environment: ipython"
JSON_OBJECT_INSTRUCTION = ("Respond with a single JSON object and nothing else: no prose, "
                           "no code fences.")
JSON_SCHEMA_INSTRUCTION = ("Respond with a single JSON document and nothing else: no prose, "
                           "no code fences. It must be valid against this JSON Schema:\n")


@dataclass(frozen=True)
class Prompt:
    """The prompt, and how to read the generation that follows it.

    ``prefix`` is text the endpoint prefilled for its own purposes (a forced
    call, an opening brace): the answer is ``prefix + generation``. A client's
    own prefill (the conversation ended with an assistant message) is not
    repeated: the answer is the continuation only.
    """

    text: str
    prefix: str = ""


def offers_tools(request: ChatRequest) -> bool:
    return bool(request.tools) and request.tool_choice.mode != "none"


def _tool_json(tool: Tool) -> str:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = json.loads(tool.parameters)
    return json.dumps({"type": "function", "function": function}, indent=4, ensure_ascii=False)


def _call_json(call: ToolCall) -> str:
    try:
        arguments: Any = jsontext.loads(call.arguments)
    except ValueError:
        arguments = call.arguments  # replayed as the client sent it
    return json.dumps({"name": call.name, "parameters": arguments}, ensure_ascii=False)


def _tools_block(request: ChatRequest) -> str:
    parts = [TOOLS_PREAMBLE]
    if request.tool_choice.mode == "auto":
        parts[0] += "\n" + AUTO_HINT
    parts += [_tool_json(tool) for tool in request.tools]
    return "\n\n".join(parts)


def format_instruction(request: ChatRequest) -> str:
    """What the system prompt says about a JSON response format ("" for text);
    Converse models get the same words (converse.py)."""
    fmt = request.response_format
    if fmt.type == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if fmt.type == "json_schema" and fmt.schema is not None:
        return JSON_SCHEMA_INSTRUCTION + fmt.schema
    return ""


def _object_schema(schema_text: str | None) -> bool:
    if schema_text is None:
        return False
    schema = json.loads(schema_text)
    return isinstance(schema, dict) and schema.get("type") == "object"


def _prefix(request: ChatRequest) -> str:
    if offers_tools(request):
        choice = request.tool_choice
        if choice.mode == "required":
            return '{"name": "'
        if choice.mode == "function":
            return json.dumps({"name": choice.name})[:-1] + ', "parameters": '
        return ""
    fmt = request.response_format
    if fmt.type == "json_object" or (fmt.type == "json_schema" and _object_schema(fmt.schema)):
        return "{"
    return ""


def _system_turn(leading: list[Message], request: ChatRequest) -> str:
    parts = [ENVIRONMENT] if offers_tools(request) else []
    parts += [m.content.strip() for m in leading]
    instruction = format_instruction(request)
    if instruction:
        parts.append(instruction)
    return format_message("system", "\n\n".join(p for p in parts if p)) if parts else ""


def _turn(message: Message) -> str:
    if message.role == "tool":
        return format_message("ipython", message.content)
    if message.role == "assistant" and message.tool_calls:
        calls = "\n".join(_call_json(call) for call in message.tool_calls)
        text = message.content.strip()
        return format_message("assistant", f"{text}\n\n{calls}" if text else calls)
    return format_message(message.role, message.content)


def may_repair(request: ChatRequest) -> bool:
    """Whether an answer may need a second attempt (answers.repair_request)."""
    return offers_tools(request) or request.response_format.type != "text"


# Requests are frozen and hashable: the body builder, the answer reader and
# the limiter all ask for the same request's prompt; it is built once.
@functools.lru_cache(maxsize=32)
def render(request: ChatRequest) -> Prompt:
    """The whole prompt, ending inside the open assistant turn."""
    messages = list(request.messages)
    leading: list[Message] = []
    while messages and messages[0].role == "system":
        leading.append(messages.pop(0))
    continuation = ""
    if messages and messages[-1].role == "assistant" and not messages[-1].tool_calls:
        continuation = neutralise(messages.pop().content.lstrip())
    turns = [_system_turn(leading, request)]
    tools_pending = offers_tools(request)
    for message in messages:
        if tools_pending and message.role == "user":
            tools_pending = False
            message = Message("user", f"{_tools_block(request)}\n\n{message.content.strip()}")
        turns.append(_turn(message))
    if tools_pending:  # no user turn to carry the definitions: give them one
        turns.append(format_message("user", _tools_block(request)))
    prefix = "" if continuation else _prefix(request)
    opened = f"{START_HEADER}assistant{END_HEADER}\n\n{continuation or prefix}"
    return Prompt(text=BEGIN_OF_TEXT + "".join(turns) + opened, prefix=prefix)
