"""scripts/keys.py against the AWS emulator: create, list, revoke, set limits."""
from __future__ import annotations

import io
import re
import subprocess
import sys
from typing import Any

import pytest

from chalicelib.tenancy.keys import KeyStore, hash_secret
from scripts import keys as cli
from tests.e2e.stack import PROJECT_DIR


def run(store: KeyStore, *argv: str) -> str:
    out = io.StringIO()
    cli.run(cli.parser().parse_args(list(argv)), store, out)
    return out.getvalue()


def test_create_shows_the_key_once_and_stores_only_its_hash(key_store: KeyStore,
                                                            dynamodb: Any) -> None:
    out = run(key_store, "create", "--tenant", "acme", "--rpm", "5", "--tpm", "none")
    secret = re.search(r"key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    assert secret.startswith("llm_") and len(secret) == 47
    record = key_store.lookup(secret)
    assert record is not None and record.tenant == "acme"
    assert record.limits == {"requests_per_minute": 5, "tokens_per_minute": None}
    items = dynamodb.scan(TableName="llm-endpoint-dev-api-keys")["Items"]
    stored = str(items)
    assert secret not in stored and hash_secret(secret) in stored
    listing = run(key_store, "list")
    assert secret not in listing and hash_secret(secret) not in listing
    assert "tenant=acme" in listing and "rpm=5 tpm=none tpd=default" in listing


def test_revoke_and_set_limits(key_store: KeyStore) -> None:
    out = run(key_store, "create", "--tenant", "acme", "--expires-in-days", "1")
    key_id = re.search(r"key id: (\S+)", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    run(key_store, "set-limits", key_id, "--rpm", "7", "--tpd", "none")
    assert key_store.lookup(secret).limits == {"requests_per_minute": 7,  # type: ignore[union-attr]
                                               "tokens_per_day": None}
    run(key_store, "set-limits", key_id, "--rpm", "default")
    assert key_store.lookup(secret).limits == {"tokens_per_day": None}  # type: ignore[union-attr]
    assert "revoked" in run(key_store, "revoke", key_id)
    assert key_store.lookup(secret).enabled is False  # type: ignore[union-attr]
    assert f"{key_id}  tenant=acme  revoked" in run(key_store, "list")


@pytest.mark.parametrize("argv,message", [
    (["revoke", "key_nope"], "no key with id key_nope"),
    (["create", "--tenant", "bad tenant!"], "tenant must be"),
])
def test_operator_mistakes_are_one_line(aws_url: str, dynamodb: Any, argv: list[str],
                                        message: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL_DYNAMODB": aws_url,
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([sys.executable, "scripts/keys.py", *argv], cwd=PROJECT_DIR, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_limit_values_are_refused() -> None:
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["create", "--tenant", "a", "--rpm", "0"])


def test_usage_per_tenant_and_day(key_store: KeyStore, dynamodb: Any) -> None:
    import time
    from decimal import Decimal

    from chalicelib.tenancy.auth import Caller
    from chalicelib.tenancy.keys import Limits
    from chalicelib.tenancy.limits import Limiter
    tenant = f"usage{time.monotonic_ns()}"
    now = time.time()
    limiter = Limiter(dynamodb, "llm-endpoint-dev-usage", lambda: now)
    for _ in range(2):  # two keys of one tenant
        _, record = key_store.create(tenant, now=int(now))
        caller = Caller(tenant, record.key_id, Limits(tokens_per_day=10_000))
        reservation = limiter.admit(caller, 500)
        limiter.settle(reservation, 120, Decimal("0.0000264"))
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    out = run(key_store, "usage", "--day", day)
    assert f"{day}  tenant={tenant}  requests=2  tokens=240  cost_usd=0.000053" in out
