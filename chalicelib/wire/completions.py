"""OpenAI's legacy completions (``POST /v1/completions``) <-> ChatRequest (pure).

Clients still call it: LlamaIndex's ``OpenAILike`` unless told
``is_chat_model=True`` (its ``chat`` then sends a transcript such as
``"system: ...\\nuser: ...\\nassistant: "``), LangChain's ``OpenAI`` LLM class,
evaluation harnesses. Choices, documented in docs/openai.md too:

- The served models are chat models, and every string a client controls is
  neutralised before it reaches the prompt, so the prompt is not raw model
  text: it is the one user turn of a conversation, and the answer is the
  assistant's reply (what an instruction-tuned model is for). A client's own
  transcript format reads fine to the model that way.
- ``prompt`` is a string or a list of one string; token arrays and batches of
  several prompts are a 400 saying so (one request per prompt).
- ``max_tokens`` defaults to 512 as on the chat routes (OpenAI's 16 would cut
  nearly every answer short); ``temperature`` is halved onto Llama's 0..1 as
  on ``/v1/chat/completions``; ``top_p``, ``stop``, ``stream`` and
  ``stream_options`` as there.
- ``echo``, ``suffix`` (insertion), ``best_of`` and ``n`` above 1,
  ``logprobs``, penalties and ``logit_bias`` cannot be honoured: a 400 naming
  the field; their neutral values are accepted. ``user`` and ``seed`` (and the
  chat route's other ignored fields) are accepted and ignored.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.chat import ChatRequest, Completion, Message
from chalicelib.config import Settings
from chalicelib.errors import InvalidRequestError, UnsupportedParameterError
from chalicelib.models.registry import check_capabilities, get_model
from chalicelib.wire.openai import (IGNORED, TEMPERATURE_SCALE, StreamOptions, check_ignored,
                                    check_neutral, reject_unrecognized, stream_options, usage_field)
from chalicelib.wire.validation import (DEFAULT_MAX_TOKENS, DEFAULT_TOP_P, check_conversation,
                                        int_field, chat_model_field, number_field, stop_field,
                                        text_field)

HONOURED = ("model", "prompt", "max_tokens", "temperature", "top_p", "stop", "stream",
            "stream_options")
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "best_of": (None, 1),
    "echo": (None, False),
    "suffix": (None, ""),
    "logprobs": (None,),
    "frequency_penalty": (None, 0),
    "presence_penalty": (None, 0),
    "logit_bias": (None, {}),
}
FIELDS = (*HONOURED, *IGNORED, *NEUTRAL)


def _prompt(value: Any) -> str:
    if isinstance(value, list):
        if value and all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            raise UnsupportedParameterError("'prompt' as token ids is not supported by this "
                                            "endpoint: send the text.", param="prompt")
        if len(value) > 1:
            raise UnsupportedParameterError(
                "'prompt' holds several prompts, which this endpoint does not batch: send one "
                "request per prompt.", param="prompt")
        if len(value) == 1 and isinstance(value[0], str):
            value = value[0]
    if not isinstance(value, str):
        raise InvalidRequestError("'prompt' must be a string or a list of one string.",
                                  param="prompt")
    return text_field(value, "prompt")


def parse_completions_request(payload: Mapping[str, Any],
                              settings: Settings) -> tuple[ChatRequest, StreamOptions]:
    reject_unrecognized(payload, FIELDS)
    check_neutral(payload, NEUTRAL)
    check_ignored(payload)
    if payload.get("model") is None:
        raise InvalidRequestError("'model' is required.", param="model")
    model = chat_model_field(payload["model"], settings)
    if payload.get("prompt") is None:
        raise InvalidRequestError("'prompt' is required.", param="prompt")
    prompt = _prompt(payload["prompt"])
    limit = get_model(model).max_output_tokens
    request = ChatRequest(
        messages=check_conversation([Message("user", prompt)], settings),
        guardrail=settings.guardrail, fallbacks=settings.fallbacks.get(model, ()), model=model,
        max_tokens=int_field(payload, "max_tokens", 1, limit, DEFAULT_MAX_TOKENS),
        temperature=number_field(payload, "temperature", 0, 2, 1.0) * TEMPERATURE_SCALE,
        top_p=number_field(payload, "top_p", 0, 1, DEFAULT_TOP_P),
        stop=stop_field(payload.get("stop")))
    return check_capabilities(request), stream_options(payload)


def render_text_completion(completion: Completion, completion_id: str,
                           created: int) -> dict[str, Any]:
    return {
        "id": completion_id, "object": "text_completion", "created": created,
        "model": completion.model, "system_fingerprint": None,
        "choices": [{"text": completion.text, "index": 0, "logprobs": None,
                     "finish_reason": completion.stop_reason}],
        "usage": usage_field(completion),
    }
