"""What the emulated Llama writes when a prompt asks for a tool call or JSON.

Given a prompt in the endpoint's format (see ``devstack.prompt_reading``):

- tools offered and the last turn is not a tool result: a call to one offered
  tool in Llama's JSON form, ``{"name": ..., "parameters": {...}}``, arguments
  built from the tool's schema. The tool is the one the prefill names, else
  the one whose name and description share most words with the user's last
  message, else the first;
- a JSON Schema asked for: one document valid against it;
- the json_object instruction: ``{"answer": "..."}``;
- after a tool result (``ipython`` turns): a sentence quoting the result.

The whole answer is built first; the generation is what follows the prefill
(the open assistant turn's text), as a real model's generation would be. A
prefill no buildable answer starts with is left alone: the answer comes whole.
"""
from __future__ import annotations

import json
import random
import re

from devstack.prompt_reading import PromptView, Tool, read_prompt
from devstack.schema_instances import instance, name_words

QUOTE_CHARS = 200  # how much of a tool result the text answer quotes
_STOPWORDS = frozenset(
    "a an the is are was be to of in on at for and or by with what whats how me my i you "
    "your it its this that please can could would do does get".split())
_CLOSINGS = ("that answers your question.", "here is what I found.",
             "this is the information you asked for.")
_OPENINGS = ("Here is a short answer.", "This is the requested information.",
             "The request was handled locally.")


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
    if view.tools and not view.after_tool_result:
        return tool_call(view, rng)
    if view.has_schema:
        return json.dumps(instance(view.schema, rng), ensure_ascii=False)
    if view.json_object:
        return json.dumps({"answer": reply(view, rng)}, ensure_ascii=False)
    if view.after_tool_result:
        return reply(view, rng)
    return None


def call_header(name: str) -> str:
    """A call's text up to its arguments: ``{"name": "x", "parameters": ``."""
    return json.dumps({"name": name, "parameters": None})[:-len("null}")]


def choose_tool(view: PromptView) -> Tool:
    prefill = view.prefill or ""
    named = [t for t in view.tools
             if call_header(t.name).startswith(prefill) or prefill.startswith(call_header(t.name))]
    candidates = named or list(view.tools)
    asked = {w for w in re.findall(r"[a-z0-9]+", view.user_text.lower()) if w not in _STOPWORDS}

    def score(tool: Tool) -> int:
        words = set(name_words(tool.name)) | set(re.findall(r"[a-z0-9]+", tool.description.lower()))
        return len(asked & words)
    # max() keeps the first of equal scores: the first offered tool wins ties.
    return max(candidates, key=score)


def tool_call(view: PromptView, rng: random.Random) -> str:
    tool = choose_tool(view)
    schema = tool.parameters if "type" in tool.parameters else {"type": "object", **tool.parameters}
    arguments = instance(schema, rng)
    if not isinstance(arguments, dict):
        arguments = {}  # a call's parameters are an object, whatever the schema says
    return json.dumps({"name": tool.name, "parameters": arguments}, ensure_ascii=False)


def reply(view: PromptView, rng: random.Random) -> str:
    """A sentence or two; after tool results, one that quotes them."""
    if not view.tool_results:
        return rng.choice(_OPENINGS)
    quotes = [_quote(result) for result in view.tool_results]
    if len(quotes) == 1:
        lead = f"Based on the tool result {quotes[0]}"
    else:
        lead = "Based on the tool results " + ", ".join(quotes[:-1]) + f" and {quotes[-1]}"
    return f"{lead}, {rng.choice(_CLOSINGS)}"


def _quote(result: str) -> str:
    text = result.strip()
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "..."
