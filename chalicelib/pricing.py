"""What a completion costs, from per-model prices held in configuration.

Prices are USD per million tokens, input and output, keyed by the base model
id (a ``us.`` inference profile bills as its model). Only the 8B price is
built in (SPEC.md, unverified); ``MODEL_PRICES`` adds or corrects others.
A model without a price has an unknown cost (None), never a made-up one.
Cache hits cost nothing: no Bedrock call was made.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from chalicelib.chat import Usage

Prices = Mapping[str, tuple[Decimal, Decimal]]
DEFAULT_PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "meta.llama3-1-8b-instruct-v1:0": (Decimal("0.22"), Decimal("0.22")),
}
MILLION = Decimal(1_000_000)


def base_model(model_id: str) -> str:
    return model_id[len("us."):] if model_id.startswith("us.") else model_id


def cost_usd(prices: Prices, model_id: str, usage: Usage, cached: bool = False) -> Decimal | None:
    if cached:
        return Decimal(0)
    price = prices.get(base_model(model_id))
    if price is None:
        return None
    input_price, output_price = price
    return (usage.input_tokens * input_price + usage.output_tokens * output_price) / MILLION
