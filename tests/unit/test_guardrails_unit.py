"""Guardrails, the pure parts: naming one, what a call carries, reading an
intervention, and the emulator's filter (table-driven)."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.chat import ChatRequest, Guardrail, Message
from chalicelib.models import converse
from chalicelib.models.guardrails import converse_config, invoke_params, parse_guardrail
from chalicelib.models.registry import parse_llama_body, parse_llama_chunk
from devstack import guardrail_filter
from devstack.bedrock_wire import BedrockError
from devstack.emulator_state import Config, ControlError, apply_config

GR = Guardrail("gr1abc", "1")


@pytest.mark.parametrize("text, expected", [
    ("gr1abc:1", GR), ("abc:DRAFT", Guardrail("abc", "DRAFT")), ("a1:12345678", Guardrail("a1", "12345678")),
])
def test_a_guardrail_is_id_colon_version(text: str, expected: Guardrail) -> None:
    assert parse_guardrail(text) == expected and str(expected) == text


@pytest.mark.parametrize("text", ["", "gr1", "gr1:", ":1", "GR1:1", "gr1:0", "gr1:draft",
                                  "gr1:123456789", "gr-1:1", "gr1:1:1", None, 3, "ｇｒ1:1",
                                  "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc"])
def test_anything_else_is_refused(text: Any) -> None:
    with pytest.raises(ValueError, match="id:version"):
        parse_guardrail(text)


def test_what_the_calls_carry() -> None:
    assert invoke_params(None) == {} and converse_config(None, True) == {}
    assert invoke_params(GR) == {"guardrailIdentifier": "gr1abc", "guardrailVersion": "1"}
    assert converse_config(GR, False) == {"guardrailConfig": {
        "guardrailIdentifier": "gr1abc", "guardrailVersion": "1", "trace": "disabled"}}
    assert converse_config(GR, True)["guardrailConfig"]["streamProcessingMode"] == "sync"


def test_a_converse_request_names_the_requests_guardrail() -> None:
    request = ChatRequest(messages=(Message("user", "hi"),),
                          model="us.anthropic.claude-haiku-4-5-20251001-v1:0", max_tokens=8,
                          temperature=0.5, top_p=0.9, guardrail=GR)
    assert converse.build_request(request)["guardrailConfig"]["guardrailIdentifier"] == "gr1abc"
    assert "streamProcessingMode" not in converse.build_request(
        request, stream=False)["guardrailConfig"]
    plain = ChatRequest(messages=request.messages, model=request.model, max_tokens=8,
                        temperature=0.5, top_p=0.9)
    assert "guardrailConfig" not in converse.build_request(plain)


@pytest.mark.parametrize("payload, reason", [
    ({"generation": "x", "stop_reason": "stop"}, "stop"),
    ({"generation": "x", "stop_reason": "stop", "amazon-bedrock-guardrailAction": "NONE"}, "stop"),
    ({"generation": "x", "stop_reason": "stop",
      "amazon-bedrock-guardrailAction": "INTERVENED"}, "content_filter"),
    ({"generation": "x", "stop_reason": None,
      "amazon-bedrock-guardrailAction": "INTERVENED"}, "content_filter"),
    ({"generation": "x", "stop_reason": None}, None),
])
def test_a_llama_chunk_reads_the_guardrails_action(payload: dict[str, Any], reason: Any) -> None:
    assert parse_llama_chunk(payload).stop_reason == reason


def test_a_llama_body_reads_it_too() -> None:
    body = {"generation": "no", "prompt_token_count": 0, "generation_token_count": 0,
            "stop_reason": "stop", "amazon-bedrock-guardrailAction": "INTERVENED"}
    assert parse_llama_body(body).stop_reason == "content_filter"


# --- the emulator's filter

POLICY = {"versions": ["1"], "denied_words": ["project zeus", "c++"],
          "pii": {"EMAIL": "ANONYMIZE", "US_SOCIAL_SECURITY_NUMBER": "BLOCK",
                  "PHONE": "ANONYMIZE"},
          "blocked_input_message": "in", "blocked_output_message": "out"}
SPEC = guardrail_filter.find(guardrail_filter.parse_guardrails({"gr1abc": POLICY}), "gr1abc", "1")


@pytest.mark.parametrize("text, blocked", [
    ("tell me about project zeus", True),
    ("PROJECT   ZEUS", False),  # words match as written, whitespace included
    ("Project Zeus!", True),
    ("projectzeus", False),
    ("about projects zeus", False),
    ("I like C++ a lot", True),
    ("my SSN is 123-45-6789", True),
    ("call 555-123-4567 or mail a@b.io", False),  # ANONYMIZE entities pass in a prompt
    ("", False),
])
def test_the_emulators_input_check(text: str, blocked: bool) -> None:
    assert guardrail_filter.assess_input(SPEC, text) is blocked


@pytest.mark.parametrize("text, verdict, sent", [
    ("All fine.", "NONE", "All fine."),
    ("Mail a.b@example.com now", "ANONYMIZED", "Mail {EMAIL} now"),
    ("Call (555) 123-4567.", "ANONYMIZED", "Call {PHONE}."),
    ("SSN 123-45-6789, mail x@y.org", "BLOCKED", "out"),
    ("It is Project Zeus.", "BLOCKED", "out"),
])
def test_the_emulators_output_check(text: str, verdict: str, sent: str) -> None:
    assert guardrail_filter.assess_output(SPEC, text) == (verdict, sent)


@pytest.mark.parametrize("gid, version", [("gr1abc", "2"), ("nope", "1"), (None, "1"),
                                          ("gr1abc", None)])
def test_an_unknown_guardrail_is_bedrocks_validation_error(gid: Any, version: Any) -> None:
    with pytest.raises(BedrockError) as caught:
        guardrail_filter.find({"gr1abc": guardrail_filter.parse_guardrails(
            {"gr1abc": POLICY})["gr1abc"]}, gid, version)
    assert caught.value.name == "ValidationException"


@pytest.mark.parametrize("value, message", [
    ([], "map guardrail ids"),
    ({"Bad": {}}, "lower-case"),
    ({"ok": {"colour": "red"}}, "unknown keys"),
    ({"ok": {"pii": {"EMAIL": "HIDE"}}}, "BLOCK or ANONYMIZE"),
    ({"ok": {"pii": {"SHOE_SIZE": "BLOCK"}}}, "BLOCK or ANONYMIZE"),
    ({"ok": {"denied_words": "zeus"}}, "list of non-empty strings"),
    ({"ok": {"denied_words": [""]}}, "list of non-empty strings"),
    ({"ok": {"versions": [1]}}, "list of non-empty strings"),
    ({"ok": {"blocked_input_message": ""}}, "non-empty string"),
])
def test_a_bad_guardrails_config_is_a_control_error(value: Any, message: str) -> None:
    config = Config()
    with pytest.raises(ControlError, match=message):
        apply_config(config, {"guardrails": value})
    assert config.guardrails == {}


def test_a_good_config_is_kept_with_its_defaults() -> None:
    config = Config()
    apply_config(config, {"guardrails": {"ok": {"denied_words": ["x"]}}})
    assert config.public()["guardrails"]["ok"]["versions"] == ["DRAFT"]
    assert config.guardrails["ok"]["blocked_input_message"] == guardrail_filter.DEFAULT_INPUT_MESSAGE
