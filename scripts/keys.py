"""Operator command for API keys: create, list, revoke, change limits and models, show usage.

    python scripts/keys.py --local create --tenant acme --rpm 60 --tpd 100000
    python scripts/keys.py --local create --tenant acme --models us.anthropic.claude-haiku-4-5-20251001-v1:0
    python scripts/keys.py --local list
    python scripts/keys.py --stage prod revoke key_0123abcd
    python scripts/keys.py --stage dev set-limits key_0123abcd --rpm 120 --tpm none --tpd default
    python scripts/keys.py --local set-models key_0123abcd --models all
    python scripts/keys.py --local usage [--day 2026-11-25]   # per tenant: requests, tokens, cost
    python scripts/keys.py --local set-guardrail key_0123abcd --guardrail gr1abc:1

Limits take a whole number, ``none`` (unlimited) or ``default`` (the stage's
default, the initial state). The secret is printed once, at creation, and is
stored only as a hash; ``list`` never prints secrets or hashes.

It acts on an AWS account only when ``--stage`` names the stage: there is no
default stage, so a shell that happens to hold credentials cannot touch a
table by mistake. The table is the stage's ``KEYS_TABLE`` from
.chalice/config.json (or the ``KEYS_TABLE`` environment variable); endpoint,
region and credentials come from the environment as for any AWS tool.
``--local`` talks to the stack ``make run`` started instead: its AWS emulator's
port is read from the file ``make run`` writes (devstack/stack_state.py), or
from ``AWS_EMULATOR_PORT`` when that is set.

Every mistake is answered in one line on stderr with a non-zero status.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from chalicelib.aws import session  # noqa: E402
from chalicelib.dynamo import make_dynamodb_client  # noqa: E402
from chalicelib.models.guardrails import parse_guardrail  # noqa: E402
from chalicelib.tenancy.keys import (KeyAdminError, KeyRecord, KeyStore, Limits,  # noqa: E402
                                     usd_amount)
from devstack import stack_state  # noqa: E402

FLAGS = {"rpm": "requests_per_minute", "tpm": "tokens_per_minute", "tpd": "tokens_per_day",
         "usd_day": "usd_per_day", "usd_month": "usd_per_month"}

EXAMPLES = """\
examples:
  the local stack (make run):
    keys.py --local create --tenant acme --rpm 60 --tpm 20000 --tpd 200000 --expires-in-days 90
    keys.py --local create --tenant acme --usd-day 2 --usd-month 25
    keys.py --local list
    keys.py --local set-limits key_0123abcd --rpm 120 --tpd none --tpm default
    keys.py --local create --tenant acme \
        --models us.meta.llama3-1-8b-instruct-v1:0,amazon.titan-embed-text-v2:0
    keys.py --local create --tenant acme --guardrail gr1abc:1   # one of the stage's GUARDRAILS
    keys.py --local set-guardrail key_0123abcd --guardrail none  # the tenant's or stage's again
    keys.py --local set-tenant-guardrail acme --guardrail gr1abc:DRAFT
    keys.py --local set-models key_0123abcd --models all
    keys.py --local set-tenant-limits acme --usd-month 5 --rpm 600   # shared by acme's keys
    keys.py --local tenant acme
    keys.py --local create-admin --name ops        # a key for the /admin API and page
    keys.py --local revoke key_0123abcd
    keys.py --local usage --day 2026-11-25
  a deployed stage (AWS credentials and region from the environment):
    keys.py --stage prod create --tenant acme
    keys.py --stage dev list

limits (create and set-limits):
  --rpm requests per minute, --tpm tokens per minute, --tpd tokens per day; each takes
    N        a whole number >= 1
    none     unlimited
    default  the stage's default (what a new key has)
  --usd-day US dollars per UTC day, --usd-month US dollars per UTC calendar month; each takes
    USD      an amount > 0 with at most 6 decimals (5, 0.25)
    none, default  as above
  set-tenant-limits takes the same flags for a tenant's own limits, which all its keys share
  (a request must pass both its key's and its tenant's); a tenant's default is unlimited.

models (create and set-models):
  --models a,b  the model ids the key may use (of those the stage serves); any other
                model is a 404 model_not_found, and GET /v1/models lists only these
  --models all  every model of the stage (what a new key has)
"""


class CliError(Exception):
    """A one-line reason the command cannot run."""


class Parser(argparse.ArgumentParser):
    """argparse that answers a mistake in one line (its default adds the whole usage)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _stage_setting(stage: str, name: str) -> str:
    if os.environ.get(name):
        return os.environ[name]
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    try:
        return str(config["stages"][stage]["environment_variables"][name])
    except KeyError:
        raise CliError(f"stage {stage!r} has no {name} in .chalice/config.json") from None


def stage_table(stage: str) -> str:
    return _stage_setting(stage, "KEYS_TABLE")


def stage_usage_table(stage: str) -> str:
    return _stage_setting(stage, "USAGE_TABLE")


def limit_value(text: str) -> int | str:
    if text in ("none", "default"):
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError("a limit is a whole number >= 1, 'none' or 'default'")


def usd_value(text: str) -> Decimal | str:
    """A dollar budget: an amount (``5``, ``0.25``, ``$12.50``), 'none' or 'default'."""
    if text in ("none", "default"):
        return text
    try:
        return usd_amount(text.removeprefix("$"), "a budget")
    except KeyAdminError:
        raise argparse.ArgumentTypeError("a budget is US dollars > 0 with at most 6 decimals "
                                         "(5, 0.25), 'none' or 'default'") from None


def days_ahead(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not (days > 0 and math.isfinite(days)):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a key must expire in the future (more than 0 days)")
    return days


def utc_day(text: str) -> str:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day as YYYY-MM-DD") from None
    return text


def limit_changes(args: argparse.Namespace) -> tuple[dict[str, int | None], tuple[str, ...]]:
    """The limits given on the command line, and those sent back to the default."""
    changes: dict[str, int | None] = {}
    reset: list[str] = []
    for flag, name in FLAGS.items():
        value = getattr(args, flag)
        if value == "default":
            reset.append(name)
        elif value is not None:
            changes[name] = None if value == "none" else value
    return changes, tuple(reset)


def models_value(text: str) -> list[str] | None:
    """``all`` (every model of the stage) or comma-separated model ids."""
    if text.strip().lower() == "all":
        return None
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise argparse.ArgumentTypeError("give model ids separated by commas, or 'all'")
    return models


def guardrail_value(text: str) -> str | None:
    """``none`` or ``id:version`` (checked against the stage's list when used)."""
    if text.strip().lower() == "none":
        return None
    try:
        return str(parse_guardrail(text.strip()))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def stage_guardrail(stage: str, guardrail: str | None) -> str | None:
    """``guardrail``, if the stage lists it in GUARDRAILS (all its IAM policy
    lets it apply): a key naming any other could not be served."""
    if guardrail is None:
        return None
    try:
        listed = _stage_setting(stage, "GUARDRAILS")
    except CliError:
        listed = ""
    if guardrail not in [t.strip() for t in listed.split(",")]:
        raise CliError(f"{guardrail} is not one of stage {stage}'s GUARDRAILS "
                       f"({listed or 'none'}): add it to .chalice/config.json first")
    return guardrail


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def describe(record: KeyRecord) -> str:
    def shown(name: str) -> str:
        if name not in record.limits:
            return "default"
        value = record.limits[name]
        return "none" if value is None else str(value)
    limits = " ".join(f"{flag.replace('_', '-')}={shown(name)}" for flag, name in FLAGS.items())
    state = "enabled" if record.enabled else "revoked"
    if record.scope == "admin":
        state += " admin"
    if record.enabled and record.expires_at is not None and record.expires_at <= time.time():
        state = "expired"
    models = "all" if record.models is None else ",".join(record.models)
    guardrail = "-" if record.guardrail is None else str(record.guardrail)
    return (f"{record.key_id}  tenant={record.tenant}  {state}  created={_when(record.created_at)}"
            f"  expires={_when(record.expires_at)}  {limits}  models={models}"
            f"  guardrail={guardrail}")


def describe_limits(limits: Limits) -> str:
    """A tenant's limits as ``set-tenant-limits`` takes them (none: unlimited)."""
    return " ".join(f"{flag.replace('_', '-')}="
                    f"{'none' if getattr(limits, name) is None else getattr(limits, name)}"
                    for flag, name in FLAGS.items())


def parser() -> argparse.ArgumentParser:
    root = Parser(prog="keys", description="Manage the API keys of a stage or of the local stack.",
                  epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = root.add_mutually_exclusive_group()
    where.add_argument("--stage", help="the deployed stage to act on (dev, prod): needed for AWS")
    where.add_argument("--local", action="store_true",
                       help="the stack `make run` started (found wherever its ports are)")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", help="create a key and print it once",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    create.add_argument("--tenant", required=True)
    create.add_argument("--expires-in-days", type=days_ahead, metavar="DAYS",
                        help="the key stops working after DAYS (> 0; default: never)")
    create.add_argument("--models", type=models_value, metavar="ID,ID|all",
                        help="the models the key may use (default: all of the stage's)")
    create.add_argument("--guardrail", type=guardrail_value, metavar="ID:VERSION",
                        help="a Bedrock guardrail of the stage's GUARDRAILS (default: the "
                             "tenant's, else the stage's DEFAULT_GUARDRAIL)")
    guard = commands.add_parser("set-guardrail", help="change a key's own guardrail",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    guard.add_argument("key_id")
    team_guard = commands.add_parser("set-tenant-guardrail",
                                     help="change the guardrail of a tenant's keys that name none",
                                     epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    team_guard.add_argument("tenant")
    for sub in (guard, team_guard):
        sub.add_argument("--guardrail", type=guardrail_value, metavar="ID:VERSION|none",
                         required=True, help="one of the stage's GUARDRAILS, or none")
    models = commands.add_parser("set-models", help="change the models a key may use",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    models.add_argument("key_id")
    models.add_argument("--models", type=models_value, metavar="ID,ID|all", required=True,
                        help="model ids separated by commas, or 'all'")
    change = commands.add_parser("set-limits", help="change a key's limits",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    change.add_argument("key_id")
    team = commands.add_parser("set-tenant-limits",
                               help="change a tenant's own limits, shared by all its keys",
                               epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    team.add_argument("tenant")
    show = commands.add_parser("tenant", help="show a tenant's own limits")
    show.add_argument("tenant")
    admin = commands.add_parser("create-admin",
                                help="create an admin key for the /admin API and page "
                                     "(it cannot call models); printed once",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    admin.add_argument("--name", default="admin", help="who holds it (its tenant label)")
    admin.add_argument("--expires-in-days", type=days_ahead, metavar="DAYS",
                       help="the key stops working after DAYS (> 0; default: never)")
    for sub in (create, change, team):
        for flag, name in FLAGS.items():
            dollars = name.startswith("usd")
            sub.add_argument(f"--{flag.replace('_', '-')}", dest=flag,
                             type=usd_value if dollars else limit_value,
                             metavar="USD|none|default" if dollars else "N|none|default",
                             help=name.replace("_", " ").replace("usd", "US dollars"))
    commands.add_parser("list", help="list keys (never their secrets)")
    revoke = commands.add_parser("revoke", help="disable a key for good")
    revoke.add_argument("key_id")
    usage = commands.add_parser("usage", help="requests, tokens and cost per tenant for a UTC day")
    usage.add_argument("--day", type=utc_day, help="YYYY-MM-DD (default: today, UTC)")
    return root


def usage_by_tenant(store: KeyStore, client: Any, usage_table: str,
                    day: str) -> dict[str, dict[str, Any]]:
    """Sum the day items of every key, by the key's tenant."""
    day_index = int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()) // 86_400
    tenants = {record.key_id: record.tenant for record in store.list()}
    totals: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=usage_table):
        for item in page.get("Items", []):
            key_id, kind, index = (item["pk"]["S"].rsplit("#", 2) + ["", ""])[:3]
            # A tenant's own items (its shared limits) would count its keys
            # twice; other items (a link's cooldown) are not usage.
            if kind != "d" or index != str(day_index) or not key_id.startswith("key_"):
                continue
            row = totals.setdefault(tenants.get(key_id, "?"), {"requests": 0, "tokens": 0,
                                                               "cost_usd": Decimal(0)})
            row["requests"] += int(item.get("requests", {}).get("N", 0))
            row["tokens"] += int(item.get("tokens", {}).get("N", 0))
            row["cost_usd"] += Decimal(item.get("cost_usd", {}).get("N", "0"))
    return totals


def run(args: argparse.Namespace, store: KeyStore, out: Any = sys.stdout) -> None:
    if args.command == "create":
        limits, _ = limit_changes(args)
        now = int(time.time())
        expires = None if args.expires_in_days is None else now + int(args.expires_in_days * 86400)
        secret, record = store.create(args.tenant, now=now, limits=limits, expires_at=expires,
                                      models=args.models,
                                      guardrail=stage_guardrail(args.stage, args.guardrail))
        print(f"key:    {secret}", file=out)
        print(f"key id: {record.key_id}  (the key is shown only now; store it safely)", file=out)
        print(describe(record), file=out)
    elif args.command == "list":
        for record in store.list():
            print(describe(record), file=out)
    elif args.command == "revoke":
        store.revoke(args.key_id)
        print(f"revoked {args.key_id}", file=out)
    elif args.command == "usage":
        day = args.day or datetime.now(timezone.utc).strftime("%Y-%m-%d")
        totals = usage_by_tenant(store, store.client, stage_usage_table(args.stage), day)
        for tenant, row in sorted(totals.items()):
            print(f"{day}  tenant={tenant}  requests={row['requests']}  tokens={row['tokens']}"
                  f"  cost_usd={row['cost_usd']:.6f}", file=out)
    elif args.command == "set-limits":
        changes, reset = limit_changes(args)
        if not changes and not reset:
            raise CliError("set-limits needs at least one of --rpm, --tpm, --tpd, --usd-day, "
                           "--usd-month")
        store.set_limits(args.key_id, changes, reset)
        print(f"limits of {args.key_id} changed", file=out)
    elif args.command == "create-admin":
        now = int(time.time())
        expires = None if args.expires_in_days is None else now + int(args.expires_in_days * 86400)
        secret, record = store.create(args.name, now=now, expires_at=expires, scope="admin")
        print(f"admin key: {secret}", file=out)
        print(f"key id:    {record.key_id}  (shown only now; it manages keys on /admin and "
              "cannot call models)", file=out)
    elif args.command == "set-tenant-limits":
        changes, reset = limit_changes(args)
        if not changes and not reset:
            raise CliError("set-tenant-limits needs at least one of --rpm, --tpm, --tpd, "
                           "--usd-day, --usd-month")
        limits = store.set_tenant_limits(args.tenant, changes, reset)
        print(f"tenant {args.tenant}: {describe_limits(limits)}", file=out)
    elif args.command == "tenant":
        limits, guardrail = store.tenant_policy(args.tenant)
        print(f"tenant {args.tenant}: {describe_limits(limits)}  guardrail={guardrail or '-'}",
              file=out)
    elif args.command == "set-guardrail":
        store.set_guardrail(args.key_id, stage_guardrail(args.stage, args.guardrail))
        print(f"{args.key_id}: guardrail {args.guardrail or 'of its tenant or stage'}", file=out)
    elif args.command == "set-tenant-guardrail":
        limits = store.tenant_limits(args.tenant)
        store.set_tenant_limits(args.tenant, {}, (), guardrail=stage_guardrail(args.stage,
                                                                               args.guardrail))
        print(f"tenant {args.tenant}: {describe_limits(limits)}  "
              f"guardrail={args.guardrail or '-'}", file=out)
    elif args.command == "set-models":
        store.set_models(args.key_id, args.models)
        shown = "all of the stage's" if args.models is None else ", ".join(args.models)
        print(f"{args.key_id} may use {shown}", file=out)


def local_aws_port(env: dict[str, str] | os._Environ[str]) -> int:
    """The running local stack's AWS emulator port, or a CliError saying none runs."""
    if env.get("AWS_EMULATOR_PORT"):
        raw = env["AWS_EMULATOR_PORT"]
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise CliError(f"AWS_EMULATOR_PORT={raw!r} is not a port number")
        port = int(raw)
    else:
        state = stack_state.read()
        if state is None:
            raise CliError("no local stack is running: start it with `make run` "
                           "(or set AWS_EMULATOR_PORT)")
        port = state.aws_emulator_port
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        raise CliError(f"no local stack answers on 127.0.0.1:{port}: start it with `make run`"
                       ) from None
    return port


def target_stage(args: argparse.Namespace) -> str:
    """The stage to act on; points the environment at the local stack for --local."""
    if args.local:
        port = local_aws_port(os.environ)
        os.environ.update({"AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{port}",
                           "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                           "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")})
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        return "dev"  # the stage make run serves
    if not args.stage:
        raise CliError("say which keys: --stage dev|prod for a deployed stage, "
                       "or --local for the stack `make run` started")
    if not session().get_config_variable("region"):
        raise CliError("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION "
                       "(or a region in your AWS profile)")
    return str(args.stage)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.stage = target_stage(args)
        store = KeyStore(make_dynamodb_client(), stage_table(args.stage))
        run(args, store)
    except (CliError, KeyAdminError) as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore errors: one line, no traceback
        print(f"keys: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
