"""A generation -> what the client gets: text, tool calls, or checked JSON (pure).

``shape`` reads the model's text in the light of what the request asked:

- tools offered: calls to offered tools become ``tool_calls`` (finish reason
  ``tool_calls``), their arguments checked against each tool's schema;
  ``tool_choice`` ``required`` or a named function must give a call;
  ``parallel_tool_calls: false`` keeps the first call only;
- ``response_format`` ``json_object`` / ``json_schema``: the answer must be one
  JSON object / one document valid against the schema (fences and trailing
  prose are dropped, the JSON itself is returned as the model wrote it);
- otherwise plain text (never a leading ``<|python_tag|>``), cut at the
  first stop sequence.

A ``problem`` says why an answer does not honour the request; ``completion``
makes one repair attempt (``repair_request``) and then fails with
UnusableAnswerError when the problem is ``fatal``. Non-strict tools whose
arguments do not fit their schema are repaired once and otherwise returned
as the model made them, as OpenAI's non-strict function calling does.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from chalicelib import jsontext
from chalicelib.chat import ChatRequest, Message, ResponseFormat, ToolCall, new_call_id
from chalicelib.errors import ApiError, UpstreamError, ValidationBudgetError
from chalicelib.models.prompting import Prompt, offers_tools
from chalicelib.models.schemas import problems
from chalicelib.models.tool_parser import ParsedCall, parse, without_python_tag

log = logging.getLogger(__name__)
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)


def unreadable(exc: Exception, spent: tuple[int, Decimal | None]) -> ApiError:
    """The error for an answer that reading failed on, billing what Bedrock
    generated: the validation allowance spent (the answer is unusable, a
    422), or else a bug of ours (logged with its traceback): a 502, never a
    500 that gives the reservation back."""
    if isinstance(exc, ValidationBudgetError):
        log.warning("the answer's schema check ran out of time")
        budget = ValidationBudgetError(str(exc))
        budget.spent = spent
        return budget
    log.error("could not read the model's answer", exc_info=exc)
    error = UpstreamError("The model's answer could not be read.")
    error.spent = spent
    return error


@dataclass(frozen=True)
class Shaped:
    text: str
    stop_reason: str  # stop | length | tool_calls
    tool_calls: tuple[ToolCall, ...] = ()
    problem: str | None = None  # why the answer does not honour the request
    fatal: bool = False  # the problem fails the request if a repair does not cure it
    repairable: bool = True  # False when asking again cannot help (cut at max_tokens)
    stop_sequence: str | None = None  # the stop sequence the text was cut at


def first_stop(text: str, stops: tuple[str, ...]) -> tuple[int, str | None]:
    """The earliest stop sequence in ``text`` and where it starts, or (-1, None).
    Of sequences starting at the same place, the first listed wins, so the one
    reported is the one the cut honoured."""
    found = [(i, n) for n, i in enumerate(text.find(s) for s in stops) if i >= 0]
    if not found:
        return -1, None
    index, which = min(found)
    return index, stops[which]


def arguments_text(arguments: object) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def argument_problems(request: ChatRequest,
                      calls: tuple[ParsedCall, ...]) -> tuple[str | None, bool]:
    tools = {tool.name: tool for tool in request.tools}
    found: list[str] = []
    strict = False
    for call in calls:
        tool = tools[call.name]
        if not isinstance(call.arguments, dict):
            issues = ["the arguments are not a JSON object"]
        else:
            issues = problems(call.arguments, tool.parameters)
        if issues:
            strict = strict or tool.strict
            found.append(f"the arguments of {call.name} do not fit its schema: "
                         + "; ".join(issues))
    return ("; ".join(found) or None), strict


def _tool_answer(request: ChatRequest, text: str, stop_reason: str,
                 make_id: Callable[[], str]) -> Shaped | None:
    choice = request.tool_choice
    names = [choice.name] if choice.mode == "function" and choice.name else \
        [tool.name for tool in request.tools]
    parsed = parse(text, names)
    if parsed.calls:
        calls = parsed.calls if request.parallel_tool_calls else parsed.calls[:1]
        problem, strict = argument_problems(request, calls)
        return Shaped(text=parsed.content, stop_reason="tool_calls", problem=problem, fatal=strict,
                      tool_calls=tuple(ToolCall(make_id(), c.name, arguments_text(c.arguments))
                                       for c in calls))
    if choice.mode in ("required", "function"):
        wanted = f"the function {choice.name}" if choice.mode == "function" else "a function"
        return _unusable(text, stop_reason, f"the answer is not a call to {wanted} in the "
                         'format {"name": ..., "parameters": {...}}')
    return None


def _unusable(text: str, stop_reason: str, problem: str) -> Shaped:
    if stop_reason == "length":
        return Shaped(text, stop_reason, fatal=True, repairable=False,
                      problem="the answer was cut at max_tokens before it was complete; "
                              "raise max_tokens")
    return Shaped(text, stop_reason, problem=problem, fatal=True)


def _json_answer(fmt: ResponseFormat, text: str, stop_reason: str) -> Shaped:
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if not starts:
        return _unusable(text, stop_reason, "the answer is not JSON")
    start = min(starts)
    try:
        value, end = jsontext.raw_decode(body, start)
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return _unusable(text, stop_reason, f"the answer is not valid JSON ({detail})")
    document = body[start:end]
    if fmt.type == "json_object" and not isinstance(value, dict):
        return _unusable(document, "stop", "the answer is not a JSON object")
    if fmt.type == "json_schema" and fmt.schema is not None:
        issues = problems(value, fmt.schema)
        if issues:
            return _unusable(document, "stop", "the answer does not fit the schema: "
                             + "; ".join(issues))
    return Shaped(document, "stop")


def shape(request: ChatRequest, prompt: Prompt, generation: str, stop_reason: str,
          make_id: Callable[[], str] = new_call_id) -> Shaped:
    """What the client gets for ``generation``, the text that followed ``prompt``."""
    text = prompt.prefix + generation
    if stop_reason == "content_filter":  # the guardrail's text: nothing in it to read
        return Shaped(without_python_tag(generation), stop_reason)
    if offers_tools(request):
        answer = _tool_answer(request, text, stop_reason, make_id)
        if answer is not None:
            return answer
    if request.response_format.type in ("json_object", "json_schema"):
        return _json_answer(request.response_format, text, stop_reason)
    text = without_python_tag(text)
    cut, matched = first_stop(text, request.stop)
    if cut >= 0:
        return Shaped(text[:cut], "stop", stop_sequence=matched)
    return Shaped(text, stop_reason)


REPAIR_HINT = ("Your last answer could not be used: {problem}. Answer again, in the required "
               "format only.")


def repair_request(request: ChatRequest, answer: str, problem: str) -> ChatRequest:
    """The same request, with the unusable answer and what is wrong with it
    added to the conversation, for one more attempt."""
    messages = (*request.messages, Message("assistant", answer),
                Message("user", REPAIR_HINT.format(problem=problem)))
    return dataclasses.replace(request, messages=messages)
