"""The emulator's deterministic generator and its event-stream framing."""
from __future__ import annotations

import json
import math

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from devstack import eventstream
from devstack.generator import count_tokens, generate

KW = dict(temperature=0.5, top_p=0.9, seed=0)


def test_same_inputs_same_text() -> None:
    assert generate("m", "p", max_tokens=512, **KW) == generate("m", "p", max_tokens=512, **KW)


@pytest.mark.parametrize("change", [
    {"model_id": "other"}, {"prompt": "q"}, {"temperature": 0.1}, {"top_p": 0.5}, {"seed": 7}])
def test_any_input_changes_the_text(change: dict) -> None:
    base = dict(model_id="m", prompt="p", max_tokens=512, **KW)
    assert generate(**{**base, **change}).text != generate(**base).text


def test_token_counts_are_about_four_characters() -> None:
    assert [count_tokens(t) for t in ("", "a", "abcd", "abcde", "x" * 400)] == [0, 1, 1, 2, 100]


@pytest.mark.parametrize("max_tokens", [1, 2, 5, 13, 40])
def test_max_tokens_cuts_with_length(max_tokens: int) -> None:
    full = generate("m", "long", max_tokens=2048, **KW)
    assert count_tokens(full.text) > 40 and full.stop_reason == "stop"
    cut = generate("m", "long", max_tokens=max_tokens, **KW)
    assert cut.stop_reason == "length"
    assert count_tokens(cut.text) == max_tokens
    assert full.text.startswith(cut.text)


def test_event_stream_messages_decode_with_botocore() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(eventstream.event("chunk", {"bytes": "eyJhIjoxfQ=="}))
    buffer.add_data(eventstream.exception("throttlingException", "slow down"))
    first, second = list(buffer)
    assert first.headers == {":event-type": "chunk", ":content-type": "application/json",
                             ":message-type": "event"}
    assert json.loads(first.payload) == {"bytes": "eyJhIjoxfQ=="}
    assert second.headers[":exception-type"] == "throttlingException"
    assert json.loads(second.payload) == {"message": "slow down"}


def test_corrupted_message_fails_the_crc() -> None:
    message = bytearray(eventstream.event("chunk", {"bytes": ""}))
    message[-6] ^= 0xFF
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(message))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def test_prelude_lengths() -> None:
    message = eventstream.event("chunk", {"bytes": ""})
    total = int.from_bytes(message[:4], "big")
    assert total == len(message) and not math.isnan(total)
