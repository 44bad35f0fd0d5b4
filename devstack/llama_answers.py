"""What the emulated Llama writes when a prompt asks for a tool call, JSON or a library's format.

Given a prompt in the endpoint's format (see ``devstack.prompt_reading``):

- tools offered and the last turn is not a tool result: a call to one offered
  tool in Llama's JSON form, ``{"name": ..., "parameters": {...}}``. The tool is the
  one the prefill names, else the one whose name and description share most words
  with the user's last message (a final-answer tool only when no other tool fits),
  else the first. Its arguments take values from the conversation where they fit
  the tool's schema (``devstack.conversation_values``: the city the user named), the
  rest built from the schema;
- after a tool result (an ``ipython`` turn, or smolagents' "Observation:" message),
  with a final-answer tool offered (smolagents' ``final_answer``): a call to it whose
  answer is the result; without one, a sentence quoting the result;
- a JSON Schema asked for: one document valid against it, values from the conversation;
- the json_object instruction: a document of the shape the prompt gives (a schema, an
  example, keys named in prose, dspy's output fields; ``devstack.prompt_conventions``),
  else ``{"answer": "..."}``;
- dspy's ChatAdapter prompt: its output fields between ``[[ ## field ## ]]`` markers;
  smolagents' CodeAgent prompt: "Thought:" and a code block that calls the best tool,
  then, after its observation, ``final_answer(...)``.

The whole answer is built first; the generation is what follows the prefill
(the open assistant turn's text), as a real model's generation would be. A
prefill no buildable answer starts with is left alone: the answer comes whole.
"""
from __future__ import annotations

import json
import random
import re

from typing import Any

from chalicelib.models.answers import REPAIR_HINT
from devstack import prose
from devstack.conversation_values import Conversation
from devstack.prompt_conventions import (CodeAgentPrompt, DspyPrompt, arithmetic, asked_shape,
                                         is_final_tool, literal_options, number_text,
                                         observation, read_code_agent, read_dspy)
from devstack.prompt_reading import (JSON_OBJECT_MARKER, TOOLS_MARKER, PromptView, Tool,
                                     read_prompt, read_tools)
from devstack.schema_instances import instance, name_words

QUOTE_CHARS = 200
# The endpoint's own message asking for a repaired answer: not the user's request.
_REPAIR_LEAD = REPAIR_HINT.split("{", 1)[0]  # how much of a tool result the text answer quotes
_STOPWORDS = frozenset(
    "a an the is are was be to of in on at for and or by with what whats how me my i you "
    "your it its this that please can could would do does get".split())
_CLOSINGS = ("that answers your question.", "here is what I found.",
             "this is the information you asked for.")


def answer(prompt: str, rng: random.Random) -> str | None:
    """The generation for a tool or JSON prompt; None when the prompt asks for neither."""
    view = read_prompt(prompt)
    if view.prefill is None:
        return None
    whole = full_answer(view, rng)
    if whole is None:
        return None
    return whole[len(view.prefill):] if whole.startswith(view.prefill) else whole


def full_answer(view: PromptView, rng: random.Random) -> str | None:
    """The whole assistant message, prefill included; None for plain chat."""
    texts = conversation_texts(view)
    request = texts[0] if texts else ""
    system = "\n".join(t.content for t in view.turns if t.role == "system")
    if view.tools:
        decision = tool_decision(view, rng)
        if decision is not None:
            tool, arguments = decision
            return json.dumps({"name": tool.name, "parameters": arguments}, ensure_ascii=False)
    if view.has_schema:
        source = Conversation(texts, prose.sentence(request), prose.topic(request))
        return json.dumps(instance(view.schema, rng, source=source), ensure_ascii=False)
    dspy = read_dspy(system, view.user_text)
    if view.json_object:
        if dspy is not None:
            return json.dumps(dspy_values(dspy), ensure_ascii=False)
        shape = asked_shape([system.replace(JSON_OBJECT_MARKER, ""), *texts])
        if shape is not None:
            source = Conversation(texts, prose.sentence(request), prose.topic(request))
            return json.dumps(instance(shape, rng, source=source), ensure_ascii=False)
        return json.dumps({"answer": reply(view, rng)}, ensure_ascii=False)
    if view.after_tool_result:
        return reply(view, rng)
    code = read_code_agent(system)
    if code is not None:
        return code_step(code, view, texts, rng)
    if dspy is not None:
        return dspy_text(dspy)
    return None


def conversation_texts(view: PromptView) -> list[str]:
    """The user's messages, latest first, without tool definitions or reported results."""
    texts: list[str] = []
    for turn in reversed(view.turns):
        if (turn.role != "user" or observation(turn.content) is not None
                or turn.content.startswith(_REPAIR_LEAD)):
            continue
        content = turn.content
        if TOOLS_MARKER in content:
            content = content[read_tools(content)[1]:]
        texts.append(content.strip())
    if not texts and view.user_text and observation(view.user_text) is None:
        texts.append(view.user_text)
    return [t for t in texts if t]


def results(view: PromptView) -> list[str]:
    """The results the model is answering: trailing tool results, or an observation."""
    if view.tool_results:
        return list(view.tool_results)
    last = next((t for t in reversed(view.turns) if t.role in ("user", "ipython")), None)
    seen = observation(last.content) if last is not None and last.role == "user" else None
    return [] if seen is None else [seen]


def final_text(found: list[str]) -> str:
    return prose.quote(found[-1], 1000) if found else ""


def arguments(tool: Tool, texts: list[str], rng: random.Random,
              answer: str | None = None) -> dict[str, Any]:
    """A call's arguments: values from the conversation where they fit, the rest built."""
    schema = tool.parameters if "type" in tool.parameters else {"type": "object", **tool.parameters}
    built = instance(schema, rng, source=Conversation(texts, answer))
    return built if isinstance(built, dict) else {}  # a call's parameters are an object


def tool_decision(view: PromptView, rng: random.Random) -> tuple[Tool, dict[str, Any]] | None:
    """The call to make, or None when the answer is text (a tool result and no final tool)."""
    texts = conversation_texts(view)
    found = results(view)
    if found:
        final = [t for t in view.tools if is_final_tool(t)]
        if final:
            return final[0], arguments(final[0], texts, rng, final_text(found))
        if view.tool_results:
            return None
    tool = choose_tool(view)
    answer = prose.sentence(texts[0] if texts else "") if is_final_tool(tool) else None
    return tool, arguments(tool, texts, rng, answer)


def code_step(code: CodeAgentPrompt, view: PromptView, texts: list[str],
              rng: random.Random) -> str:
    """smolagents CodeAgent's next step: call the best tool, or return the final answer."""
    seen = observation(view.user_text)
    if seen is not None:
        return ("Thought: The observation answers the task, so I return it as the final "
                f"answer.\n{code.opening}final_answer({seen!r}){code.closing}")
    task = texts[0] if texts else ""
    if code.tools:
        tool = choose_tool(PromptView(tools=code.tools, user_text=task, prefill=""))
        if not is_final_tool(tool):
            call = ", ".join(f"{k}={v!r}" for k, v in arguments(tool, texts, rng).items())
            return (f"Thought: I will call `{tool.name}` with what the task gives, then print "
                    f"its result.\n{code.opening}result = {tool.name}({call})\nprint(result)"
                    f"{code.closing}")
    calc = arithmetic(task)
    value: Any = float(number_text(calc[1])) if calc else prose.sentence(task)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return (f"Thought: I can answer this directly.\n{code.opening}final_answer({value!r})"
            f"{code.closing}")


def dspy_value(name: str, kind: str, dspy: DspyPrompt) -> Any:
    """One output field's value, of the Python type dspy declared for it."""
    text = "\n".join(dspy.inputs.values())
    calc = arithmetic(text)
    lowered = kind.lower()
    options = literal_options(kind)
    if options:
        mentioned = Conversation([text]).choice(options)
        return mentioned if mentioned is not None else options[0]
    if lowered in ("int", "float"):
        number = calc[1] if calc else (Conversation([text]).number(name) or 0)
        return int(number) if lowered == "int" else float(number)
    if lowered == "bool":
        return True
    if lowered.startswith(("list", "tuple", "set")):
        return [prose.topic(text)]
    if lowered.startswith("dict"):
        return {}
    if name in ("reasoning", "rationale", "thought", "explanation"):
        if calc:
            return f"The question asks for {calc[0]}, which is {number_text(calc[1])}."
        return (f"The request is about {prose.topic(text)}; the local emulator restates it "
                "rather than looking anything up.")
    return number_text(calc[1]) if calc else prose.sentence(text)


def dspy_values(dspy: DspyPrompt) -> dict[str, Any]:
    return {name: dspy_value(name, kind, dspy) for name, kind in dspy.outputs}


def dspy_text(dspy: DspyPrompt) -> str:
    """ChatAdapter's answer: each output field under its marker, then the end marker."""
    if dspy.as_json:
        return json.dumps(dspy_values(dspy), ensure_ascii=False)
    parts = []
    for name, value in dspy_values(dspy).items():
        shown = value if isinstance(value, str) else json.dumps(value)
        if isinstance(value, bool):
            shown = str(value)
        parts.append(f"[[ ## {name} ## ]]\n{shown}")
    return "\n\n".join(parts) + "\n\n[[ ## completed ## ]]"


def call_header(name: str) -> str:
    """A call's text up to its arguments: ``{"name": "x", "parameters": ``."""
    return json.dumps({"name": name, "parameters": None})[:-len("null}")]


def choose_tool(view: PromptView) -> Tool:
    prefill = view.prefill or ""
    named = [t for t in view.tools
             if call_header(t.name).startswith(prefill) or prefill.startswith(call_header(t.name))]
    candidates = named or list(view.tools)
    texts = conversation_texts(view) or [view.user_text]
    asked = {w for w in re.findall(r"[a-z0-9]+", texts[0].lower()) if w not in _STOPWORDS}

    def score(tool: Tool) -> int:
        words = set(name_words(tool.name)) | set(re.findall(r"[a-z0-9]+", tool.description.lower()))
        return len(asked & words)
    # A final-answer tool ends an agent's task: called first only when no other tool fits.
    others = [t for t in candidates if not is_final_tool(t)]
    finals = [t for t in candidates if is_final_tool(t)]
    if others and finals and score(max(others, key=score)) == 0:
        return finals[0]
    # max() keeps the first of equal scores: the first offered tool wins ties.
    return max(others or candidates, key=score)


def reply(view: PromptView, rng: random.Random) -> str:
    """A sentence or two; after tool results, one that quotes them."""
    if not view.tool_results:
        return prose.sentence(view.user_text)
    quotes = [_quote(result) for result in view.tool_results]
    if len(quotes) == 1:
        lead = f"Based on the tool result {quotes[0]}"
    else:
        lead = "Based on the tool results " + ", ".join(quotes[:-1]) + f" and {quotes[-1]}"
    return f"{lead}, {rng.choice(_CLOSINGS)}"


def _quote(result: str) -> str:
    text = result.strip()
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "..."
