"""Settings from the environment: defaults, overrides, and named failures."""
from __future__ import annotations

import pytest

from chalicelib.config import ConfigError, Settings, load_settings


def test_defaults() -> None:
    assert load_settings({}) == Settings()


def test_overrides() -> None:
    settings = load_settings({
        "DEFAULT_MODEL": "us.meta.llama3-1-70b-instruct-v1:0",
        "ALLOWED_MODELS": "us.meta.llama3-1-8b-instruct-v1:0, us.meta.llama3-1-70b-instruct-v1:0",
        "MAX_BODY_BYTES": "2048", "BEDROCK_READ_TIMEOUT_S": "5.5", "BEDROCK_MAX_ATTEMPTS": "1"})
    assert settings.default_model == "us.meta.llama3-1-70b-instruct-v1:0"
    assert settings.allowed_models == ("us.meta.llama3-1-8b-instruct-v1:0",
                                       "us.meta.llama3-1-70b-instruct-v1:0")
    assert (settings.max_body_bytes, settings.bedrock_read_timeout_s,
            settings.bedrock_max_attempts) == (2048, 5.5, 1)


@pytest.mark.parametrize("env,named", [
    ({"ALLOWED_MODELS": "gpt-4"}, "ALLOWED_MODELS"),
    ({"DEFAULT_MODEL": "us.meta.llama3-1-70b-instruct-v1:0",
      "ALLOWED_MODELS": "us.meta.llama3-1-8b-instruct-v1:0"}, "DEFAULT_MODEL"),
    ({"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES"),
    ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES"),
    ({"BEDROCK_READ_TIMEOUT_S": "-1"}, "BEDROCK_READ_TIMEOUT_S"),
    ({"BEDROCK_CONNECT_TIMEOUT_S": "nan"}, "BEDROCK_CONNECT_TIMEOUT_S"),
])
def test_bad_settings_name_the_variable(env: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env)


def test_worst_case_sync_request_fits_api_gateway() -> None:
    # Throttles and 5xx are answered at once; read timeouts are never retried,
    # so the worst case is (attempts - 1) quick failures with standard-mode
    # backoff (<= 2**i s) plus one full read timeout.
    s = Settings()
    backoff = sum(2 ** i for i in range(s.bedrock_max_attempts - 1))
    worst = s.bedrock_max_attempts * s.bedrock_connect_timeout_s + backoff + s.bedrock_read_timeout_s
    assert worst < 29


def test_default_dollar_budgets() -> None:
    from decimal import Decimal
    limits = load_settings({"DEFAULT_USD_PER_DAY": "2.5", "DEFAULT_USD_PER_MONTH": ""}).default_limits
    assert (limits.usd_per_day, limits.usd_per_month) == (Decimal("2.5"), None)
    for bad in ("0", "-1", "five", "1.0000001"):
        with pytest.raises(ConfigError, match="DEFAULT_USD_PER_MONTH"):
            load_settings({"DEFAULT_USD_PER_MONTH": bad})
