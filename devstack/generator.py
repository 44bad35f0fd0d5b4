"""Deterministic stand-in generation for the Bedrock emulator.

The same model, prompt, parameters and seed always give the same text. Token
counts are a realistic estimate of about four characters a token (not a word
count), computed on the text itself, so a streamed answer's pieces join to the
non-streamed text and carry consistent running counts.

A prompt that offers tools, asks for JSON or follows a library's convention gets
what ``devstack.llama_answers`` writes (a call, a document, dspy's fields, a
CodeAgent step); any other prompt gets sentences about it (``devstack.prose``). A
scripted text (``respond_next``) is split and cut like generated text.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass

from devstack import llama_answers, prose
from devstack.prompt_reading import read_prompt


def count_tokens(text: str) -> int:
    """About four characters a token; an empty text is zero tokens."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Generation:
    pieces: tuple[str, ...]
    stop_reason: str  # "stop" | "length"

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def split_words(text: str) -> list[str]:
    """Stream pieces of ``text`` as a model sends them: a word with the space
    before it. The pieces join to ``text`` exactly."""
    return re.findall(r"\s*\S+|\s+$", text)


def scripted(text: str, max_tokens: int) -> Generation:
    """An exact text to answer, cut to ``max_tokens`` as generated text is."""
    return _cut(split_words(text), max_tokens)


def generate(model_id: str, prompt: str, *, temperature: float, top_p: float,
             max_tokens: int, seed: int) -> Generation:
    """The deterministic answer, cut to ``max_tokens`` when longer."""
    # A stream of its own for tools and JSON, so that plain prompts keep
    # exactly the text they always had.
    written = llama_answers.answer(prompt, _rng("tools-json", model_id, prompt, temperature,
                                                top_p, seed))
    if written is not None:
        return _cut(split_words(written), max_tokens)
    rng = _rng(model_id, prompt, temperature, top_p, seed)
    target = rng.randint(16, 120)
    return _cut(split_words(prose.reply(read_prompt(prompt).user_text, rng, target)), max_tokens)


def _cut(pieces: list[str], max_tokens: int) -> Generation:
    kept: list[str] = []
    chars = 0
    for piece in pieces:
        if count_tokens("x" * (chars + len(piece))) > max_tokens:
            # Cut mid-word, as a real model cut at max_gen_len would.
            room = max_tokens * 4 - chars
            if room > 0:
                kept.append(piece[:room])
            return Generation(tuple(kept), "length")
        kept.append(piece)
        chars += len(piece)
    return Generation(tuple(kept), "stop")
