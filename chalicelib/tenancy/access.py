"""Model access per key: the stage's settings as one caller sees them.

A key that names its models sees a stage that serves only those (of the
stage's own): every route parses its request against these settings, so a
model the key lacks is the same 404 ``model_not_found`` as a model the stage
does not serve (OpenAI answers a model you lack access to so), ``/v1/models``
lists only the key's, and embeddings follow the same rule. The route's one
check is the parser's; nothing else needs to know.

The guardrail travels the same way: the key's, else its tenant's, else the
stage's ``DEFAULT_GUARDRAIL`` becomes the settings' ``guardrail``, which every
parser puts on the request. One the stage does not list (``GUARDRAILS``, all
its IAM policy grants) is refused as the deployment's mistake, never skipped:
a request is never served without the guardrail its key was given.
"""
from __future__ import annotations

import dataclasses

from chalicelib.config import GUARDRAILS, Settings
from chalicelib.errors import UpstreamMisconfiguredError
from chalicelib.models.registry import REGISTRY
from chalicelib.tenancy.auth import Caller


def settings_for(settings: Settings, caller: Caller) -> Settings:
    """``settings`` narrowed to the models ``caller`` may use. When the
    stage's default model is not one of them, a request that names no model
    gets the key's first chat model instead; with none, the default stays
    (and is refused: it is not among the allowed models)."""
    if caller.guardrail is not None and caller.guardrail != settings.guardrail:
        if caller.guardrail not in settings.guardrails:
            raise UpstreamMisconfiguredError(
                f"This key's guardrail is not one of this deployment's ({GUARDRAILS}); "
                "ask its operator.")
        settings = dataclasses.replace(settings, guardrail=caller.guardrail)
    if caller.models is None:
        return settings
    allowed = tuple(m for m in settings.allowed_models if m in caller.models)
    default = settings.default_model
    if default not in allowed:
        default = next((m for m in allowed if REGISTRY[m].kind == "chat"), default)
    return dataclasses.replace(settings, allowed_models=allowed, default_model=default)
