"""The native ``/chat`` answer shape (pure)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from chalicelib.chat import Completion


def usd(cost: Decimal | None) -> float | None:
    """Dollars as a JSON number, to the micro-cent."""
    return None if cost is None else round(float(cost), 8)


def render_chat(completion: Completion, request_id: str) -> dict[str, Any]:
    usage = completion.usage
    return {
        "id": f"chat-{request_id}",
        "model": completion.model,
        "text": completion.text,
        "stop_reason": completion.stop_reason,
        "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                  "total_tokens": usage.total_tokens, "cost_usd": usd(completion.cost_usd)},
    }
