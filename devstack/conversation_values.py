"""Values for an answer taken from the conversation, as a model takes them from what it read.

A real model asked "Weather in Paris?" with a ``get_weather(city)`` tool calls it with
``city: "Paris"``; the emulator's schema builder (``devstack.schema_instances``) asks a
``Conversation`` first and builds a value only where the conversation proposes none that
fits the schema. What it proposes, for a property's name:

- a place (``city``, ``location``, ``country``...): the proper noun after "in", "at",
  "for", "from", "to"..., else the first proper noun that does not merely start a sentence;
- a person (``name``, ``author``...): the first such proper noun;
- an ``email``, ``url``, ``date``: the first one written in the conversation;
- a ``unit`` or ``language`` the conversation names;
- a ``query``, ``question``, ``task``...: the user's request itself, without its
  scaffolding; a ``topic`` or ``subject``: what it is about;
- an ``answer``, ``result``, ``summary``...: the answer being written (when there is one);
- any other text of a JSON answer, given what the request is ``about``: a sentence naming
  the field and the request;
- numbers: the numbers written in the conversation, in order (the same name gets the same one);
- an ``enum`` value: the first option the conversation mentions.

Anything else: no proposal. Pure and deterministic: the same texts, the same values.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from devstack.schema_instances import name_words

PLACE = frozenset({"city", "town", "location", "place", "destination", "origin", "where",
                   "country", "nation", "state", "region", "address", "area", "venue",
                   "departure", "arrival"})
PERSON = frozenset({"name", "author", "person", "user", "username", "contact", "who", "owner"})
REQUEST = frozenset({"query", "q", "search", "question", "prompt", "task", "request", "input",
                     "instruction", "instructions", "term", "terms", "keywords", "expression"})
TOPIC = frozenset({"topic", "subject", "theme", "category", "title"})
ANSWER = frozenset({"answer", "result", "response", "reply", "output", "summary", "final",
                    "text", "content", "message", "explanation", "conclusion"})
UNITS = ("celsius", "fahrenheit", "kelvin", "metric", "imperial")
LANGUAGES = ("English", "French", "Spanish", "German", "Italian", "Portuguese", "Japanese",
             "Chinese", "Korean", "Dutch", "Arabic", "Hindi", "Russian")

_PROPER = re.compile(r"[A-Z][\w'’-]*(?:[ \t]+(?:de[ \t]+|da[ \t]+|del[ \t]+|la[ \t]+)?[A-Z][\w'’-]*)*")
_PREPOSITION = re.compile(r"(?:\b(?:in|at|for|from|to|near|around|of|about|visit|visiting)\s+)$",
                          re.IGNORECASE)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n\"“(\[]\s*)$")
# Capitalised words that begin requests rather than name anything.
_NOT_NAMES = frozenset("""
a an the i i'm i'd my me we our you your it its this that these those there here what whats
what's which who whom whose when where why how is are was were be do does did can could would
should will shall may might must please tell give show find get list make write explain
describe summarise summarize translate compare call use run check look search answer respond
reply return hello hi hey thanks thank ok okay yes no new task observation weather today
tomorrow now and or but if then also just let lets let's json note system user assistant
add book buy call compute calculate convert create delete fetch lookup open order play plan
read remove schedule send set sort start stop sum take turn update fly go drive travel
""".split())
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.]*[A-Za-z_])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"https?://[^\s\"'<>)\]]+")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_SCAFFOLD = re.compile(
    r"^(?:(?:new task|task|question|observation)\s*:\s*|please\s+|(?:can|could|would|will)\s+"
    r"you\s+|tell me(?: about)?\s+|give me\s+|show me\s+|find(?: me)?\s+|explain\s+|describe\s+|"
    r"write\s+|what(?:'s| is| are| was| were| does| do)?\s+|how (?:do|does|can|is|are|to)\s+|"
    r"who (?:is|was|are)\s+|where (?:is|are)\s+|why (?:is|are|does|do)\s+|i (?:want|need) "
    r"(?:to know )?)", re.IGNORECASE)


_FORMAT_CLAUSE = re.compile(r"[,;]\s*(?:and\s+)?(?:respond|answer|reply|return|format|output|"
                            r"use|give|write|in json|as json)\b", re.IGNORECASE)


def request_phrase(text: str) -> str:
    """The request in ``text`` without its scaffolding: "What is the weather in Paris?" ->
    "the weather in Paris"; the first sentence only, at most 12 words."""
    line = next((ln.strip() for ln in text.splitlines()
                 if ln.strip() and not re.fullmatch(r"(?:new )?task\s*:", ln.strip(), re.I)), "")
    first = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
    # "..., respond in JSON with ... keys": the format instruction is not the request.
    first = _FORMAT_CLAUSE.split(first, maxsplit=1)[0]
    for _ in range(4):
        stripped = _SCAFFOLD.sub("", first, count=1)
        if stripped == first:
            break
        first = stripped
    words = first.strip(" \t?!.,;:").split()
    return " ".join(words[:12])


def _preposition(before: str) -> str:
    match = _PREPOSITION.search(before)
    return match.group().split()[0].lower() if match else ""


def proper_nouns(text: str) -> list[tuple[str, str]]:
    """Proper nouns in ``text``, each with the place preposition before it ("" for none)."""
    found: list[tuple[str, str]] = []
    for match in _PROPER.finditer(text):
        words = match.group().split()
        before = text[:match.start()]
        at_start = bool(_SENTENCE_START.search(before))
        # "What Paris...": at a sentence's start, capitals may only mean "first word":
        # drop request words there, keep what names something ("New York" mid-sentence stays).
        while at_start and words and words[0].lower().strip("'’") in _NOT_NAMES:
            words.pop(0)
            before = ""
        if not words:
            continue
        found.append((" ".join(words), _preposition(before)))
    return found


class Conversation:
    """Proposes values from the texts of a conversation, latest (the user's request) first."""

    def __init__(self, texts: Sequence[str], answer: str | None = None,
                 about: str | None = None) -> None:
        self.texts = [t for t in texts if t and t.strip()]
        self.answer = answer
        # For a JSON answer's other text fields: "The punchline for a joke about cats."
        self.about = about
        joined = "\n".join(self.texts)
        self._numbers = [float(n) for n in _NUMBER.findall(joined)]
        self._given: dict[str, float] = {}

    @property
    def request(self) -> str:
        return self.texts[0] if self.texts else ""

    def _first(self, pattern: re.Pattern[str]) -> str | None:
        for text in self.texts:
            match = pattern.search(text)
            if match:
                return match.group()
        return None

    def _place(self, words: set[str]) -> str | None:
        # "from Lisbon to Tokyo": an origin is where one goes from, a destination where to.
        wanted = ({"to"} if words & {"destination", "to", "arrival"} else
                  {"from"} if words & {"origin", "from", "departure", "source"} else set())
        for text in self.texts:
            nouns = proper_nouns(text)
            for pick in ([n for n, p in nouns if p in wanted], [n for n, p in nouns if p],
                         [n for n, _ in nouns]):
                if pick:
                    return pick[0]
        return None

    def _named(self, options: Sequence[str]) -> str | None:
        for text in self.texts:
            for option in options:
                if re.search(rf"\b{re.escape(option)}\b", text, re.IGNORECASE):
                    return option
        return None

    def string(self, hint: str) -> str | None:
        words = set(name_words(hint))
        if words & {"email", "mail"}:
            return self._first(_EMAIL)
        if words & {"url", "uri", "link", "website", "href"}:
            return self._first(_URL)
        if words & {"date", "day", "birthday"}:
            return self._first(_DATE)
        if words & {"unit", "units"}:
            return self._named(UNITS)
        if words & {"language", "lang"}:
            return self._named(LANGUAGES)
        if words & PLACE:
            return self._place(words)
        if words & PERSON:
            for text in self.texts:
                nouns = proper_nouns(text)
                if nouns:
                    return nouns[0][0]
            return None
        if words & REQUEST:
            return request_phrase(self.request) or None
        if words & TOPIC:
            phrase = request_phrase(self.request)
            return phrase[:1].upper() + phrase[1:] if phrase else None
        if words & ANSWER and self.answer is not None:
            return self.answer
        if self.about is not None:
            return f"The {' '.join(name_words(hint)) or 'value'} for {self.about}."
        return None

    def number(self, hint: str) -> float | None:
        if hint in self._given:
            return self._given[hint]
        if len(self._given) >= len(self._numbers):
            return None
        value = self._numbers[len(self._given)]
        self._given[hint] = value
        return value

    def choice(self, options: list[Any]) -> Any | None:
        """The option the conversation mentions first (by its text), if any."""
        best: tuple[int, int] | None = None
        chosen = None
        for rank, text in enumerate(self.texts):
            for option in options:
                if not isinstance(option, (str, int, float)) or isinstance(option, bool):
                    continue
                match = re.search(rf"(?<!\w){re.escape(str(option))}(?!\w)", text, re.IGNORECASE)
                if match and (best is None or (rank, match.start()) < best):
                    best, chosen = (rank, match.start()), option
            if chosen is not None:
                return chosen
        return None
