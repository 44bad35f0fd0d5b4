"""The Bedrock models served through Converse, and the embedding models: data only.

Each row is one foundation model: its family, context window, maximum output,
what Converse accepts for it (tools, ``toolChoice``, tools while streaming, an
assistant prefill, temperature and top_p together), its on-demand price in USD
per million tokens with where and when that price was read, and the
cross-region inference profiles that exist for it (``us.``, ``eu.``,
``apac.``, ``global.``). ``chalicelib.models.registry`` turns each row into registry
entries (the base id when it is served on demand, plus one id per profile);
``scripts/gen_policies.py`` reads the profile regions for IAM.

Prices: read from BerriAI/litellm's ``model_prices_and_context_window.json``
(commit 00035b69, read 2026-11-25, which cites aws.amazon.com/bedrock/pricing)
where marked ``LITELLM``; otherwise from third-party copies of the AWS pricing
page, marked ``UNVERIFIED``. Prices are configuration: ``MODEL_PRICES``
corrects any of them per stage. Regional (``us.``/``eu.``) profiles of the
newest models may cost ~10% more than ``global.``; that premium is not
modelled here (set ``MODEL_PRICES`` on the profile's base id if it matters).

Capabilities follow AWS's "supported models and model features" table for
Converse (tool use, streaming tool use) and bedrock-access-gateway's
exceptions (no ``toolChoice`` for Meta and Mistral models). Where a fact is
uncertain the row errs on the side of refusing a feature with a 400, never of
sending Bedrock something it rejects.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

LITELLM = ("BerriAI/litellm model_prices_and_context_window.json @00035b69 "
           "(aws.amazon.com/bedrock/pricing), 2026-11-25")
UNVERIFIED = "third-party copies of aws.amazon.com/bedrock/pricing (unverified), 2026-11-25"

# Destination regions of each geography's profiles (AWS "Supported Regions and
# models for inference profiles"; a model's own list may be shorter: check
# GetInferenceProfile before deploying). "global" routes to every commercial
# region, which IAM names with an empty region (arn:aws:bedrock:::...).
PROFILE_REGIONS: dict[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-north-1", "eu-west-1", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1",
             "ap-southeast-2"),
    "global": ("",),
}


@dataclass(frozen=True)
class ChatModelRow:
    base_id: str
    family: str  # claude | nova | mistral | llama4 | deepseek | cohere-command
    context_window: int
    max_output_tokens: int
    released: int  # Unix time
    price_in: str
    price_out: str
    price_source: str
    profiles: tuple[str, ...] = ("us",)
    on_demand_base: bool = True  # False: Bedrock serves it only through a profile
    tools: bool = True
    tool_choice: bool = True  # Converse toolChoice (any / tool)
    stream_tools: bool = True  # tools accepted by ConverseStream
    prefill: bool = False  # a final assistant message is continued
    top_p_with_temperature: bool = True  # False: the model takes one of the two
    # Bedrock's CountTokens on bedrock-runtime (AWS user guide, "count-tokens":
    # Claude 3.5 Haiku, 3.5/3.7 Sonnet, Sonnet 4, Opus 4; not every model that
    # is served only through a profile): False where uncertain, and then
    # count_tokens answers the limiter's bound instead.
    count_tokens: bool = False
    # Prompt caching on Converse (cachePoint blocks): the fewest tokens a
    # cached prefix may hold (0: no caching), from AWS's prompt caching user
    # guide as SPEC.md summarises it; 5-minute TTL only (1 h is not offered
    # through Converse for these rows: a 1 h mark caches for 5 minutes).
    cache_min_tokens: int = 0


@dataclass(frozen=True)
class EmbeddingModelRow:
    base_id: str
    family: str  # titan-embed | cohere-embed
    max_input_tokens: int
    dimensions: tuple[int, ...]  # accepted sizes; the last is the default
    batch: int  # texts per InvokeModel call
    released: int
    price_in: str
    price_source: str
    profiles: tuple[str, ...] = ()


_2024_03, _2024_04, _2024_07, _2024_10, _2024_11, _2024_12 = (
    1709856000, 1712620800, 1721865600, 1729555200, 1730419200, 1733356800)
_2025_01, _2025_02, _2025_04, _2025_05, _2025_09, _2025_10 = (
    1737936000, 1740614400, 1743984000, 1747180800, 1759104000, 1760054400)

CHAT_MODELS: tuple[ChatModelRow, ...] = (
    # Anthropic Claude: strict user/assistant alternation, system apart, prefill.
    ChatModelRow("anthropic.claude-3-haiku-20240307-v1:0", "claude", 200_000, 4_096, _2024_03,
                 "0.25", "1.25", LITELLM, profiles=("us", "eu", "apac"), prefill=True),
    ChatModelRow("anthropic.claude-3-5-haiku-20241022-v1:0", "claude", 200_000, 8_192, _2024_11,
                 "0.80", "4.00", LITELLM, profiles=("us",), prefill=True, count_tokens=True,
                 cache_min_tokens=2_048),
    ChatModelRow("anthropic.claude-3-7-sonnet-20250219-v1:0", "claude", 200_000, 8_192, _2025_02,
                 "3.00", "15.00", LITELLM, profiles=("us", "eu", "apac"), on_demand_base=False,
                 prefill=True, count_tokens=True, cache_min_tokens=1_024),
    ChatModelRow("anthropic.claude-sonnet-4-20250514-v1:0", "claude", 200_000, 64_000, _2025_05,
                 "3.00", "15.00", UNVERIFIED, profiles=("us", "eu", "apac", "global"),
                 on_demand_base=False, prefill=True, count_tokens=True, cache_min_tokens=1_024),
    # Claude 4.5 models refuse temperature and top_p together.
    ChatModelRow("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude", 200_000, 64_000,
                 _2025_09, "3.00", "15.00", UNVERIFIED, profiles=("us", "eu", "global"),
                 on_demand_base=False, prefill=True, top_p_with_temperature=False,
                 cache_min_tokens=1_024),
    ChatModelRow("anthropic.claude-haiku-4-5-20251001-v1:0", "claude", 200_000, 64_000, _2025_10,
                 "1.00", "5.00", LITELLM, profiles=("us", "eu", "global"), on_demand_base=False,
                 prefill=True, top_p_with_temperature=False, cache_min_tokens=4_096),
    # Amazon Nova.
    ChatModelRow("amazon.nova-micro-v1:0", "nova", 128_000, 10_000, _2024_12, "0.035", "0.14",
                 LITELLM, profiles=("us", "eu", "apac"), prefill=True),
    ChatModelRow("amazon.nova-lite-v1:0", "nova", 300_000, 10_000, _2024_12, "0.06", "0.24",
                 LITELLM, profiles=("us", "eu", "apac"), prefill=True),
    ChatModelRow("amazon.nova-pro-v1:0", "nova", 300_000, 10_000, _2024_12, "0.80", "3.20",
                 LITELLM, profiles=("us", "eu", "apac"), prefill=True),
    # Mistral: tools, no toolChoice, no tools while streaming.
    ChatModelRow("mistral.mistral-large-2407-v1:0", "mistral", 128_000, 8_192, _2024_07,
                 "3.00", "9.00", UNVERIFIED, profiles=(), tool_choice=False, stream_tools=False),
    ChatModelRow("mistral.pixtral-large-2502-v1:0", "mistral", 128_000, 8_192, _2025_02,
                 "2.00", "6.00", UNVERIFIED, profiles=("us", "eu"), on_demand_base=False,
                 tool_choice=False, stream_tools=False),
    # Meta Llama 4: Converse templates it; tools, no toolChoice.
    ChatModelRow("meta.llama4-maverick-17b-instruct-v1:0", "llama4", 1_000_000, 8_192, _2025_04,
                 "0.24", "0.97", UNVERIFIED, on_demand_base=False, tool_choice=False,
                 stream_tools=False),
    ChatModelRow("meta.llama4-scout-17b-instruct-v1:0", "llama4", 3_500_000, 8_192, _2025_04,
                 "0.17", "0.66", UNVERIFIED, on_demand_base=False, tool_choice=False,
                 stream_tools=False),
    # DeepSeek: R1 has no tool use on Bedrock.
    ChatModelRow("deepseek.r1-v1:0", "deepseek", 128_000, 32_768, _2025_01, "1.35", "5.40",
                 UNVERIFIED, on_demand_base=False, tools=False, tool_choice=False,
                 stream_tools=False),
    # Cohere Command R: tools, no toolChoice.
    ChatModelRow("cohere.command-r-v1:0", "cohere-command", 128_000, 4_096, _2024_04, "0.50",
                 "1.50", UNVERIFIED, profiles=(), tool_choice=False, stream_tools=False),
    ChatModelRow("cohere.command-r-plus-v1:0", "cohere-command", 128_000, 4_096, _2024_04,
                 "3.00", "15.00", UNVERIFIED, profiles=(), tool_choice=False, stream_tools=False),
)

EMBEDDING_MODELS: tuple[EmbeddingModelRow, ...] = (
    EmbeddingModelRow("amazon.titan-embed-text-v2:0", "titan-embed", 8_192, (256, 512, 1024), 1,
                      _2024_04, "0.02", LITELLM),
    EmbeddingModelRow("cohere.embed-english-v3", "cohere-embed", 512, (1024,), 96, _2024_10,
                      "0.10", UNVERIFIED),
    EmbeddingModelRow("cohere.embed-multilingual-v3", "cohere-embed", 512, (1024,), 96, _2024_10,
                      "0.10", UNVERIFIED),
)


# Claude's cache prices relative to its input price (SPEC.md, from AWS's
# Bedrock pricing page: a cache write about 1.25x, a read about 0.1x).
CACHE_WRITE_FACTOR, CACHE_READ_FACTOR = Decimal("1.25"), Decimal("0.1")
CACHE_PRICE_SOURCE = "SPEC.md (aws.amazon.com/bedrock/pricing: write 1.25x, read 0.1x input)"


def catalog_cache_prices() -> dict[str, tuple[Decimal, Decimal]]:
    """USD per million cached tokens (written, read), by base id, for the models that cache."""
    return {row.base_id: (Decimal(row.price_in) * CACHE_WRITE_FACTOR,
                          Decimal(row.price_in) * CACHE_READ_FACTOR)
            for row in CHAT_MODELS if row.cache_min_tokens}


def catalog_prices() -> dict[str, tuple[Decimal, Decimal]]:
    """USD per million tokens (input, output), by base id."""
    prices = {row.base_id: (Decimal(row.price_in), Decimal(row.price_out)) for row in CHAT_MODELS}
    prices.update({row.base_id: (Decimal(row.price_in), Decimal(0)) for row in EMBEDDING_MODELS})
    return prices
