"""The emulator's JSON Schema -> instance generator: table-driven cases, a
property over generated schemas (every instance validates, checked with the
``jsonschema`` library, formats included), and arbitrary JSON as a schema
(never an exception)."""
from __future__ import annotations

import json
import random
import time
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.schema_instances import instance, name_words

VALIDATOR = jsonschema.Draft202012Validator


def check(schema: Any, value: Any) -> None:
    """Validate with the draft ``$schema`` names (2020-12 when none), formats checked."""
    cls = jsonschema.validators.validator_for(schema, default=VALIDATOR)
    cls(schema, format_checker=cls.FORMAT_CHECKER).validate(value)


def build(schema: Any, seed: int = 0, hint: str = "") -> Any:
    value = instance(schema, random.Random(seed), hint)
    json.dumps(value, allow_nan=False)  # always a JSON value
    return value


CASES: list[tuple[str, Any]] = [
    ("types", {"type": "object", "properties": {
        "s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"},
        "b": {"type": "boolean"}, "z": {"type": "null"}}, "required": ["s", "i", "n", "b", "z"]}),
    ("type list", {"type": ["integer", "string", "null"]}),
    ("only null", {"type": ["null"]}),
    ("enum and const", {"type": "object", "properties": {
        "unit": {"enum": ["celsius", "fahrenheit"]}, "v": {"const": {"k": [1, 2]}},
        "typed": {"type": "string", "enum": [1, "one", None]}}, "required": ["unit", "v", "typed"]}),
    ("required not in properties", {"type": "object", "required": ["a", "b"],
                                    "additionalProperties": {"type": "integer"}}),
    ("additionalProperties false", {"type": "object", "properties": {"a": {"type": "string"}},
                                    "additionalProperties": False, "minProperties": 1}),
    ("minProperties beyond properties", {"type": "object", "properties": {"a": {"type": "integer"}},
                                         "minProperties": 4}),
    ("maxProperties", {"type": "object", "properties": {k: {"type": "integer"} for k in "abcdef"},
                       "required": ["a"], "maxProperties": 2}),
    ("dependentRequired", {"type": "object",
                           "properties": {"card": {"type": "string"}, "cvv": {"type": "string"}},
                           "required": ["card"], "dependentRequired": {"card": ["cvv"]}}),
    ("patternProperties", {"type": "object", "required": ["x_count"],
                           "patternProperties": {"^x_": {"type": "integer", "minimum": 7}},
                           "additionalProperties": False}),
    ("nested", {"type": "object", "properties": {"a": {"type": "object", "properties": {
        "b": {"type": "array", "items": {"type": "object", "properties": {
            "c": {"type": "integer", "minimum": 3, "maximum": 3}}, "required": ["c"]},
            "minItems": 2}}, "required": ["b"]}}, "required": ["a"]}),
    ("arrays", {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                "uniqueItems": True}),
    ("prefixItems closed", {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
                            "items": False, "minItems": 2}),
    ("draft 7 tuple items", {"$schema": "http://json-schema.org/draft-07/schema#", "type": "array",
                             "items": [{"type": "boolean"}, {"type": "null"}],
                             "additionalItems": False, "minItems": 2}),
    ("contains", {"type": "array", "items": {"type": "integer"}, "contains": {"minimum": 1000},
                  "maxItems": 2}),
    ("anyOf", {"anyOf": [{"type": "string", "format": "email"}, {"type": "integer"}]}),
    ("oneOf", {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]}),
    ("allOf", {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                         {"properties": {"b": {"type": "string"}}, "required": ["b"]},
                         {"properties": {"a": {"minimum": 50}}}]}),
    ("allOf numbers", {"allOf": [{"type": "number"}, {"type": "integer", "maximum": 3}, {"minimum": 3}]}),
    ("$defs", {"$defs": {"p": {"type": "object", "properties": {"name": {"type": "string"}},
                               "required": ["name"]}},
               "type": "array", "items": {"$ref": "#/$defs/p"}, "minItems": 1}),
    ("definitions", {"definitions": {"p": {"type": "integer", "multipleOf": 7}},
                     "properties": {"x": {"$ref": "#/definitions/p"}}, "required": ["x"]}),
    ("$ref with siblings", {"$defs": {"s": {"type": "string"}},
                            "$ref": "#/$defs/s", "maxLength": 3, "minLength": 3}),
    ("escaped pointer", {"$defs": {"a/b": {"type": "integer"}}, "$ref": "#/$defs/a~1b"}),
    ("recursive tree", {"type": "object", "properties": {
        "value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["value", "children"]}),
    ("integer bounds", {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 12}),
    ("integer float bounds", {"type": "integer", "minimum": 1.5, "maximum": 2.5}),
    ("draft 4 exclusive", {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer",
                           "minimum": 0, "maximum": 1, "exclusiveMinimum": True}),
    ("number bounds", {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.001}),
    ("number tiny range", {"type": "number", "minimum": 0.123456, "maximum": 0.123457}),
    ("number huge range", {"type": "number", "minimum": -1e308, "maximum": 1e308}),
    ("number multipleOf", {"type": "number", "multipleOf": 0.25, "minimum": 1.1, "maximum": 1.4}),
    ("integer multipleOf", {"type": "integer", "multipleOf": 6, "minimum": 100, "maximum": 110}),
    ("integer fractional multipleOf", {"type": "integer", "multipleOf": 0.3, "minimum": 1,
                                       "maximum": 10}),
    ("number multipleOf in an exclusive range", {"type": "number", "multipleOf": 0.5,
                                                 "exclusiveMinimum": 1, "exclusiveMaximum": 2}),
    ("only a lower bound", {"type": "integer", "minimum": 10 ** 12}),
    ("only an upper bound", {"type": "number", "maximum": -5000.5}),
    ("string lengths", {"type": "string", "minLength": 30, "maxLength": 31}),
    ("short string", {"type": "string", "maxLength": 1}),
    ("empty string", {"type": "string", "maxLength": 0}),
    ("formats", {"type": "object", "properties": {
        f: {"type": "string", "format": f} for f in
        ("date", "date-time", "time", "email", "uri", "uuid", "ipv4", "ipv6", "hostname")},
        "required": ["date", "date-time", "time", "email", "uri", "uuid", "ipv4", "ipv6",
                     "hostname"]}),
    ("inferred types", {"properties": {"a": {"minLength": 2}, "b": {"minimum": 5},
                                       "c": {"minItems": 1}}, "required": ["a", "b", "c"]}),
    ("true schema", True),
    ("empty schema", {}),
]


@pytest.mark.parametrize("name,schema", CASES, ids=[c[0] for c in CASES])
def test_instances_validate(name: str, schema: Any) -> None:
    for seed in range(20):
        check(schema, build(schema, seed))


def test_the_same_rng_gives_the_same_instance() -> None:
    schema = CASES[10][1]
    assert build(schema, 3) == build(schema, 3)
    assert len({json.dumps(build(CASES[0][1], seed)) for seed in range(10)}) > 1


@pytest.mark.parametrize("hint,schema,expected", [
    ("city", {"type": "string"}, {"Paris", "Tokyo", "Lisbon", "Nairobi", "Montreal",
                                  "Buenos Aires", "Oslo", "Seoul"}),
    ("destination_city", {"type": "string"}, None),
    ("email", {"type": "string"}, None),
    ("age", {"type": "integer"}, set(range(18, 91))),
    ("month", {"type": "integer", "minimum": 6}, set(range(6, 13))),
    ("unit", {"enum": ["c", "f"]}, {"c", "f"}),
])
def test_names_shape_values(hint: str, schema: Any, expected: set | None) -> None:
    for seed in range(10):
        value = build(schema, seed, hint)
        check(schema, value)
        if expected is not None:
            assert value in expected
        elif "email" in hint:
            check({"format": "email"}, value)
            assert "@" in value


@pytest.mark.parametrize("schema", [
    {"type": "integer", "minimum": 5, "maximum": 1},
    {"type": "string", "minLength": 5, "maxLength": 2},
    {"type": "object", "properties": {"n": {"$ref": "#"}}, "required": ["n"]},
    {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
    {"type": "array", "minItems": 10 ** 9, "items": {"type": "array", "minItems": 10 ** 9}},
    {"type": "integer", "multipleOf": 0.5, "minimum": 1.2, "maximum": 1.3},
    {"$ref": "https://example.com/schema.json"}, {"$ref": "#anchor"}, {"$ref": 7},
    {"type": "object", "patternProperties": {"(": {}}, "required": ["x"]},
    {"anyOf": [], "oneOf": "x", "allOf": {}, "enum": [], "items": 3, "properties": [1]},
    {"type": "number", "minimum": "1", "maximum": None, "multipleOf": -2},
    False, None, 3, "string", [],
])
def test_unsatisfiable_and_junk_schemas_come_back_quickly(schema: Any) -> None:
    started = time.monotonic()
    build(schema)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("name,words", [
    ("get_weather", ["get", "weather"]), ("getWeather", ["get", "weather"]),
    ("book-flight2", ["book", "flight2"]), ("", [])])
def test_name_words(name: str, words: list[str]) -> None:
    assert name_words(name) == words


# --- property: generated schemas

NAMES = st.sampled_from(["city", "name", "email", "age", "count", "price", "query", "tags",
                         "created_at", "id", "x", "lat", "zip", "url", "unit", "items"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
                    st.floats(-1e6, 1e6, allow_nan=False), st.text(max_size=6))
FORMATS = ["date", "date-time", "time", "email", "uri", "uuid", "ipv4", "ipv6", "hostname"]


@st.composite
def strings(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    fmt = draw(st.sampled_from([None, *FORMATS]))
    if fmt:
        schema["format"] = fmt
        return schema
    low = draw(st.none() | st.integers(0, 40))
    high = draw(st.none() | st.integers(0, 50))
    if low is not None:
        schema["minLength"] = low
    if high is not None:
        schema["maxLength"] = max(high, low or 0)
    return schema


@st.composite
def integers(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    step = draw(st.none() | st.integers(1, 12))
    low = draw(st.none() | st.integers(-10 ** 6, 10 ** 6))
    span = draw(st.integers(2 + (step or 0), 10_000))
    high = draw(st.none() | st.just(None if low is None else low + span)) if low is not None \
        else draw(st.none() | st.integers(-10 ** 6, 10 ** 6))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if high is not None:
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    if step:
        schema["multipleOf"] = step
    return schema


@st.composite
def numbers(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    step = draw(st.sampled_from([None, None, 0.25, 0.5, 2, 3]))
    low = draw(st.none() | st.floats(-1e6, 1e6))
    high = None
    if draw(st.booleans()):
        base = -1e6 if low is None else low
        high = base + draw(st.floats(2 * (step or 0) + 0.001, 1e4))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if high is not None:
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    if step:
        schema["multipleOf"] = step
    return schema


LEAVES = st.one_of(
    strings(), integers(), numbers(), st.just({"type": "boolean"}), st.just({"type": "null"}),
    st.lists(SCALARS, min_size=1, max_size=4, unique_by=json.dumps).map(lambda e: {"enum": e}),
    SCALARS.map(lambda c: {"const": c}),
    strings().map(lambda s: {**s, "type": ["string", "null"]}),
    integers().map(lambda s: {**s, "type": ["null", "integer"]}),
    st.just(True), st.just({}),
)


@st.composite
def objects(draw: st.DrawFn, children: st.SearchStrategy[Any], closed_ok: bool = True) -> dict:
    props = draw(st.dictionaries(NAMES, children, max_size=4))
    schema: dict[str, Any] = {"type": "object", "properties": props}
    required = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
    extra = draw(st.sampled_from(["absent", "false", "schema"] if closed_ok else ["absent"]))
    if extra == "false":
        schema["additionalProperties"] = False
        if props and draw(st.booleans()):
            schema["minProperties"] = draw(st.integers(0, len(props)))
    else:
        if extra == "schema":
            schema["additionalProperties"] = draw(children)
        if draw(st.booleans()):
            required.append("other")
        if draw(st.booleans()):
            schema["minProperties"] = draw(st.integers(0, 6))
    if required:
        schema["required"] = required
    if draw(st.booleans()):
        schema["maxProperties"] = len(required) + draw(st.integers(0, 3))
        schema.pop("minProperties", None)
    return schema


@st.composite
def arrays(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict:
    schema: dict[str, Any] = {"type": "array"}
    if draw(st.booleans()):
        schema["prefixItems"] = draw(st.lists(children, min_size=1, max_size=2))
    unique = draw(st.booleans())
    schema["items"] = draw(st.just({"type": "string"}) | integers().map(
        lambda s: {"type": "integer"})) if unique else draw(children)
    if unique:
        schema.pop("prefixItems", None)
        schema["uniqueItems"] = True
    low = draw(st.integers(0, 3))
    if draw(st.booleans()):
        schema["minItems"] = low
    if draw(st.booleans()):
        schema["maxItems"] = low + draw(st.integers(0, 3))
    return schema


@st.composite
def one_ofs(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict:
    # Branches of types no value shares, so that exactly one can match.
    kinds = {"string": strings(), "integer": integers(), "boolean": st.just({"type": "boolean"}),
             "null": st.just({"type": "null"}), "object": objects(children),
             "array": arrays(children)}
    picked = draw(st.lists(st.sampled_from(sorted(kinds)), min_size=1, max_size=3, unique=True))
    return {"oneOf": [draw(kinds[k]) for k in picked]}


@st.composite
def all_ofs(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict:
    first = draw(objects(children, closed_ok=False))
    second = draw(objects(children, closed_ok=False))
    second["properties"] = {f"{k}_2": v for k, v in second["properties"].items()}
    second["required"] = [f"{k}_2" for k in second.get("required", []) if k != "other"]
    second.pop("maxProperties", None)
    first.pop("maxProperties", None)
    return {"allOf": [first, second]}


def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(objects(children), arrays(children), one_ofs(children), all_ofs(children),
                     st.lists(children, min_size=1, max_size=3).map(lambda b: {"anyOf": b}))


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A whole schema, sometimes with $defs (or definitions) that it $refs."""
    container = draw(st.sampled_from(["$defs", "definitions"]))
    defs = draw(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                                st.recursive(LEAVES, extend, max_leaves=6), max_size=2))
    leaves = LEAVES
    if defs:
        refs = [{"$ref": f"#/{container}/{name}"} for name in sorted(defs)]
        leaves = st.one_of(LEAVES, st.sampled_from(refs))
    body = draw(st.recursive(leaves, extend, max_leaves=12))
    if defs:
        if not isinstance(body, dict):
            body = {"anyOf": [body]}
        body = {**body, container: defs}
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.integers(0, 2 ** 32))
def test_every_generated_instance_validates(schema: Any, seed: int) -> None:
    VALIDATOR.check_schema(schema)
    check(schema, build(schema, seed))


JSON = st.recursive(SCALARS | st.text(max_size=3),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["type", "properties", "required", "items", "enum",
                                         "const", "$ref", "anyOf", "oneOf", "allOf", "minimum",
                                         "maxLength", "minItems", "additionalProperties",
                                         "format", "$defs", "prefixItems", "x"]), c, max_size=5),
                    max_leaves=25)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON, st.integers(0, 2 ** 32))
def test_any_json_as_a_schema_gives_a_value_not_an_exception(schema: Any, seed: int) -> None:
    build(schema, seed)
