"""The emulator's plain answers: sentences about the prompt, not words drawn at random.

A real model answers what it was asked; the emulator cannot, but it can say what it
was asked and what it is. ``reply`` opens by quoting the user's last message, then
adds sentences, in an order the seed decides, about the request and about the
emulator itself (deterministic, billed and streamed as a real answer), until the
answer reaches the length the generator drew. Nothing here claims a fact about the
world: a reader (or a client that shows the text) sees at once that a stand-in answered.
"""
from __future__ import annotations

import math
import random
import re

from devstack.conversation_values import request_phrase

QUOTE_CHARS = 160

_OPENINGS = ('You asked: "{quote}"', 'Your message was: "{quote}"',
             'Here is a reply to "{quote}"')
_NO_MESSAGE = ("This is a reply from the local Bedrock emulator.",
               "The local Bedrock emulator is answering this prompt.")
_SENTENCES = (
    "This reply comes from the local Bedrock emulator, not from a real model, so it says "
    "little about {topic}.",
    "A deployed stage sends the same request to Amazon Bedrock, where the model answers "
    "it in earnest.",
    "The emulator writes the same text for the same prompt, settings and seed, so tests can "
    "rely on it.",
    "Its tokens are counted and billed as a real answer's would be.",
    "It streams word by word, as Bedrock streams a generation.",
    "A test that needs exact words scripts them with respond_next.",
    "Asked for a tool call or a JSON document, the emulator answers in that shape, with "
    "values taken from the conversation.",
    "The subject here is {topic}.",
    "Nothing in this answer was looked up; it is a stand-in answer about {topic}.",
    "A longer answer would go through {topic} step by step.",
    "Limits, budgets and the response cache treat this text like any other answer.",
    "The model named in the request decides the wire format here, not the content.",
)


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[:limit - 3].rstrip() + "..."


_PREPOSITIONS = frozenset("on in at for to with about of from by into over under up".split())
_PRONOUNS = frozenset("i we you they he she it me us them".split())
_GREETINGS = frozenset("hello hi hey thanks thank ok okay yes no".split())


def topic(text: str) -> str:
    """What a request is about, for a sentence ("the weather in Paris"); "your question"
    where the request's words make no noun phrase ("What does this endpoint run on?")."""
    phrase = request_phrase(text)
    words = re.findall(r"[\w']+", phrase.lower())
    if not words or words[0] in _GREETINGS:
        return "your message"
    if words[-1] in _PREPOSITIONS or words[0] in _PRONOUNS:
        return "your question" if text.rstrip().endswith("?") else "your request"
    return quote(phrase, 80)


def reply(user_text: str, rng: random.Random, target_tokens: int) -> str:
    """Sentences about ``user_text`` (the last user message), at least ``target_tokens`` long
    at about four characters a token."""
    subject = topic(user_text)
    if user_text.strip():
        parts = [rng.choice(_OPENINGS).format(quote=quote(user_text))]
    else:
        parts = [rng.choice(_NO_MESSAGE)]
    pool: list[str] = []
    for _ in range(8):  # bounded: enough for the longest answer the generator draws
        if math.ceil(len(" ".join(parts)) / 4) >= target_tokens:
            break
        if not pool:
            pool = list(_SENTENCES)
            rng.shuffle(pool)
        parts.append(pool.pop().format(topic=subject))
    return " ".join(parts)


def sentence(user_text: str) -> str:
    """One sentence that answers a request without knowing the answer (a field's text)."""
    return f"This is the emulator's answer about {topic(user_text)}."
