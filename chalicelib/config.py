"""Settings, read once from the environment into one frozen object.

Stage values live in ``.chalice/config.json`` (``environment_variables``);
Chalice puts them in the Lambda's environment and ``chalice.test.Client`` and
the local stack apply them too. Every name is a constant here, so a typo in one
place cannot silently fall back to a default.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from chalicelib.chat import Guardrail
from chalicelib.models.guardrails import parse_guardrail
from chalicelib.resilience.links import parse_link
from chalicelib.tenancy.keys import KeyAdminError, Limits, usd_amount
from chalicelib.models.registry import REGISTRY
from chalicelib.models.pricing import DEFAULT_PRICES
from chalicelib.models.catalog import PROFILE_REGIONS

DEFAULT_MODEL = "DEFAULT_MODEL"
ALLOWED_MODELS = "ALLOWED_MODELS"
MAX_BODY_BYTES = "MAX_BODY_BYTES"
MAX_PROMPT_CHARS = "MAX_PROMPT_CHARS"
BEDROCK_CONNECT_TIMEOUT_S = "BEDROCK_CONNECT_TIMEOUT_S"
BEDROCK_READ_TIMEOUT_S = "BEDROCK_READ_TIMEOUT_S"
BEDROCK_MAX_ATTEMPTS = "BEDROCK_MAX_ATTEMPTS"
THROTTLE_RETRY_AFTER_S = "THROTTLE_RETRY_AFTER_S"
KEYS_TABLE = "KEYS_TABLE"
USAGE_TABLE = "USAGE_TABLE"
JOBS_TABLE = "JOBS_TABLE"
CACHE_TABLE = "CACHE_TABLE"
RESPONSES_TABLE = "RESPONSES_TABLE"
RESPONSES_TTL_S = "RESPONSES_TTL_S"
JOBS_QUEUE = "JOBS_QUEUE"
JOB_TTL_S = "JOB_TTL_S"
JOBS_MAX_RECEIVES = "JOBS_MAX_RECEIVES"
JOBS_RETRY_BASE_S = "JOBS_RETRY_BASE_S"
JOBS_LEASE_S = "JOBS_LEASE_S"
JOBS_READ_TIMEOUT_S = "JOBS_READ_TIMEOUT_S"
JOBS_MAX_REQUEST_BYTES = "JOBS_MAX_REQUEST_BYTES"
CACHE_ENABLED = "CACHE_ENABLED"
CACHE_TTL_S = "CACHE_TTL_S"
STAGE = "STAGE"
LOG_PROMPTS = "LOG_PROMPTS"
MODEL_PRICES = "MODEL_PRICES"
# The Bedrock guardrails keys and tenants may name (id:version, comma
# separated; the IAM policy grants ApplyGuardrail on exactly these), and the
# one every request gets unless its key or tenant names another.
GUARDRAILS = "GUARDRAILS"
# The stack's SNS topic (its name) for budget alerts; empty: none are sent.
BUDGET_ALERTS_TOPIC = "BUDGET_ALERTS_TOPIC"
DEFAULT_GUARDRAIL = "DEFAULT_GUARDRAIL"
# Fallback chains: {"<model>": ["<model>[@region]", ...]} (resilience/links.py),
# and the cooldowns that skip a failing link (resilience/cooldowns.py).
FALLBACKS = "FALLBACKS"
COOLDOWN_FAILURES = "COOLDOWN_FAILURES"
COOLDOWN_STEPS_S = "COOLDOWN_STEPS_S"
DEFAULT_LIMITS = {
    "requests_per_minute": "DEFAULT_REQUESTS_PER_MINUTE",
    "tokens_per_minute": "DEFAULT_TOKENS_PER_MINUTE",
    "tokens_per_day": "DEFAULT_TOKENS_PER_DAY",
}
# Dollar budgets for keys that set none (empty: none).
DEFAULT_BUDGETS = {"usd_per_day": "DEFAULT_USD_PER_DAY", "usd_per_month": "DEFAULT_USD_PER_MONTH"}


class ConfigError(ValueError):
    """The deployment's settings are inconsistent (an operator's error)."""


@dataclass(frozen=True)
class Settings:
    default_model: str = "us.meta.llama3-1-8b-instruct-v1:0"
    allowed_models: tuple[str, ...] = ("us.meta.llama3-1-8b-instruct-v1:0",)
    # Lambda takes 6 MB synchronously; 1 MiB is far above any sane chat turn.
    max_body_bytes: int = 1_048_576
    # Llama 3.1 holds 128k tokens, about 512k characters: a bit more is let
    # through so that Bedrock's own context check stays the last word.
    max_prompt_chars: int = 600_000
    # Connect fast, read long enough for ~2k tokens. Throttles and 5xx are
    # answered at once and retried (3 attempts, standard-mode backoff of at
    # most 1 s then 2 s); read timeouts are never retried (see models/bedrock.py).
    # Worst case: 3 x 1 + 3 + 18 = 24 s, well inside API Gateway's 29 s.
    bedrock_connect_timeout_s: float = 1.0
    bedrock_read_timeout_s: float = 18.0
    bedrock_max_attempts: int = 3
    throttle_retry_after_s: int = 2
    keys_table: str = "llm-endpoint-dev-api-keys"
    usage_table: str = "llm-endpoint-dev-usage"
    # Limits for keys that set none themselves; None is unlimited.
    default_limits: Limits = Limits()
    jobs_table: str = "llm-endpoint-dev-jobs"
    cache_table: str = "llm-endpoint-dev-cache"
    jobs_queue: str = "llm-endpoint-dev-jobs"
    job_ttl_s: int = 86_400
    # Must equal the queue's maxReceiveCount (infra/resources.yaml): on the
    # last receive a failing job is marked failed before SQS moves it on.
    jobs_max_receives: int = 5
    jobs_retry_base_s: int = 2
    # A claimed job's lease outlives the worker's own timeout, so only a dead
    # worker's job is ever taken over.
    jobs_lease_s: int = 330
    # Jobs are not bound by API Gateway's 29 s: generation may take longer.
    jobs_read_timeout_s: float = 120.0
    # A job's DynamoDB item (400 KB at most) holds its request and then its
    # answer (2048 tokens, usually a few KB): a request over this size is
    # refused at submission with 413, leaving the answer ample room (one that
    # still overflows fails the job as result_too_large; see jobs/worker.py).
    jobs_max_request_bytes: int = 262_144
    cache_enabled: bool = True
    cache_ttl_s: int = 3_600
    # Stored Responses (POST /v1/responses, store: true) live as long as
    # OpenAI keeps them: 30 days.
    responses_table: str = "llm-endpoint-dev-responses"
    responses_ttl_s: int = 2_592_000
    stage: str = "dev"
    # Prompts and answers reach the logs only when a stage asks for it.
    log_prompts: bool = False
    # USD per million tokens (input, output), by base model id.
    model_prices: Mapping[str, tuple[Decimal, Decimal]] = field(
        default_factory=lambda: dict(DEFAULT_PRICES))
    # The guardrails keys may name, and the one a request gets (the key's,
    # else its tenant's, else the stage's: tenancy/access.py).
    guardrails: tuple[Guardrail, ...] = ()
    guardrail: Guardrail | None = None
    # The SNS topic budget alerts go to (tenancy/alerts.py); "" sends none.
    budget_alerts_topic: str = ""
    # Per model, the links tried after it (resilience/); a link's model is
    # one of the stage's allowed models, of the same kind.
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cooldown_failures: int = 3  # failures within two 30 s windows that open a cooldown
    cooldown_steps_s: tuple[int, ...] = (30, 60, 300)


def call_deadline_s(settings: Settings, read_timeout_s: float | None = None) -> float:
    """The longest one Bedrock call may take with its retries (a read timeout
    is not retried): every attempt's connect timeout, standard mode's backoff
    (at most 1 s, then 2 s) and one full read. The cache's single-flight lease
    covers this, so identical requests wait for one slow call."""
    read = settings.bedrock_read_timeout_s if read_timeout_s is None else read_timeout_s
    backoff = sum(min(2 ** i, 20) for i in range(settings.bedrock_max_attempts - 1))
    return settings.bedrock_max_attempts * settings.bedrock_connect_timeout_s + backoff + read


def _int(env: Mapping[str, str], name: str, default: int, low: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < low:
        raise ConfigError(f"{name} must be >= {low}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be > 0")
    return value


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    return _int(env, name, 0, 1)


def _optional_usd(env: Mapping[str, str], name: str) -> Decimal | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        return usd_amount(raw, name)
    except KeyAdminError:
        raise ConfigError(f"{name} must be US dollars > 0 with at most 6 decimals, got "
                          f"{raw[:40]!r}") from None


def _guardrails(env: Mapping[str, str]) -> tuple[tuple[Guardrail, ...], Guardrail | None]:
    """The stage's guardrails, and its default (one of them)."""
    listed: list[Guardrail] = []
    for text in (t.strip() for t in (env.get(GUARDRAILS) or "").split(",")):
        if not text:
            continue
        try:
            listed.append(parse_guardrail(text))
        except ValueError as exc:
            raise ConfigError(f"{GUARDRAILS}: {text[:80]!r}: {exc}") from None
    raw = (env.get(DEFAULT_GUARDRAIL) or "").strip()
    if not raw:
        return tuple(listed), None
    try:
        default = parse_guardrail(raw)
    except ValueError as exc:
        raise ConfigError(f"{DEFAULT_GUARDRAIL}: {exc}") from None
    if default not in listed:
        raise ConfigError(f"{DEFAULT_GUARDRAIL} {default} is not in {GUARDRAILS}")
    return tuple(listed), default


def _fallbacks(env: Mapping[str, str], allowed: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    raw = (env.get(FALLBACKS) or "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()):
            raise ValueError
    except ValueError:
        raise ConfigError(f'{FALLBACKS} must be {{"<model>": ["<model>[@region]", ...]}}') from None
    chains: dict[str, tuple[str, ...]] = {}
    for model, links in data.items():
        if model not in allowed:
            raise ConfigError(f"{FALLBACKS}: {model[:80]} is not in {ALLOWED_MODELS}")
        for text in links:
            try:
                link = parse_link(text)
            except ValueError as exc:
                raise ConfigError(f"{FALLBACKS}: {exc}") from None
            if link.model not in allowed:
                raise ConfigError(f"{FALLBACKS}: {link.model[:80]} (a link of {model}) is not in "
                                  f"{ALLOWED_MODELS}: the policies grant only those")
            profile = REGISTRY[link.model].profile
            if link.region and profile and link.region not in PROFILE_REGIONS.get(profile, ()) \
                    and profile != "global":
                raise ConfigError(f"{FALLBACKS}: {link} cannot be called: a {profile}. profile "
                                  f"is called from {', '.join(PROFILE_REGIONS[profile])}")
            if REGISTRY[link.model].kind != REGISTRY[model].kind:
                raise ConfigError(f"{FALLBACKS}: {link.model} cannot stand in for {model} "
                                  "(a chat model and an embedding model)")
        chains[model] = tuple(str(parse_link(t)) for t in links)
    return chains


def _steps(env: Mapping[str, str]) -> tuple[int, ...]:
    raw = (env.get(COOLDOWN_STEPS_S) or "").strip()
    if not raw:
        return Settings().cooldown_steps_s
    try:
        steps = tuple(int(t) for t in raw.split(","))
        if not steps or any(s < 1 for s in steps):
            raise ValueError
    except ValueError:
        raise ConfigError(f"{COOLDOWN_STEPS_S} must be seconds > 0, comma separated "
                          "(30,60,300)") from None
    return steps


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _prices(env: Mapping[str, str]) -> dict[str, tuple[Decimal, Decimal]]:
    """DEFAULT_PRICES, updated from MODEL_PRICES: {"<base id>": [input, output], ...}."""
    prices = dict(DEFAULT_PRICES)
    raw = env.get(MODEL_PRICES)
    if not raw:
        return prices
    try:
        for model_id, pair in json.loads(raw).items():
            input_price, output_price = (Decimal(str(p)) for p in pair)
            if input_price < 0 or output_price < 0:
                raise ValueError
            prices[model_id] = (input_price, output_price)
    except (ValueError, TypeError, AttributeError, InvalidOperation):
        raise ConfigError(f'{MODEL_PRICES} must be {{"<model id>": [input, output], ...}} '
                          "in USD per million tokens") from None
    return prices


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate settings; ConfigError names the bad variable."""
    env = os.environ if env is None else env
    base = Settings()
    default_model = env.get(DEFAULT_MODEL) or base.default_model
    allowed = tuple(m.strip() for m in (env.get(ALLOWED_MODELS) or default_model).split(",")
                    if m.strip())
    for model_id in allowed:
        if model_id not in REGISTRY:
            raise ConfigError(f"{ALLOWED_MODELS} names an unknown model: {model_id}")
    if default_model not in allowed:
        raise ConfigError(f"{DEFAULT_MODEL} {default_model} is not in {ALLOWED_MODELS}")
    if REGISTRY[default_model].kind != "chat":
        raise ConfigError(f"{DEFAULT_MODEL} {default_model} is not a chat model")
    guardrails, default_guardrail = _guardrails(env)
    return Settings(
        default_model=default_model,
        allowed_models=allowed,
        max_body_bytes=_int(env, MAX_BODY_BYTES, base.max_body_bytes, 1),
        max_prompt_chars=_int(env, MAX_PROMPT_CHARS, base.max_prompt_chars, 1),
        bedrock_connect_timeout_s=_float(env, BEDROCK_CONNECT_TIMEOUT_S,
                                         base.bedrock_connect_timeout_s),
        bedrock_read_timeout_s=_float(env, BEDROCK_READ_TIMEOUT_S, base.bedrock_read_timeout_s),
        bedrock_max_attempts=_int(env, BEDROCK_MAX_ATTEMPTS, base.bedrock_max_attempts, 1),
        throttle_retry_after_s=_int(env, THROTTLE_RETRY_AFTER_S, base.throttle_retry_after_s, 1),
        keys_table=env.get(KEYS_TABLE) or base.keys_table,
        usage_table=env.get(USAGE_TABLE) or base.usage_table,
        default_limits=Limits(**{field: _optional_int(env, name)
                                 for field, name in DEFAULT_LIMITS.items()},
                              **{field: _optional_usd(env, name)
                                 for field, name in DEFAULT_BUDGETS.items()}),
        jobs_table=env.get(JOBS_TABLE) or base.jobs_table,
        cache_table=env.get(CACHE_TABLE) or base.cache_table,
        jobs_queue=env.get(JOBS_QUEUE) or base.jobs_queue,
        job_ttl_s=_int(env, JOB_TTL_S, base.job_ttl_s, 60),
        jobs_max_receives=_int(env, JOBS_MAX_RECEIVES, base.jobs_max_receives, 1),
        jobs_retry_base_s=_int(env, JOBS_RETRY_BASE_S, base.jobs_retry_base_s, 0),
        jobs_lease_s=_int(env, JOBS_LEASE_S, base.jobs_lease_s, 1),
        jobs_read_timeout_s=_float(env, JOBS_READ_TIMEOUT_S, base.jobs_read_timeout_s),
        jobs_max_request_bytes=_int(env, JOBS_MAX_REQUEST_BYTES, base.jobs_max_request_bytes, 1024),
        cache_enabled=_bool(env, CACHE_ENABLED, base.cache_enabled),
        cache_ttl_s=_int(env, CACHE_TTL_S, base.cache_ttl_s, 1),
        responses_table=env.get(RESPONSES_TABLE) or base.responses_table,
        responses_ttl_s=_int(env, RESPONSES_TTL_S, base.responses_ttl_s, 60),
        stage=env.get(STAGE) or base.stage,
        log_prompts=_bool(env, LOG_PROMPTS, base.log_prompts),
        model_prices=_prices(env),
        guardrails=guardrails,
        guardrail=default_guardrail,
        budget_alerts_topic=(env.get(BUDGET_ALERTS_TOPIC) or "").strip(),
        fallbacks=_fallbacks(env, allowed),
        cooldown_failures=_int(env, COOLDOWN_FAILURES, base.cooldown_failures, 1),
        cooldown_steps_s=_steps(env),
    )
