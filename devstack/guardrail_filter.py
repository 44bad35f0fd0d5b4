"""The emulator's Amazon Bedrock Guardrails: denied words and PII, as Bedrock applies them.

Configured through ``POST /_emulator/config``::

    {"guardrails": {"gr1abc": {"versions": ["1", "DRAFT"],
                               "denied_words": ["project zeus"],
                               "pii": {"EMAIL": "ANONYMIZE", "US_SOCIAL_SECURITY_NUMBER": "BLOCK"},
                               "blocked_input_message": "Sorry, I can't help with that.",
                               "blocked_output_message": "Sorry, I can't answer that."}}}

A call names a guardrail as Bedrock's do (InvokeModel's
``X-Amzn-Bedrock-GuardrailIdentifier`` / ``-Version`` headers, Converse's
``guardrailConfig``); an id or version not configured is Bedrock's
ValidationException. The prompt is checked first: a denied word or a PII
entity whose action is BLOCK blocks it, and then the model is not called (no
tokens are generated or billed) and the answer is the blocked-input message.
Otherwise the answer is generated and checked: a denied word or a BLOCK entity
replaces it with the blocked-output message (its tokens were generated, and
are billed); an ANONYMIZE entity is masked as ``{EMAIL}``. Either
intervention is ``amazon-bedrock-guardrailAction: INTERVENED`` on InvokeModel
and ``stopReason: guardrail_intervened`` on Converse. Words match whole and
regardless of case, as Bedrock's word filter does; ANONYMIZE entities in a
prompt pass (Bedrock masks only what it answers).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from devstack.bedrock_wire import BedrockError

NONE, BLOCKED, ANONYMIZED = "NONE", "BLOCKED", "ANONYMIZED"
# Bedrock's PII entity names, for the kinds the emulator can recognise.
PII_PATTERNS: dict[str, re.Pattern[str]] = {
    "EMAIL": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
    "PHONE": re.compile(r"(?<!\d)(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}(?!\d)"),
    "US_SOCIAL_SECURITY_NUMBER": re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)"),
    "CREDIT_DEBIT_CARD_NUMBER": re.compile(r"(?<!\d)(?:\d{4}[ -]?){3}\d{4}(?!\d)"),
    "IP_ADDRESS": re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"),
}
ACTIONS = ("BLOCK", "ANONYMIZE")
DEFAULT_INPUT_MESSAGE = "Sorry, the model cannot answer this question."
DEFAULT_OUTPUT_MESSAGE = "Sorry, the model cannot answer this question."


class GuardrailConfigError(ValueError):
    """A bad ``guardrails`` config (the control API answers 400)."""


@dataclass(frozen=True)
class Spec:
    versions: tuple[str, ...]
    denied_words: tuple[str, ...]
    pii: dict[str, str]
    blocked_input_message: str
    blocked_output_message: str


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise GuardrailConfigError(f"{what} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def parse_guardrails(value: Any) -> dict[str, dict[str, Any]]:
    """The ``guardrails`` config checked, as plain data (the emulator's config
    is copied for every call)."""
    if not isinstance(value, dict):
        raise GuardrailConfigError("guardrails must map guardrail ids to their policies")
    checked: dict[str, dict[str, Any]] = {}
    for gid, body in value.items():
        if not re.fullmatch(r"[a-z0-9]{1,64}", str(gid)) or not isinstance(body, dict):
            raise GuardrailConfigError(f"guardrails.{str(gid)[:40]}: an id is lower-case letters "
                                       "and digits, its policy an object")
        unknown = set(body) - {"versions", "denied_words", "pii", "blocked_input_message",
                               "blocked_output_message"}
        if unknown:
            raise GuardrailConfigError(f"guardrails.{gid}: unknown keys {sorted(unknown)}")
        versions = _strings(body.get("versions", ["DRAFT"]), f"guardrails.{gid}.versions")
        pii = body.get("pii", {})
        if not isinstance(pii, dict) or any(k not in PII_PATTERNS or v not in ACTIONS
                                            for k, v in pii.items()):
            raise GuardrailConfigError(f"guardrails.{gid}.pii maps entities "
                                       f"{sorted(PII_PATTERNS)} to BLOCK or ANONYMIZE")
        messages = {}
        for name, default in (("blocked_input_message", DEFAULT_INPUT_MESSAGE),
                              ("blocked_output_message", DEFAULT_OUTPUT_MESSAGE)):
            text = body.get(name, default)
            if not isinstance(text, str) or not text:
                raise GuardrailConfigError(f"guardrails.{gid}.{name} must be a non-empty string")
            messages[name] = text
        checked[str(gid)] = {"versions": list(versions),
                             "denied_words": list(_strings(body.get("denied_words", []),
                                                           f"guardrails.{gid}.denied_words")),
                             "pii": dict(pii), **messages}
    return checked


def find(configured: dict[str, dict[str, Any]], gid: Any, version: Any) -> Spec:
    """The configured guardrail a call names, or Bedrock's ValidationException."""
    body = configured.get(gid) if isinstance(gid, str) else None
    if body is None or version not in body["versions"]:
        raise BedrockError("ValidationException", "The guardrail identifier or version "
                           "provided in the request does not exist.")
    return Spec(tuple(body["versions"]), tuple(body["denied_words"]), dict(body["pii"]),
                body["blocked_input_message"], body["blocked_output_message"])


def _denied(spec: Spec, text: str) -> bool:
    return any(re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text, re.IGNORECASE)
               for word in spec.denied_words)


def assess_input(spec: Spec, text: str) -> bool:
    """Whether the prompt is blocked."""
    return _denied(spec, text) or any(
        action == "BLOCK" and PII_PATTERNS[entity].search(text)
        for entity, action in spec.pii.items())


def assess_output(spec: Spec, text: str) -> tuple[str, str]:
    """The answer's verdict (NONE, BLOCKED or ANONYMIZED) and the text sent."""
    if _denied(spec, text) or any(action == "BLOCK" and PII_PATTERNS[entity].search(text)
                                  for entity, action in spec.pii.items()):
        return BLOCKED, spec.blocked_output_message
    masked = text
    for entity, action in spec.pii.items():
        masked = PII_PATTERNS[entity].sub("{" + entity + "}", masked)
    return (ANONYMIZED, masked) if masked != text else (NONE, text)


def named(operation: str, headers: Any, body: Any) -> tuple[Any, Any] | None:
    """The guardrail a call names: (id, version), or None."""
    if operation.startswith("Converse"):
        config = body.get("guardrailConfig") if isinstance(body, dict) else None
        if config is None:
            return None
        if not isinstance(config, dict):
            raise BedrockError("ValidationException", "guardrailConfig must be an object.")
        return config.get("guardrailIdentifier"), config.get("guardrailVersion")
    gid = headers.get("X-Amzn-Bedrock-GuardrailIdentifier")
    if gid is None:
        return None
    return gid, headers.get("X-Amzn-Bedrock-GuardrailVersion")


def prompt_text(operation: str, body: Any, prompt: str) -> str:
    """What a guardrail checks of the input: Converse's messages' text (not
    the system prompt), or InvokeModel's whole prompt."""
    if not operation.startswith("Converse"):
        return prompt
    texts = []
    for message in body.get("messages") or []:
        for block in (message.get("content") or []) if isinstance(message, dict) else []:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                texts.append(block["text"])
    return "\n".join(texts)
