"""What a completion costs, from per-model prices held in configuration.

Prices are USD per million tokens, input and output, keyed by the base model
id (a ``us.``/``eu.``/``apac.``/``global.`` inference profile bills as its
model). Llama 3.1 8B's price (SPEC.md, unverified) and the catalog's (each row
names its source and date) are built in; ``MODEL_PRICES`` adds or corrects others.
A model without a price has an unknown cost (None), never a made-up one.
Cache hits cost nothing: no Bedrock call was made. A prompt cache's writes
and reads (Converse ``cacheWriteInputTokens`` / ``cacheReadInputTokens``) cost
the model's cache prices (``catalog.catalog_cache_prices``, with their source).
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from chalicelib.models.catalog import PROFILE_REGIONS, catalog_cache_prices, catalog_prices
from chalicelib.chat import Usage

Prices = Mapping[str, tuple[Decimal, Decimal]]
DEFAULT_PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "meta.llama3-1-8b-instruct-v1:0": (Decimal("0.22"), Decimal("0.22")),
    **catalog_prices(),
}
# USD per million cached prompt tokens (written, read), by base id.
DEFAULT_CACHE_PRICES: dict[str, tuple[Decimal, Decimal]] = catalog_cache_prices()
MILLION = Decimal(1_000_000)


def base_model(model_id: str) -> str:
    prefix, _, rest = model_id.partition(".")
    return rest if prefix in PROFILE_REGIONS and rest else model_id


def cost_usd(prices: Prices, model_id: str, usage: Usage, cached: bool = False,
             cache_prices: Prices = DEFAULT_CACHE_PRICES) -> Decimal | None:
    """Input and output at the model's prices; a prompt cache's writes and
    reads at its cache prices (the input price where none is configured)."""
    if cached:
        return Decimal(0)
    base = base_model(model_id)
    price = prices.get(base)
    if price is None:
        return None
    input_price, output_price = price
    write_price, read_price = cache_prices.get(base, (input_price, input_price))
    return (usage.input_tokens * input_price + usage.output_tokens * output_price
            + usage.cache_write_tokens * write_price + usage.cache_read_tokens * read_price
            ) / MILLION
