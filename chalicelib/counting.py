"""How many input tokens a request's prompt holds, for ``/v1/messages/count_tokens``.

Free and never reserved: no model runs. For the models Bedrock's CountTokens
counts (``ModelSpec.count_tokens``), it asks Bedrock, with the Converse input
the request would be sent as; for every other model it answers the limiter's
own prompt estimate (``limits.prompt_estimate``), a bound never below what
Bedrock counts for Llama, and the same bound for the other families.
"""
from __future__ import annotations

from chalicelib.chat import ChatRequest
from chalicelib.models import converse
from chalicelib.models.bedrock import BedrockGateway
from chalicelib.models.registry import get_model
from chalicelib.tenancy.limits import prompt_estimate

# What CountTokens' Converse input takes of a Converse request.
COUNTED = ("messages", "system", "toolConfig")


def input_tokens(request: ChatRequest, gateway: BedrockGateway) -> int:
    spec = get_model(request.model)
    if not spec.count_tokens:
        return prompt_estimate(request)
    body = converse.build_request(request)
    return gateway.count_tokens(spec.base_id or spec.id,
                                {key: body[key] for key in COUNTED if key in body})
