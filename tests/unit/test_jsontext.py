"""chalicelib.jsontext: JSON text read within a nesting bound (pure)."""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from chalicelib import jsontext
from chalicelib.jsontext import MAX_DEPTH, TooDeepError

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (st.lists(inner, max_size=3)
                   | st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=20)


def nest(value: Any, levels: int) -> Any:
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


def measured(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(measured, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(measured, value), default=0)
    return 0


@given(JSON_VALUES, st.integers(0, 20))
def test_depth_is_the_nesting_of_lists_and_objects(value: Any, levels: int) -> None:
    nested = nest(value, levels)
    assert jsontext.depth(nested) == measured(nested)
    assert jsontext.loads(json.dumps(nested)) == nested


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 990, 5_000, 100_000])
@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a": ', "}")])
def test_text_nested_too_deep_is_a_value_error(levels: int, opener: str, closer: str) -> None:
    text = opener * levels + "1" + closer * levels
    with pytest.raises(TooDeepError):
        jsontext.loads(text)
    with pytest.raises(ValueError):
        jsontext.raw_decode("say " + text + " then", 4)


def test_text_at_the_bound_is_read() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert jsontext.depth(jsontext.loads(text)) == MAX_DEPTH
    assert jsontext.raw_decode(text + " and more", 0)[1] == len(text)
