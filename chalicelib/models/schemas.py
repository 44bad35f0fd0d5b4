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

One bound per search is not a bound per request: items times ``anyOf``
branches times patterns multiply (an 836-byte schema and a 1.5 KB answer took
29 s of CPU). So all the validation one request or job does, repairs and
streamed checks included, shares one allowance (``VALIDATION_BUDGET_S``,
kept by ``deadline.py`` and never past the deadline): every keyword jsonschema
applies checks the clock, every pattern search is bounded by what is left,
and an answer whose check runs out of it is unusable (ValidationBudgetError,
a 422 that bills what Bedrock generated; asking again could only run out
again). Schemas are capped in size, branches and patterns when the request
arrives (a 400 naming the part), and a document's check stops at its first
few problems rather than collecting and sorting all of them.
"""
from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from itertools import islice
from typing import Any
from urllib.parse import unquote

from chalicelib import deadline
from chalicelib.errors import InvalidRequestError, ValidationBudgetError

MAX_SCHEMA_DEPTH = 32
# One pattern against one string: microseconds for any sane pattern.
PATTERN_TIMEOUT_S = 0.05
# Caps on what a schema may ask of the checker (OpenAI documents none for
# branches or patterns; these are far above any real tool or format schema).
MAX_SCHEMA_BYTES = 65_536  # of the schema's compact JSON text
MAX_BRANCHES = 32  # in one anyOf / oneOf
MAX_PATTERNS = 64  # pattern and patternProperties keys, in one schema
MAX_PATTERN_CHARS = 1_000
MAX_PROBLEMS = 5  # a check stops at this many problems
# When the current stretch of validation must end (time.monotonic()).
_ends: ContextVar[float] = ContextVar("validation_ends", default=float("inf"))


class PatternTooSlowError(ValueError):
    """A schema's pattern took too long on a string of the answer."""


class _BoundedRe:
    """``re`` as jsonschema's keyword modules see it, searching with a timeout."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    @staticmethod
    def search(pattern: str, string: str, flags: int = 0) -> Any:
        import regex
        left = _ends.get() - time.monotonic()
        try:
            return regex.search(pattern, string, flags,
                                timeout=max(0.001, min(PATTERN_TIMEOUT_S, left)))
        except TimeoutError:
            if left <= PATTERN_TIMEOUT_S:
                raise _out_of_time() from None
            raise PatternTooSlowError(
                f"the pattern {pattern[:100]!r} takes too long to match {string[:40]!r}") from None


def _out_of_time() -> ValidationBudgetError:
    return ValidationBudgetError(
        "The model's answer could not be used: checking it against the schema took longer "
        f"than the {deadline.VALIDATION_BUDGET_S:g} s a request may spend on it; "
        "simplify the schema (fewer anyOf branches and patterns).")


def _guarded(keyword: Callable[..., Any]) -> Callable[..., Any]:
    """A jsonschema keyword that first checks the clock: every branch, item
    and property the checker visits passes through one of them."""
    def check(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        if time.monotonic() > _ends.get():
            raise _out_of_time()
        return keyword(validator, value, instance, schema)
    return check


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


@functools.lru_cache(maxsize=8)
def _guarded_class(cls: Any) -> Any:
    """``cls`` with every keyword guarded by the clock. Subschemas keep the
    class (jsonschema's ``evolve``) unless they name a ``$schema`` of their
    own, which ``check_schema`` refuses."""
    from jsonschema import validators
    keywords = dict(cls.VALIDATORS)
    if "uniqueItems" in keywords:
        keywords["uniqueItems"] = _unique_items
    return validators.extend(cls, {name: _guarded(keyword) for name, keyword in keywords.items()})


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """jsonschema's ``uniqueItems`` in linear time: jsonschema compares every
    pair of an array of objects inside one keyword call (seconds for a few
    thousand, out of the clock's reach). Each item is keyed by its canonical
    JSON, numbers compared as JSON Schema does (1 and 1.0 alike, true and 1
    not)."""
    from jsonschema.exceptions import ValidationError
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[str] = set()
    for item in instance:
        if time.monotonic() > _ends.get():
            raise _out_of_time()
        key = json.dumps(_same_numbers(item), sort_keys=True, ensure_ascii=False)
        if key in seen:
            yield ValidationError(f"{instance!r} has non-unique elements")
            return
        seen.add(key)


def _same_numbers(value: Any) -> Any:
    """``value`` with each integral float as its int (JSON Schema's equality)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _same_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_numbers(v) for v in value]
    return value


def _caps(root: str, path: str, key: str, value: Any, counted: list[int]) -> None:
    """InvalidRequestError when the part at ``path.key`` is over a cap."""
    where = f"{path}.{key}"
    if key in ("anyOf", "oneOf") and isinstance(value, list) and len(value) > MAX_BRANCHES:
        raise InvalidRequestError(f"'{where}' has {len(value)} branches; at most "
                                  f"{MAX_BRANCHES} are allowed.", param=where)
    if key == "$schema" and isinstance(value, str) and path != root:
        raise InvalidRequestError(f"'{where}' is only allowed at the root of the schema.",
                                  param=where)
    patterns = [value] if key == "pattern" and isinstance(value, str) else \
        list(value) if key == "patternProperties" and isinstance(value, dict) else []
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise InvalidRequestError(f"'{where}' is a pattern of {len(pattern)} characters; "
                                      f"at most {MAX_PATTERN_CHARS} are allowed.", param=where)
    counted[0] += len(patterns)
    if counted[0] > MAX_PATTERNS:
        raise InvalidRequestError(f"'{where}' is past the schema's {MAX_PATTERNS} patterns, "
                                  f"the most one schema may have.", param=where)


def check_schema(schema: Any, where: str) -> str:
    """``schema`` as canonical text, or InvalidRequestError naming the part
    the endpoint cannot enforce."""
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"'{where}' must be a JSON Schema object.", param=where)
    try:
        text = canonical(schema)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"'{where}' must be a JSON Schema object.", param=where) from None
    if len(text.encode("utf-8")) > MAX_SCHEMA_BYTES:
        raise InvalidRequestError(f"'{where}' is over {MAX_SCHEMA_BYTES} bytes as JSON.",
                                  param=where)
    counted = [0]
    for path, key, value in _walk(schema, where):
        _caps(where, path, key, value, counted)
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
    return text


@functools.lru_cache(maxsize=256)
def _validator(schema_text: str) -> Any:
    from jsonschema import FormatChecker
    _bounded_patterns()
    schema = json.loads(schema_text)
    return _guarded_class(_validator_class(schema))(schema, format_checker=FormatChecker())


def problems(document: Any, schema_text: str, limit: int = MAX_PROBLEMS) -> list[str]:
    """Why ``document`` is not valid against the schema ([] when it is), its
    first ``limit`` problems each with the path of the part it concerns, for
    errors and repair hints. Raises ValidationBudgetError when the request's
    validation allowance (or its deadline) runs out first."""
    allowance = deadline.validation()
    started = time.monotonic()
    ends = started + min(allowance.left, deadline.current().remaining())
    if ends <= started:
        raise _out_of_time()
    token = _ends.set(ends)
    try:
        errors = sorted(islice(_validator(schema_text).iter_errors(document), limit),
                        key=lambda e: list(map(str, e.absolute_path)))
    except ValidationBudgetError:
        raise
    except PatternTooSlowError as exc:
        return [str(exc)]
    except Exception as exc:  # noqa: BLE001 - a schema fault must not become a 500
        return [f"the schema could not be applied ({type(exc).__name__})"]
    finally:
        _ends.reset(token)
        allowance.spend(time.monotonic() - started)
    found = []
    for error in errors:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        found.append(f"${path}: {error.message[:200]}")
    return found
