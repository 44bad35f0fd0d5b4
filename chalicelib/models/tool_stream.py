"""Tool calls in a live stream, and finished answers as stream events (pure).

``detect_calls`` sits between Bedrock's text deltas and the client when tools
are offered with ``tool_choice: auto``. Text streams through as it comes until
something that may start a call appears at the start of a line (``{``, ``[``,
a code fence, ``<function=``) or ``<|python_tag|>`` appears anywhere; from
there the text is held back. When the stream ends, the held text is read with
the same parser as a plain answer: calls become OpenAI's tool-call deltas
(``id``, ``name``, then the arguments in pieces) and the stop reason becomes
``tool_calls``; anything else is sent as the text it was. A call written in
the middle of a line of prose is therefore sent as text while streaming (the
non-streamed path would still read it).

Calls whose arguments do not fit their tool's schema have not been sent yet
when that is found, so they get the same one repair attempt as a plain answer
(``repair``, the caller's second Bedrock call): its calls are sent instead.
Prose already sent stands; the repaired answer's own prose is sent only when
nothing was. Without ``repair``, strict tools fail the stream and non-strict
calls go out as the model made them.

``completion_events`` turns a finished Completion into the same events, for
answers that must be checked whole before any of it may be sent (a forced
call, a JSON format).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

from chalicelib.models.answers import argument_problems, arguments_text, unreadable
from chalicelib.chat import (ChatRequest, Completion, StreamEnd, StreamEvent, TextDelta,
                             ToolCall, ToolCallDelta, new_call_id)
from chalicelib.errors import UnusableAnswerError
from chalicelib.models.tool_parser import parse, without_python_tag

# (the streamed answer so far, what is wrong with its calls) -> the answer of
# one more attempt, made whole; raises UnusableAnswerError if that fails too.
Repair = Callable[[Completion, str], Completion]
LINE_TRIGGERS = ("{", "[", "```", "<function=")
ANYWHERE = "<|python_tag|>"
ARGUMENT_PIECE = 64  # characters of arguments per delta, as OpenAI sends them in pieces


def _line_heads(text: str, start: int) -> Iterator[int]:
    """The first non-blank index of each line, for lines where it is at or after ``start``."""
    line = text.rfind("\n", 0, start) + 1
    while True:
        head = line
        while head < len(text) and text[head] in " \t":
            head += 1
        if head >= start:
            yield head
        newline = text.find("\n", line)
        if newline < 0:
            return
        line = newline + 1


def _held_from(text: str, start: int) -> tuple[int, bool]:
    """Where to stop sending: ``(index, holding)``. ``holding`` is True when a
    call may start at ``index``; False when the tail from ``index`` is only
    kept back because it may still grow into the start of one."""
    hold: tuple[int, bool] | None = None
    for head in _line_heads(text, start):
        rest = text[head:]
        if rest.startswith(LINE_TRIGGERS):
            hold = (head, True)
            break
        if rest and any(trigger.startswith(rest) for trigger in LINE_TRIGGERS):
            hold = (head, False)  # "`" or "<f" at the end: wait for more
            break
    tag = text.find(ANYWHERE, start)
    if tag >= 0 and (hold is None or tag < hold[0]):
        hold = (tag, True)
    if hold is not None:
        return hold
    for size in range(min(len(ANYWHERE) - 1, len(text) - start), 0, -1):
        if ANYWHERE.startswith(text[-size:]):
            return len(text) - size, False
    return len(text), False


def call_events(calls: Iterable[ToolCall], piece: int = ARGUMENT_PIECE) -> Iterator[ToolCallDelta]:
    for index, call in enumerate(calls):
        yield ToolCallDelta(index=index, id=call.id, name=call.name)
        for at in range(0, len(call.arguments), piece):
            yield ToolCallDelta(index=index, arguments=call.arguments[at:at + piece])


def completion_events(completion: Completion) -> Iterator[StreamEvent]:
    """A finished answer as the events a live stream would have sent."""
    if completion.text:
        yield TextDelta(completion.text)
    yield from call_events(completion.tool_calls)
    yield StreamEnd(completion)


def _repaired_events(fixed: Completion, sent_text: str) -> Iterator[StreamEvent]:
    content = "" if sent_text else fixed.text
    if content:
        yield TextDelta(content)
    yield from call_events(fixed.tool_calls)
    yield StreamEnd(dataclasses.replace(fixed, text=(sent_text + content).strip()))


def detect_calls(request: ChatRequest, events: Iterable[StreamEvent],
                 make_id: Callable[[], str] = new_call_id,
                 repair: Repair | None = None) -> Iterator[StreamEvent]:
    """Pass ``events`` through, turning calls to offered tools into tool-call deltas."""
    names = [tool.name for tool in request.tools]
    text, sent, holding = "", 0, False
    for event in events:
        if isinstance(event, TextDelta):
            text += event.text
            if not holding:
                upto, holding = _held_from(text, sent)
                if upto > sent:
                    yield TextDelta(text[sent:upto])
                    sent = upto
            continue
        if not isinstance(event, StreamEnd):
            yield event
            continue
        held = text[sent:]
        completion = event.completion
        spent = (completion.usage.total_tokens, completion.cost_usd)
        try:
            answer = parse(held, names) if held else None
            if answer is None or not answer.calls:
                # Held from a <|python_tag|>, which is never content.
                rest = without_python_tag(held) if held else ""
                if rest:
                    yield TextDelta(rest)
                yield event if rest == held else StreamEnd(
                    dataclasses.replace(completion, text=text[:sent] + rest))
                return
            calls = answer.calls if request.parallel_tool_calls else answer.calls[:1]
            problem, strict = argument_problems(request, calls)
            tool_calls = tuple(ToolCall(make_id(), c.name, arguments_text(c.arguments))
                               for c in calls)
        except Exception as exc:  # noqa: BLE001 - a bug of ours, but Bedrock billed the tokens
            raise unreadable(exc, spent) from exc
        if problem is not None and repair is not None:
            yield from _repaired_events(repair(completion, problem), text[:sent])
            return
        if problem is not None and strict:
            raise UnusableAnswerError(f"The model's answer could not be used: {problem}.",
                                      spent=spent)
        if answer.content:
            yield TextDelta(("\n" if sent else "") + answer.content)
        yield from call_events(tool_calls)
        content = text[:sent] + (("\n" if sent else "") + answer.content if answer.content else "")
        yield StreamEnd(dataclasses.replace(completion, text=content.strip(),
                                            tool_calls=tool_calls, stop_reason="tool_calls"))
        return
