"""The native ``/chat`` answer shape (pure)."""
from __future__ import annotations

from typing import Any

from chalicelib.chat import Completion


def render_chat(completion: Completion, request_id: str) -> dict[str, Any]:
    usage = completion.usage
    return {
        "id": f"chat-{request_id}",
        "model": completion.model,
        "text": completion.text,
        "stop_reason": completion.stop_reason,
        "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                  "total_tokens": usage.total_tokens},
    }
