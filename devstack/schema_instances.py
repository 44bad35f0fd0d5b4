"""JSON values that validate against a JSON Schema, for the emulator's answers.

``instance(schema, rng)`` builds one value for a tool's ``parameters`` or a
``response_format`` schema, deterministically for a given ``random.Random``.
It covers what tool and structured-output schemas use (draft 2020-12, and the
draft-4..7 spellings still common): ``type`` (also lists), ``required``,
``properties``, ``additionalProperties``, ``min/maxProperties``,
``dependentRequired``, ``enum``, ``const``, ``items`` / ``prefixItems`` (and the
older list form of ``items`` with ``additionalItems``), ``min/maxItems``,
``uniqueItems``, ``contains``, ``anyOf`` / ``oneOf`` (one branch is picked),
``allOf`` (merged), ``$ref`` to any ``#/...`` pointer of the same document
(``#/$defs/x``, ``#/definitions/x``, ``#``), numeric bounds (also the draft-4
boolean ``exclusiveMinimum``), ``multipleOf``, ``min/maxLength`` and the
formats date, date-time, time, email, uri, uuid, ipv4, ipv6, hostname.

Strings read naturally from the property's name (a ``city`` gets a city, an
``email`` an address, a ``query`` a phrase). Given a ``source`` (the
conversation, ``devstack.conversation_values``), a string, number or enum value
it proposes for a property is taken first wherever it fits the property's
schema (type, bounds, length, pattern, enum). Everything else is best effort
and never an exception: unknown keywords are ignored, ``pattern``, ``not`` and
``if``/``then``/``else`` are not honoured, an unsatisfiable schema gets a value
close to it, and recursion is bounded (past ``SOFT_DEPTH`` only what is
required is filled; past ``HARD_DEPTH`` a branch becomes ``null``).
"""
from __future__ import annotations

import json
import math
import random
import re
import uuid
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote

# What a proposed string must look like to pass for a format (a proposal that does not is
# dropped for a built value; formats not listed here are taken as proposed).
_FORMAT_SHAPES = {
    "date": r"\d{4}-\d{2}-\d{2}",
    "date-time": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
    "time": r"\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "uri": r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+", "url": r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "ipv4": r"(\d{1,3}\.){3}\d{1,3}", "hostname": r"[A-Za-z0-9.-]+",
}
SOFT_DEPTH = 4  # past it: no optional properties, arrays at minItems
HARD_DEPTH = 24  # past it: null (a required recursion with no way out)
MAX_ITEMS = 1000  # a minItems/minProperties/minLength above this is honoured up to it
MAX_REF_HOPS = 32  # a $ref chain longer than this is a cycle
BUDGET = 20_000  # schema nodes visited per instance: bounds fan-out (allOf of refs, nested minItems)

_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")

_CITIES = ("Paris", "Tokyo", "Lisbon", "Nairobi", "Montreal", "Buenos Aires", "Oslo", "Seoul")
_COUNTRIES = ("France", "Japan", "Portugal", "Kenya", "Canada", "Argentina", "Norway")
_FIRST = ("Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken")
_LAST = ("Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson")
_COLORS = ("blue", "green", "red", "amber", "violet", "teal")
_WORDS = ("local", "quick", "summary", "report", "weather", "order", "request", "note",
          "update", "status", "budget", "meeting", "travel", "invoice", "project", "review")

# Property-name words -> a typical range for numbers of that name.
_NUMBER_HINTS: tuple[tuple[frozenset[str], tuple[int, int]], ...] = (
    (frozenset({"age"}), (18, 90)),
    (frozenset({"year"}), (1990, 2030)),
    (frozenset({"month"}), (1, 12)),
    (frozenset({"day"}), (1, 28)),
    (frozenset({"hour", "hours"}), (0, 23)),
    (frozenset({"minute", "minutes", "second", "seconds"}), (0, 59)),
    (frozenset({"lat", "latitude"}), (-90, 90)),
    (frozenset({"lon", "lng", "longitude"}), (-180, 180)),
    (frozenset({"percent", "percentage", "probability", "confidence"}), (0, 100)),
    (frozenset({"temp", "temperature"}), (-10, 35)),
    (frozenset({"rating", "score", "stars"}), (1, 5)),
    (frozenset({"price", "amount", "cost", "total", "salary"}), (1, 500)),
    (frozenset({"count", "limit", "quantity", "num", "number", "n", "size", "k", "max", "top"}),
     (1, 10)),
)


class Source(Protocol):
    """Values proposed from outside the schema (the conversation); None: no proposal."""

    def string(self, hint: str) -> str | None: ...

    def number(self, hint: str) -> float | None: ...

    def choice(self, options: list[Any]) -> Any | None: ...


def instance(schema: Any, rng: random.Random, hint: str = "", source: Source | None = None) -> Any:
    """One JSON value valid against ``schema`` (best effort, never raises).

    ``hint`` is the name the value goes under (a property name), used to make
    strings and numbers read naturally. ``const`` and ``enum`` values are
    returned as found in the schema (not copied): serialise, don't mutate.
    """
    return _Builder(schema, rng, source).value(schema, hint, 0)


def name_words(name: str) -> list[str]:
    """``getWeather`` / ``get_weather`` / ``get-weather`` -> ``["get", "weather"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def _number(value: Any) -> float | int | None:
    """A keyword's numeric value, or None when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _count(schema: dict[str, Any], key: str) -> int | None:
    value = _number(schema.get(key))
    if value is None or value < 0:
        return None
    return int(min(value, MAX_ITEMS))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Both schemas' constraints in one (for allOf, $ref siblings, a picked branch)."""
    out = dict(base)
    for key, value in extra.items():
        if key not in out:
            out[key] = value
        elif key == "properties" and isinstance(out[key], dict) and isinstance(value, dict):
            props = dict(out[key])
            for name, sub in value.items():
                props[name] = {"allOf": [props[name], sub]} if name in props else sub
            out[key] = props
        elif key == "required" and isinstance(out[key], list) and isinstance(value, list):
            out[key] = list(dict.fromkeys([*out[key], *value]))
        elif key == "type":
            out[key] = _type_intersection(out[key], value)
        elif key == "enum" and isinstance(out[key], list) and isinstance(value, list):
            both = [v for v in out[key] if v in value]
            out[key] = both or value
        elif key in _LOWER_BOUNDS and _number(out[key]) is not None and _number(value) is not None:
            out[key] = max(out[key], value)
        elif key in _UPPER_BOUNDS and _number(out[key]) is not None and _number(value) is not None:
            out[key] = min(out[key], value)
        else:
            out[key] = value
    return out


def _type_set(value: Any) -> set[str]:
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return {n for n in names if n in _TYPES}


def _type_intersection(a: Any, b: Any) -> Any:
    left, right = _type_set(a), _type_set(b)
    both = left & right
    # An integer is a number: {"number"} and {"integer"} meet at "integer".
    if "integer" in left and "number" in right or "number" in left and "integer" in right:
        both.add("integer")
    if not both:
        return b  # contradictory: the later one wins (best effort)
    return sorted(both)


class _Builder:
    def __init__(self, root: Any, rng: random.Random, source: Source | None = None) -> None:
        self.root = root
        self.rng = rng
        self.source = source
        self.budget = BUDGET

    # --- schema plumbing

    def _lookup(self, ref: Any) -> Any:
        """The schema a same-document ``$ref`` points at; ``{}`` when it can't be found."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {}
        node: Any = self.root
        pointer = unquote(ref[1:])
        if not pointer:
            return node
        if not pointer.startswith("/"):
            return {}  # an anchor ("#foo"): not supported
        for part in pointer[1:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node

    def _resolve(self, schema: Any, hops: int = 0) -> dict[str, Any]:
        """``schema`` as a dict with its ``$ref`` and ``allOf`` merged in."""
        self.budget -= 1
        if not isinstance(schema, dict) or hops > MAX_REF_HOPS or self.budget <= 0:
            return {}  # true, false or junk (or out of budget): anything goes
        schema = dict(schema)
        while "$ref" in schema and hops <= MAX_REF_HOPS:
            target = self._resolve(self._lookup(schema.pop("$ref")), hops + 1)
            schema = _merge(target, schema)
            hops += 1
        schema.pop("$ref", None)
        parts = schema.pop("allOf", None)
        if isinstance(parts, list):
            for part in parts:
                schema = _merge(schema, self._resolve(part, hops + 1))
        return schema

    def _pick_type(self, schema: dict[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared if declared in _TYPES else "string"
        if isinstance(declared, list):
            known = [t for t in declared if t in _TYPES]
            # Prefer a real value to null: a nullable field that is always
            # null shows clients nothing.
            solid = [t for t in known if t != "null"]
            if solid or known:
                return self.rng.choice(solid or known)
        keys = set(schema)
        if keys & {"properties", "required", "additionalProperties", "minProperties",
                   "maxProperties", "patternProperties", "dependentRequired"}:
            return "object"
        if keys & {"items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems"}:
            return "array"
        if keys & {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}:
            return "number"
        return "string"

    # --- values

    def value(self, schema: Any, hint: str, depth: int) -> Any:
        if depth > HARD_DEPTH or self.budget <= 0:
            return None
        node = self._resolve(schema)
        if "const" in node:
            return node["const"]
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            choices = self._enum_choices(node, enum)
            named = self.source.choice(choices) if self.source else None
            return named if named is not None else self.rng.choice(choices)
        for key in ("anyOf", "oneOf"):
            branches = node.get(key)
            if isinstance(branches, list) and branches:
                rest = {k: v for k, v in node.items() if k != key}
                branch = self._resolve(self.rng.choice(branches))
                return self.value(_merge(rest, branch), hint, depth + 1)
        kind = self._pick_type(node)
        if kind == "object":
            return self._object(node, hint, depth)
        if kind == "array":
            return self._array(node, hint, depth)
        if kind == "integer":
            return self._integer(node, hint)
        if kind == "number":
            return self._float(node, hint)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(node, hint)

    def _enum_choices(self, node: dict[str, Any], enum: list[Any]) -> list[Any]:
        types = _type_set(node.get("type"))
        if not types:
            return enum
        fits = [v for v in enum if _json_type(v) in types
                or (_json_type(v) == "integer" and "number" in types)]
        return fits or enum

    def _object(self, node: dict[str, Any], hint: str, depth: int) -> dict[str, Any]:
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        raw_required = node.get("required") if isinstance(node.get("required"), list) else []
        required = list(dict.fromkeys(r for r in raw_required if isinstance(r, str)))
        extra = node.get("additionalProperties", True)
        least = _count(node, "minProperties") or 0
        most = _count(node, "maxProperties")
        room = None if most is None else max(most - len(required), 0)
        chosen: list[str] = []
        for name in props:
            if name in required:
                chosen.append(name)
            elif depth < SOFT_DEPTH and (room is None or room > 0) and self.rng.random() < 0.5:
                chosen.append(name)
                room = None if room is None else room - 1
        chosen += [name for name in required if name not in chosen]
        dependents = node.get("dependentRequired")
        if isinstance(dependents, dict):
            for _ in range(len(dependents) + 1):  # to a fixed point, bounded
                more = [d for name in chosen if isinstance(dependents.get(name), list)
                        for d in dependents[name] if isinstance(d, str) and d not in chosen]
                if not more:
                    break
                chosen += list(dict.fromkeys(more))
        for name in props:
            if len(chosen) >= least:
                break
            if name not in chosen:
                chosen.append(name)
        number = 1
        while len(chosen) < least and extra is not False:
            name = f"{hint or 'field'}_{number}"
            number += 1
            if name not in props and name not in chosen:
                chosen.append(name)
        return {name: self.value(self._property_schema(node, props, name, extra), name, depth + 1)
                for name in chosen}

    @staticmethod
    def _property_schema(node: dict[str, Any], props: dict[str, Any], name: str, extra: Any) -> Any:
        if name in props:
            return props[name]
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict):
            for pattern, sub in patterns.items():
                try:
                    if re.search(pattern, name):
                        return sub
                except (re.error, TypeError):
                    continue  # a pattern Python can't read: ignore it
        return extra if isinstance(extra, dict) else {}

    def _array(self, node: dict[str, Any], hint: str, depth: int) -> list[Any]:
        prefix = node.get("prefixItems") if isinstance(node.get("prefixItems"), list) else []
        items = node.get("items", {})
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, node.get("additionalItems", {})
        least = _count(node, "minItems") or 0
        most = _count(node, "maxItems")
        if items is False:
            most = len(prefix) if most is None else min(most, len(prefix))
        wanted = least if depth >= SOFT_DEPTH else max(least, self.rng.randint(1, 3))
        size = wanted if most is None else max(min(wanted, most), min(least, most))
        schemas = [prefix[i] if i < len(prefix) else items for i in range(size)]
        contains = node.get("contains")
        if isinstance(contains, (dict, bool)) and contains is not False:
            if size == len(prefix) and (most is None or size < most):
                schemas.append(items)
            if len(schemas) > len(prefix):
                schemas[-1] = _merge(self._resolve(schemas[-1]), self._resolve(contains))
        singular = _singular(hint)
        unique = node.get("uniqueItems") is True
        out: list[Any] = []
        seen: set[str] = set()
        for sub in schemas:
            item = self.value(sub, singular, depth + 1)
            if unique:
                for _ in range(8):  # a few tries for a value not given yet
                    if _key(item) not in seen:
                        break
                    item = self.value(sub, singular, depth + 1)
                seen.add(_key(item))
            out.append(item)
        return out

    def _bounds(self, node: dict[str, Any]) -> tuple[float | None, bool, float | None, bool]:
        """(low, low is exclusive, high, high is exclusive), the tighter of each pair."""
        low, low_strict = _number(node.get("minimum")), False
        high, high_strict = _number(node.get("maximum")), False
        ex_low, ex_high = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
        if ex_low is True and low is not None:  # draft 4
            low_strict = True
        elif _number(ex_low) is not None and (low is None or ex_low >= low):
            low, low_strict = ex_low, True
        if ex_high is True and high is not None:
            high_strict = True
        elif _number(ex_high) is not None and (high is None or ex_high <= high):
            high, high_strict = ex_high, True
        return low, low_strict, high, high_strict

    def _hint_range(self, hint: str) -> tuple[int, int]:
        words = set(name_words(hint))
        for names, span in _NUMBER_HINTS:
            if words & names:
                return span
        return 1, 100

    def _window(self, low: float | None, high: float | None, hint: str) -> tuple[float, float]:
        """Where to pick: the name's typical range inside the bounds, else near them."""
        a, b = self._hint_range(hint)
        if low is not None:
            a = max(a, low)
        if high is not None:
            b = min(b, high)
        if a <= b:
            return a, b
        if low is not None and high is not None:
            return low, high
        if low is not None:
            return low, low + 100
        return high - 100, high  # type: ignore[operator]  # high is set here

    def _proposed_number(self, node: dict[str, Any], hint: str, whole: bool) -> float | None:
        """The source's number for ``hint`` when it fits the bounds and multipleOf."""
        value = self.source.number(hint) if self.source else None
        if value is None or not math.isfinite(value) or (whole and value != int(value)):
            return None
        low, low_strict, high, high_strict = self._bounds(node)
        step = _number(node.get("multipleOf"))
        if ((low is not None and (value <= low if low_strict else value < low))
                or (high is not None and (value >= high if high_strict else value > high))
                or (step and not (value / step).is_integer())):
            return None
        return value

    def _integer(self, node: dict[str, Any], hint: str) -> int:
        proposed = self._proposed_number(node, hint, True)
        if proposed is not None:
            return int(proposed)
        low, low_strict, high, high_strict = self._bounds(node)
        lo = None if low is None else (math.floor(low) + 1 if low_strict else math.ceil(low))
        hi = None if high is None else (math.ceil(high) - 1 if high_strict else math.floor(high))
        if lo is not None and hi is not None and lo > hi:
            return lo  # unsatisfiable: the nearest thing
        a, b = self._window(lo, hi, hint)
        a, b = math.ceil(a), math.floor(b)
        step = _number(node.get("multipleOf"))
        if step is not None and step > 0:
            # The integer multiples of p/q are the multiples of p (0.3 reads as 3/10).
            whole = Fraction(step).limit_denominator(10 ** 6).numerator

            def fits(v: float | int) -> bool:
                # jsonschema divides by a float multipleOf: the quotient must come out whole.
                return ((lo is None or v >= lo) and (hi is None or v <= hi)
                        and (not isinstance(step, float) or (v / step).is_integer()))
            # The name's typical range may hold no multiple (a "count" of 1..10
            # with multipleOf 11): then the nearest multiples above or below it.
            found = self._multiple(Fraction(whole), ((a, b), (lo, hi), (a, None), (None, b)),
                                   fits)
            if found is not None:
                return int(found)
        return self.rng.randint(a, b) if a <= b else a

    def _float(self, node: dict[str, Any], hint: str) -> float | int:
        proposed = self._proposed_number(node, hint, False)
        if proposed is not None:
            return int(proposed) if proposed == int(proposed) else proposed
        low, low_strict, high, high_strict = self._bounds(node)

        def fits(v: float | int) -> bool:
            return (math.isfinite(v)
                    and (low is None or (v > low if low_strict else v >= low))
                    and (high is None or (v < high if high_strict else v <= high)))
        a, b = self._window(low, high, hint)
        step = _number(node.get("multipleOf"))
        if step is not None and step > 0:
            found = self._multiple(Fraction(step), ((a, b), (low, high), (a, None), (None, b)),
                                   fits)
            if found is not None:
                return found
        picked = self.rng.uniform(a, b)
        for candidate in (round(picked, 2), picked, a / 2 + b / 2):
            if fits(candidate):
                return candidate
        return a  # unsatisfiable (e.g. an empty exclusive range)

    def _multiple(self, step: Fraction, windows: tuple[tuple[float | None, float | None], ...],
                  fits: Callable[[float | int], bool]) -> float | int | None:
        """A multiple of ``step`` in the first window that has one, that ``fits``
        and survives float arithmetic as jsonschema checks it; else None."""
        for lo, hi in windows:
            if lo is None and hi is None:
                continue
            k_lo = math.ceil(Fraction(lo) / step) if lo is not None else math.floor(Fraction(hi) / step) - 10
            k_hi = math.floor(Fraction(hi) / step) if hi is not None else k_lo + 10
            if k_lo > k_hi:
                continue
            for _ in range(16):  # random multiples in range; exclusive ends may reject a few
                exact = self.rng.randint(k_lo, min(k_hi, k_lo + 1000)) * step
                value: float | int = int(exact) if exact.denominator == 1 else float(exact)
                if isinstance(value, float) and not (value / float(step)).is_integer():
                    continue
                if fits(value):
                    return value
        return None

    def _proposed_string(self, node: dict[str, Any], hint: str) -> str | None:
        """The source's text for ``hint`` when it fits the length, pattern and format."""
        text = self.source.string(hint) if self.source else None
        if text is None:
            return None
        least, most = _count(node, "minLength") or 0, _count(node, "maxLength")
        if len(text) < least or (most is not None and len(text) > most):
            return None
        pattern = node.get("pattern")
        try:
            if isinstance(pattern, str) and not re.search(pattern, text):
                return None
        except re.error:
            return None
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in _FORMAT_SHAPES and not re.fullmatch(_FORMAT_SHAPES[fmt], text):
            return None
        return text

    def _string(self, node: dict[str, Any], hint: str) -> str:
        proposed = self._proposed_string(node, hint)
        if proposed is not None:
            return proposed
        fmt = node.get("format")
        text = self._formatted(fmt) if isinstance(fmt, str) else None
        if text is None:
            text = self._natural(hint)
        least = _count(node, "minLength") or 0
        most = _count(node, "maxLength")
        if most is not None and most < least:
            most = least  # unsatisfiable: at least the minimum
        while len(text) < least:
            text += " " + self.rng.choice(_WORDS)
        if most is not None and len(text) > most:
            text = text[:most]
            if len(text.rstrip()) >= least:
                text = text.rstrip()
        return text

    def _formatted(self, fmt: str) -> str | None:
        rng = self.rng
        when = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randint(0, 63_000_000))
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        return {
            "date": lambda: (date(2024, 1, 1) + timedelta(days=rng.randint(0, 730))).isoformat(),
            "date-time": lambda: when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "time": lambda: when.strftime("%H:%M:%SZ"),
            "email": lambda: f"{first}.{last}@example.com".lower(),
            "idn-email": lambda: f"{first}.{last}@example.com".lower(),
            "uri": lambda: f"https://example.com/{rng.choice(_WORDS)}",
            "url": lambda: f"https://example.com/{rng.choice(_WORDS)}",
            "iri": lambda: f"https://example.com/{rng.choice(_WORDS)}",
            "uri-reference": lambda: f"/{rng.choice(_WORDS)}",
            "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "ipv4": lambda: f"192.0.2.{rng.randint(1, 254)}",
            "ipv6": lambda: f"2001:db8::{rng.randint(1, 0xffff):x}",
            "hostname": lambda: f"{rng.choice(_WORDS)}.example.com",
            "duration": lambda: f"P{rng.randint(1, 30)}D",
        }.get(fmt, lambda: None)()

    def _natural(self, hint: str) -> str:
        rng = self.rng
        words = set(name_words(hint))
        if words & {"city", "town", "location", "place", "destination", "origin", "where"}:
            return rng.choice(_CITIES)
        if words & {"country", "nation"}:
            return rng.choice(_COUNTRIES)
        if words & {"email", "mail"}:
            return self._formatted("email") or ""
        if words & {"url", "uri", "link", "website", "homepage", "href"}:
            return self._formatted("uri") or ""
        if words & {"uuid", "guid"}:
            return self._formatted("uuid") or ""
        if words & {"date", "birthday", "day"}:
            return self._formatted("date") or ""
        if words & {"datetime", "timestamp", "time", "at"}:
            return self._formatted("date-time") or ""
        if words & {"color", "colour"}:
            return rng.choice(_COLORS)
        if words & {"unit", "units"}:
            return rng.choice(("celsius", "fahrenheit", "metric"))
        if words & {"language", "lang", "locale"}:
            return rng.choice(("English", "French", "Japanese"))
        if words & {"currency"}:
            return rng.choice(("EUR", "USD", "JPY"))
        if words & {"zip", "postal", "postcode"}:
            return f"{rng.randint(10000, 99999)}"
        if words & {"phone", "telephone", "mobile"}:
            return f"+1-555-01{rng.randint(0, 99):02d}"
        if words & {"id", "key", "code", "ref", "sku"}:
            return f"{(hint or 'id').lower()[:8]}-{rng.getrandbits(24):06x}"
        if words & {"first", "given"}:
            return rng.choice(_FIRST)
        if words & {"last", "surname", "family"}:
            return rng.choice(_LAST)
        if words & {"name", "author", "person", "user", "username", "contact"}:
            return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        if words & {"query", "q", "search", "question", "prompt", "text", "message", "content",
                    "description", "summary", "title", "reason", "comment", "note", "body",
                    "answer", "topic", "subject"}:
            phrase = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 6)))
            return phrase.capitalize()
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 2)))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _key(value: Any) -> str:
    """A comparison key for uniqueItems (JSON equality: 1 == 1.0, but True != 1)."""
    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None:
            return ["b", v]
        if isinstance(v, float) and v.is_integer():
            return ["n", int(v)]
        if isinstance(v, (int, float)):
            return ["n", v]
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v
    try:
        return json.dumps(norm(value), sort_keys=True)
    except (RecursionError, ValueError):
        return str(id(value))  # a const nested deeper than Python recurses: unique enough


def _singular(hint: str) -> str:
    if hint.endswith("ies"):
        return hint[:-3] + "y"
    if hint.endswith("s") and not hint.endswith("ss"):
        return hint[:-1]
    return hint
