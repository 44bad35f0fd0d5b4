"""Issue 19, item 2: what a schema may ask of the checker (caps, each a 400
naming the part), the checks stopping at their first problems, and the one
validation allowance a request's checks share."""
from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib import deadline
from chalicelib.errors import InvalidRequestError, ValidationBudgetError
from chalicelib.models import schemas
from chalicelib.models.schemas import canonical, check_schema, problems
from tests.support import hostile_answer, hostile_schema

WHERE = "tools[0].function.parameters"
STRING = {"type": "string"}


def patterns(count: int) -> dict[str, Any]:
    return {"type": "object", "properties": {
        f"p{i}": {"type": "string", "pattern": f"^{i}$"} for i in range(count)}}


@pytest.mark.parametrize("schema,param,words", [
    ({"type": "object", "description": "x" * schemas.MAX_SCHEMA_BYTES}, WHERE, "bytes"),
    ({"type": "object", "properties": {"a": {"anyOf": [STRING] * 33}}},
     f"{WHERE}.properties.a.anyOf", "33 branches"),
    ({"type": "object", "properties": {"a": {"oneOf": [STRING] * 33}}},
     f"{WHERE}.properties.a.oneOf", "33 branches"),
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "a" * 1001}}},
     f"{WHERE}.properties.a.pattern", "1001 characters"),
    ({"type": "object", "patternProperties": {"a" * 1001: STRING}},
     f"{WHERE}.patternProperties", "1001 characters"),
    (patterns(65), f"{WHERE}.properties.p64.pattern", "64 patterns"),
    ({"type": "object", "properties": {"a": {
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "string"}}},
     f"{WHERE}.properties.a.$schema", "only allowed at the root"),
])
def test_a_schema_over_a_cap_is_refused_naming_the_part(schema: dict[str, Any], param: str,
                                                        words: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_schema(schema, WHERE)
    assert caught.value.param == param
    assert words in str(caught.value)


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"anyOf": [STRING] * 32}}},
    patterns(64),
    {"type": "object", "properties": {"$schema": {"type": "string"}, "pattern": STRING}},
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"},
    hostile_schema(),  # small: only the budget can refuse it, once an answer is checked
])
def test_schemas_within_the_caps_pass(schema: dict[str, Any]) -> None:
    assert check_schema(schema, WHERE) == canonical(schema)


def test_a_check_stops_at_its_first_problems() -> None:
    # Sorting all 10,000 by path once gave $[0], $[1], $[10], $[100], $[1000].
    found = problems(["x"] * 10_000, canonical({"type": "array", "items": {"type": "integer"}}))
    assert [p.split(":")[0] for p in found] == [f"$[{i}]" for i in range(5)]


def test_the_issue_schema_runs_out_of_the_budget() -> None:
    with pytest.raises(ValidationBudgetError):
        problems(hostile_answer(), canonical(hostile_schema()))


def test_a_requests_checks_share_one_allowance() -> None:
    deadline.start(deadline.Deadline(time.monotonic() + 60))
    with pytest.raises(ValidationBudgetError):
        problems(hostile_answer(), canonical(hostile_schema()))
    assert deadline.validation().left <= 0
    with pytest.raises(ValidationBudgetError):  # even a trivial check: nothing is left
        problems({}, canonical({"type": "object"}))
    deadline.start(deadline.Deadline(time.monotonic() + 60))  # the next request's own
    assert problems({}, canonical({"type": "object"})) == []


def test_the_allowance_never_runs_past_the_deadline() -> None:
    deadline.start(deadline.Deadline(time.monotonic() - 1))
    with pytest.raises(ValidationBudgetError):
        problems({}, canonical({"type": "object"}))


def test_outside_a_request_each_check_has_the_whole_allowance() -> None:
    for _ in range(2):
        with pytest.raises(ValidationBudgetError):
            problems(hostile_answer(), canonical(hostile_schema()))
        assert problems({}, canonical({"type": "object"})) == []


UNIQUE = {"type": "array", "uniqueItems": True}


@pytest.mark.parametrize("document", [
    [1, True], [1, 1.0], [0, False], ["a", "b"], [{"a": 1}, {"a": 1}], [{"a": 1}, {"a": 1.0}],
    [[1], [True]], [None, None], [1, "1"], [{"a": 1, "b": 2}, {"b": 2, "a": 1}],
    [10**20, 1e20], [0.5, 0.5], [[], {}], [{"a": [1, {"b": False}]}, {"a": [1.0, {"b": 0}]}],
])
def test_unique_items_judges_as_jsonschema_does(document: list[Any]) -> None:
    from jsonschema import Draft202012Validator
    assert (problems(document, canonical(UNIQUE)) == []) == \
        Draft202012Validator(UNIQUE).is_valid(document)


def test_unique_items_of_many_objects_is_checked_within_the_budget() -> None:
    # jsonschema compares every pair of them inside one keyword call: minutes
    # for 20,000, with no clock to stop it.
    assert problems([{"a": i} for i in range(20_000)], canonical(UNIQUE)) == []
    repeated = [{"a": i} for i in range(20_000)] + [{"a": 0}]
    assert len(problems(repeated, canonical(UNIQUE))) == 1
