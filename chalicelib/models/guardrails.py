"""Amazon Bedrock Guardrails: naming one, and what a call carries to apply it.

A guardrail is named ``id:version`` wherever an operator writes one (the
stage's ``GUARDRAILS`` and ``DEFAULT_GUARDRAIL``, a key's or a tenant's
``guardrail``): the id as Bedrock shows it (lower-case letters and digits,
not the ARN, so the generated IAM policy can name it exactly) and the
version, ``DRAFT`` or a number.

How it is applied (SPEC.md, "Guardrails"):

- InvokeModelWithResponseStream (Llama) takes ``guardrailIdentifier`` and
  ``guardrailVersion`` as call parameters; an intervention shows as
  ``amazon-bedrock-guardrailAction: INTERVENED`` in the answer's chunks.
- Converse and ConverseStream take ``guardrailConfig``; an intervention ends
  the answer with ``stopReason: guardrail_intervened``.
- Streams use Bedrock's synchronous mode (its default, named explicitly on
  ConverseStream): every chunk is checked before it is sent, so a blocked or
  masked answer never reaches a client, at the cost of some latency. The
  asynchronous mode sends chunks before they are checked, and AWS itself warns
  it may leak what a PII filter should have masked; an endpoint that promises
  the filter cannot offer that.
- Trace is off: a trace repeats the matched text, which must not reach logs.

Either way the text Bedrock sends is the guardrail's own message (its
``blockedInputMessaging`` or ``blockedOutputsMessaging``), or the answer with
PII masked. A blocked prompt generates nothing (no output tokens): the
endpoint answers it as an error (``content_filtered``), an intervened answer
as a finish reason (``content_filter``).
"""
from __future__ import annotations

import re
from typing import Any

from chalicelib.chat import Guardrail

ID_PATTERN = re.compile(r"[a-z0-9]{1,64}", re.ASCII)
VERSION_PATTERN = re.compile(r"DRAFT|[1-9][0-9]{0,7}", re.ASCII)
INTERVENED = "INTERVENED"


def parse_guardrail(value: Any) -> Guardrail:
    """``id:version`` as a Guardrail; ValueError naming the expected shape."""
    text = value if isinstance(value, str) else ""
    gid, _, version = text.partition(":")
    if ID_PATTERN.fullmatch(gid) is None or VERSION_PATTERN.fullmatch(version) is None:
        raise ValueError("a guardrail is 'id:version': the guardrail's id (lower-case letters "
                         "and digits, not its ARN) and its version (DRAFT or a number)")
    return Guardrail(gid, version)


def invoke_params(guardrail: Guardrail | None) -> dict[str, str]:
    """The InvokeModel / InvokeModelWithResponseStream parameters that apply it."""
    if guardrail is None:
        return {}
    return {"guardrailIdentifier": guardrail.id, "guardrailVersion": guardrail.version}


def converse_config(guardrail: Guardrail | None, stream: bool) -> dict[str, Any]:
    """Converse's ``guardrailConfig`` (ConverseStream's takes the stream mode too)."""
    if guardrail is None:
        return {}
    config: dict[str, Any] = {"guardrailIdentifier": guardrail.id,
                              "guardrailVersion": guardrail.version, "trace": "disabled"}
    if stream:
        config["streamProcessingMode"] = "sync"
    return {"guardrailConfig": config}


def intervened(payload: Any) -> bool:
    """Whether an InvokeModel answer or stream chunk says the guardrail acted."""
    return isinstance(payload, dict) and payload.get("amazon-bedrock-guardrailAction") == INTERVENED
