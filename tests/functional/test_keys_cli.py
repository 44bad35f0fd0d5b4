"""scripts/keys.py against the AWS emulator: create, list, revoke, set limits; its mistakes
in one line; ``--local`` finding the ports of the stack ``make run`` started."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chalicelib.tenancy.keys import KeyStore, hash_secret
from devstack import stack_state
from scripts import keys as cli
from tests.e2e.stack import PROJECT_DIR, LocalStack
from tests.support import free_port


def run(store: KeyStore, *argv: str) -> str:
    out = io.StringIO()
    cli.run(cli.parser().parse_args(["--stage", "dev", *argv]), store, out)
    return out.getvalue()


def command(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it, in an environment holding only ``env``."""
    return subprocess.run([sys.executable, "scripts/keys.py", *argv], cwd=PROJECT_DIR,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env},
                          capture_output=True, text=True, timeout=60)


def assert_one_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


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


def test_create_admin_makes_a_key_of_the_admin_scope(key_store: KeyStore) -> None:
    out = run(key_store, "create-admin", "--name", "ops")
    secret = re.search(r"admin key: (\S+)", out).group(1)  # type: ignore[union-attr]
    record = key_store.lookup(secret)
    assert record is not None and record.scope == "admin" and record.tenant == "ops"
    assert "cannot call models" in out
    assert f"{record.key_id}  tenant=ops  enabled admin" in run(key_store, "list")


def test_dollar_budgets(key_store: KeyStore) -> None:
    out = run(key_store, "create", "--tenant", "acme", "--usd-day", "2", "--usd-month", "$25.50")
    key_id = re.search(r"key id: (\S+)", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    record = key_store.lookup(secret)
    assert record is not None and record.limits == {"usd_per_day": 2, "usd_per_month": Decimal("25.5")}
    assert "usd-day=2 usd-month=25.5" in run(key_store, "list")
    run(key_store, "set-limits", key_id, "--usd-day", "none", "--usd-month", "default")
    assert key_store.lookup(secret).limits == {"usd_per_day": None}  # type: ignore[union-attr]


def test_create_and_set_models(key_store: KeyStore) -> None:
    claude = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    out = run(key_store, "create", "--tenant", "acme", "--models", f"{claude}, amazon.titan-embed-text-v2:0")
    key_id = re.search(r"key id: (\S+)", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    assert key_store.lookup(secret).models == (  # type: ignore[union-attr]
        claude, "amazon.titan-embed-text-v2:0")
    assert f"models={claude},amazon.titan-embed-text-v2:0" in run(key_store, "list")
    assert "may use all of the stage's" in run(key_store, "set-models", key_id, "--models", "ALL")
    assert key_store.lookup(secret).models is None  # type: ignore[union-attr]
    assert "models=all" in run(key_store, "list")


@pytest.mark.parametrize("argv,message", [
    (["revoke", "key_nope"], "no key with id key_nope"),
    (["create", "--tenant", "bad tenant!"], "tenant must be"),
    (["create", "--tenant", "a", "--models", "gpt-4o"], "unknown models: ['gpt-4o']"),
    (["set-models", "key_nope", "--models", "all"], "no key with id key_nope"),
])
def test_operator_mistakes_are_one_line(aws_url: str, dynamodb: Any, argv: list[str],
                                        message: str) -> None:
    result = command("--stage", "dev", *argv, AWS_ENDPOINT_URL_DYNAMODB=aws_url,
                     AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                     AWS_DEFAULT_REGION="us-east-1")
    assert result.returncode == 1
    assert_one_line(result, message)


MOTO = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.mark.parametrize("argv,env,message", [
    # Credentials and a region in the shell are not enough to touch a deployed table.
    (["list"], MOTO, "--stage dev|prod for a deployed stage, or --local"),
    (["--stage", "dev", "list"], {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
     "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION"),
    (["--stage", "nope", "list"], MOTO, "stage 'nope' has no KEYS_TABLE"),
    (["--local", "--stage", "prod", "list"], {}, "not allowed with argument"),
    (["--local", "create", "--tenant", "a", "--expires-in-days", "-1"], {},
     "a key must expire in the future"),
    (["--local", "create", "--tenant", "a", "--expires-in-days", "0"], {},
     "a key must expire in the future"),
    (["--local", "create", "--tenant", "a", "--expires-in-days", "soon"], {},
     "'soon' is not a number of days"),
    (["--local", "usage", "--day", "2026-13-01"], {}, "'2026-13-01' is not a day as YYYY-MM-DD"),
    (["--local", "usage", "--day", "yesterday"], {}, "is not a day as YYYY-MM-DD"),
    (["--local", "create", "--tenant", "a", "--rpm", "0"], {}, "a limit is a whole number >= 1"),
    (["--local", "set-limits"], {}, "the following arguments are required: key_id"),
    (["--local", "set-models", "key_1"], {}, "the following arguments are required: --models"),
    (["--local", "create", "--tenant", "a", "--usd-day", "0"], {}, "a budget is US dollars > 0"),
    (["--local", "create", "--tenant", "a", "--usd-month", "1.0000001"], {}, "at most 6 decimals"),
    (["--local", "create", "--tenant", "a", "--usd-month", "5_000"], {}, "a budget is US dollars"),
    (["--local", "create", "--tenant", "a", "--usd-month", "\u0661\u0662"], {}, "a budget is US"),
    (["--local", "create", "--tenant", "a", "--models", ","], {}, "give model ids separated"),
    (["--local", "frobnicate"], {}, "invalid choice: 'frobnicate'"),
])
def test_mistakes_before_any_call_are_one_line(argv: list[str], env: dict[str, str],
                                               message: str) -> None:
    assert_one_line(command(*argv, **env), message)


def test_set_limits_with_nothing_to_set_is_refused(aws_url: str, key_store: KeyStore) -> None:
    _, record = key_store.create("acme", now=0)
    result = command("--stage", "dev", "set-limits", record.key_id,
                     AWS_ENDPOINT_URL_DYNAMODB=aws_url, **MOTO)
    assert_one_line(result, "set-limits needs at least one of --rpm, --tpm, --tpd")
    assert next(r for r in key_store.list() if r.key_id == record.key_id).limits == {}


def test_help_shows_examples_and_the_limit_syntax() -> None:
    for argv in (["--help"], ["create", "--help"], ["set-limits", "--help"]):
        result = command(*argv)
        assert result.returncode == 0, result.stderr
        assert "keys.py --local create --tenant acme" in result.stdout
        assert "keys.py --stage prod create --tenant acme" in result.stdout
        assert "none     unlimited" in result.stdout and "default  the stage's default" in result.stdout
        assert "N        a whole number >= 1" in result.stdout


def test_local_without_a_running_stack_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AWS_EMULATOR_PORT", raising=False)
    monkeypatch.setattr(stack_state, "STATE_FILE", tmp_path / "stack.json")
    assert cli.main(["--local", "list"]) == 1
    assert capsys.readouterr().err == ("keys: no local stack is running: start it with `make run` "
                                       "(or set AWS_EMULATOR_PORT)\n")
    # A file left by a supervisor that was killed outright counts as no stack.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stack_state.write(stack_state.StackPorts(int(dead.stdout), "dev", 1, 2, free_port()))
    assert cli.main(["--local", "list"]) == 1
    assert "no local stack is running" in capsys.readouterr().err


def test_local_with_nothing_on_the_port_says_so() -> None:
    port = free_port()
    assert_one_line(command("--local", "list", AWS_EMULATOR_PORT=str(port)),
                    f"no local stack answers on 127.0.0.1:{port}: start it with `make run`")


def test_local_finds_the_ports_make_run_chose() -> None:
    """make run on ports of its own; keys.py --local, with no port in its environment, finds them
    in the file make run wrote, which is gone once the stack stops."""
    stack = LocalStack().start()
    try:
        state = json.loads(stack_state.STATE_FILE.read_text())
        assert (state["app_port"], state["bedrock_emulator_port"], state["aws_emulator_port"]) == (
            stack.app_port, stack.emulator_port, stack.aws_port)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("PORT", "BEDROCK_EMULATOR_PORT")}
        created = subprocess.run(
            [sys.executable, "scripts/keys.py", "--local", "create", "--tenant", "found",
             "--expires-in-days", "0.5"], cwd=PROJECT_DIR, env=env, capture_output=True,
            text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        key_id = re.search(r"key id: (\S+)", created.stdout).group(1)  # type: ignore[union-attr]
        listing = stack.keys_command("list")  # the same table, reached through the port itself
        assert f"{key_id}  tenant=found  enabled" in listing and "tenant=local" in listing
    finally:
        stack.stop()
    after = stack_state.read()
    assert after is None or after.aws_emulator_port != stack.aws_port  # removed (or a later stack's)


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


def test_guardrails_of_the_stages_list(key_store: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDRAILS", "gr1abc:1,gr2def:DRAFT")
    out = run(key_store, "create", "--tenant", "acme-g", "--guardrail", "gr1abc:1")
    key_id = re.search(r"key id: (\S+)", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    assert "guardrail=gr1abc:1" in out
    assert str(key_store.lookup(secret).guardrail) == "gr1abc:1"  # type: ignore[union-attr]
    run(key_store, "set-guardrail", key_id, "--guardrail", "none")
    assert key_store.lookup(secret).guardrail is None  # type: ignore[union-attr]
    out = run(key_store, "set-tenant-guardrail", "acme-g", "--guardrail", "gr2def:DRAFT")
    assert "guardrail=gr2def:DRAFT" in run(key_store, "tenant", "acme-g")
    assert str(key_store.tenant_policy("acme-g")[1]) == "gr2def:DRAFT"
    with pytest.raises(cli.CliError, match="not one of stage dev's GUARDRAILS"):
        run(key_store, "set-guardrail", key_id, "--guardrail", "zzz9:1")
    with pytest.raises(SystemExit):
        run(key_store, "set-guardrail", key_id, "--guardrail", "GR1:1")
