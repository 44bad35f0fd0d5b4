"""JSON Schema: which schemas the endpoint can enforce, and checking documents.

Tool ``parameters`` and ``response_format`` schemas are checked when a request
arrives, so that a schema the endpoint cannot enforce is a 400 naming the part,
not a surprise after the model has answered. Documents the model produced are
validated with ``jsonschema`` (the reference implementation, pure Python but
for ``rpds-py``, which ships manylinux wheels for Lambda). It is imported on
first use: a plain chat request never pays for it, nor does a cold start.

Enforceable means: a valid schema of its draft (2020-12 when ``$schema`` names
none), local references only (``#...``; the endpoint never fetches a URL), and
``format`` checked where ``jsonschema``'s FormatChecker knows the format.

A schema's patterns come from the client and the strings they are matched
against from the model, and jsonschema matches them with Python's ``re``, a
backtracking engine without a time limit: ``^(a|aa)+$`` against forty a's and
a "!" runs for hours, holding the request (and its reservation) past every
deadline. jsonschema's pattern keywords (``pattern``, ``patternProperties``,
``additionalProperties``, ``unevaluatedProperties``) therefore search with the
``regex`` module, which takes a timeout: a pattern too slow for the answer is
a problem with the answer (a repair, then 422), never a hang.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from chalicelib.errors import InvalidRequestError

MAX_SCHEMA_DEPTH = 32
# One pattern against one string: microseconds for any sane pattern.
PATTERN_TIMEOUT_S = 0.05


class PatternTooSlowError(ValueError):
    """A schema's pattern took too long on a string of the answer."""


class _BoundedRe:
    """``re`` as jsonschema's keyword modules see it, searching with a timeout."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    @staticmethod
    def search(pattern: str, string: str, flags: int = 0) -> Any:
        import regex
        try:
            return regex.search(pattern, string, flags, timeout=PATTERN_TIMEOUT_S)
        except TimeoutError:
            raise PatternTooSlowError(
                f"the pattern {pattern[:100]!r} takes too long to match {string[:40]!r}") from None


@functools.lru_cache(maxsize=1)
def _bounded_patterns() -> None:
    """Give jsonschema's pattern keywords the bounded search (once, on first use).
    These are the modules whose keywords apply a schema's patterns
    (jsonschema 4.26, pinned; test_adversarial checks it still holds)."""
    from jsonschema import _keywords, _legacy_keywords, _utils
    for module in (_keywords, _legacy_keywords, _utils):
        module.re = _BoundedRe()  # type: ignore[attr-defined]


def canonical(schema: Any) -> str:
    """The schema as compact JSON text: hashable, cacheable. Keys keep the
    client's order, which the model sees (properties are filled in order)."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def _walk(node: Any, where: str, depth: int = 0) -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every key of every object inside ``node``."""
    if depth > MAX_SCHEMA_DEPTH:
        raise InvalidRequestError(f"'{where}' nests deeper than {MAX_SCHEMA_DEPTH} levels.",
                                  param=where)
    if isinstance(node, dict):
        for key, value in node.items():
            yield where, key, value
            yield from _walk(value, f"{where}.{key}", depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{where}[{index}]", depth + 1)


def _resolves(root: Any, ref: Any) -> bool:
    """A local JSON-pointer reference (``#`` or ``#/a/b``) that names a part of ``root``."""
    if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
        return False
    node = root
    for token in ref[2:].split("/") if ref != "#" else []:
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


def _validator_class(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator, validators
    return validators.validator_for(schema, default=Draft202012Validator)


def check_schema(schema: Any, where: str) -> str:
    """``schema`` as canonical text, or InvalidRequestError naming the part
    the endpoint cannot enforce."""
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"'{where}' must be a JSON Schema object.", param=where)
    for path, key, value in _walk(schema, where):
        if key == "$ref" and not _resolves(schema, value):
            raise InvalidRequestError(
                f"'{path}.$ref' must point inside the schema ('#/$defs/Name'): this endpoint "
                "does not fetch remote schemas.", param=f"{path}.$ref")
    from jsonschema.exceptions import SchemaError
    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        part = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.absolute_path)
        raise InvalidRequestError(f"'{where}{part}' is not valid JSON Schema: "
                                  f"{exc.message[:200]}", param=f"{where}{part}") from None
    try:
        return canonical(schema)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"'{where}' must be a JSON Schema object.", param=where) from None


@functools.lru_cache(maxsize=256)
def _validator(schema_text: str) -> Any:
    from jsonschema import FormatChecker
    _bounded_patterns()
    schema = json.loads(schema_text)
    return _validator_class(schema)(schema, format_checker=FormatChecker())


def problems(document: Any, schema_text: str, limit: int = 5) -> list[str]:
    """Why ``document`` is not valid against the schema ([] when it is), each
    problem with the path of the part it concerns, for errors and repair hints."""
    try:
        errors = sorted(_validator(schema_text).iter_errors(document),
                        key=lambda e: list(map(str, e.absolute_path)))
    except PatternTooSlowError as exc:
        return [str(exc)]
    except Exception as exc:  # noqa: BLE001 - a schema fault must not become a 500
        return [f"the schema could not be applied ({type(exc).__name__})"]
    found = []
    for error in errors[:limit]:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        found.append(f"${path}: {error.message[:200]}")
    return found
