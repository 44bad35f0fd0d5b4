"""Reservations are never below what Bedrock counts (issue 19 item 3).

The real count is Meta's own Tokenizer (llama_models, what the emulator and
Bedrock count with), never chalicelib.models.tokens checked against itself.
Hypothesis draws the text that beats a bytes-per-token estimate: digits,
hex, base64, emoji, CJK Extension B, rare 4-byte scripts, punctuation,
special-token look-alikes, and all of them mixed.
"""
from __future__ import annotations

import base64
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.chat import ChatRequest, Message, ResponseFormat
from chalicelib.models import converse, tokens
from chalicelib.models.prompting import render
from chalicelib.tenancy.limits import prompt_estimate, reservation_size
from devstack.prompt_tokens import count_prompt_tokens

LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


def chars(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=low, max_codepoint=high), max_size=400)


DENSE = st.one_of(
    st.text("0123456789", max_size=600),
    st.text("0123456789abcdef", max_size=600),
    st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode()),
    chars(0x1F300, 0x1FAFF),  # emoji
    chars(0x20000, 0x2A6DF),  # CJK Extension B
    chars(0x10000, 0x1BFFF),  # rare scripts of the supplementary plane
    st.text(string.punctuation, max_size=600),
    st.lists(st.sampled_from(["<|eot_id|>", "<|start_header_id|>", "<|", "|>", "<|python_tag|>"]),
             max_size=40).map("".join),
    st.text(max_size=400),  # anything, mixed
)
MIXED = st.lists(DENSE, min_size=1, max_size=4).map(" ".join)


def request(model: str, system: str, user: str, **extra: object) -> ChatRequest:
    messages = ((Message("system", system),) if system else ()) + (Message("user", user),)
    return ChatRequest(messages=messages, model=model, max_tokens=64, temperature=0.5,
                       top_p=0.9, **extra)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(system=st.one_of(st.just(""), MIXED), user=MIXED)
def test_a_llama_prompt_is_reserved_exactly_as_bedrock_counts_it(system: str, user: str) -> None:
    chat = request(LLAMA, system, user)
    real = count_prompt_tokens(render(chat).text)
    assert prompt_estimate(chat) == real
    assert reservation_size(chat) >= real + chat.max_tokens


@settings(max_examples=100, deadline=None)
@given(system=st.one_of(st.just(""), MIXED), user=MIXED)
def test_the_converse_bound_is_above_a_byte_level_count(system: str, user: str) -> None:
    chat = request(CLAUDE, system, user)
    body = converse.build_request(chat)
    sent = [m.content for m in chat.messages]
    # Any byte-level BPE (Llama 3's stands in for Claude's and Nova's) needs
    # at most a token a byte, and every text sent is inside the bound.
    real = sum(count_prompt_tokens(text) for text in sent)
    assert prompt_estimate(chat) == tokens.converse_bound(body)
    assert prompt_estimate(chat) >= sum(tokens.byte_bound(text) for text in sent) >= real


def test_a_repairable_request_reserves_two_calls() -> None:
    chat = request(LLAMA, "", "1234567890" * 50, response_format=ResponseFormat("json_object"))
    once = count_prompt_tokens(render(chat).text) + chat.max_tokens
    assert reservation_size(chat) == 2 * once + chat.max_tokens


@pytest.mark.parametrize("text", [
    "a" * 25_000, "a" * 25_001, "a" * 60_000 + " " * 30_000 + "b" * 26_000,
    ("x" * 24_999 + " ") * 3, "7" * 75_001, "<|eot_id|>" * 2_600 + "z" * 30_000,
])
def test_long_runs_are_cut_where_meta_cuts_them(text: str) -> None:
    assert tokens.llama3_tokens(text) == count_prompt_tokens(text)


def test_the_byte_bound_holds_for_every_single_character_class() -> None:
    for text in ("\U00020000" * 10, "\U0001F600" * 10, "0123456789", "é" * 10, "<|eot_id|>"):
        assert tokens.byte_bound(text) >= count_prompt_tokens(text)


def test_without_a_rank_file_the_count_falls_back_to_the_byte_bound(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    text = "1234567890 abcdef " * 20
    tokens._encoding.cache_clear()
    monkeypatch.setattr(tokens, "tokenizer_file", lambda: None)
    try:
        assert tokens.llama3_tokens(text) == tokens.byte_bound(text) >= count_prompt_tokens(text)
        assert "no Llama 3 tokenizer file" in caplog.text
    finally:
        tokens._encoding.cache_clear()


def test_the_build_step_refuses_a_changed_rank_file(tmp_path: Path) -> None:
    from scripts.llama_tokenizer import copy_tokenizer

    changed = tmp_path / "tokenizer.model"
    changed.write_bytes(b"IQ== 0\n")
    with pytest.raises(SystemExit, match="SHA-256"):
        copy_tokenizer(changed, tmp_path / "copy.model")
    assert not (tmp_path / "copy.model").exists()
