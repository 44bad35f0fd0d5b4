"""Operator command for API keys: create, list, revoke, change limits.

    python scripts/keys.py [--stage dev] [--local] create --tenant acme --rpm 60 --tpd 100000
    python scripts/keys.py list
    python scripts/keys.py revoke key_0123abcd
    python scripts/keys.py set-limits key_0123abcd --rpm 120 --tpm none --tpd default
    python scripts/keys.py usage [--day 2026-11-25]      # per tenant: requests, tokens, cost

Limits take a whole number, ``none`` (unlimited) or ``default`` (the stage's
default, the initial state). The secret is printed once, at creation, and is
stored only as a hash; ``list`` never prints secrets or hashes.

The table is the stage's ``KEYS_TABLE`` from .chalice/config.json (or the
``KEYS_TABLE`` environment variable). AWS endpoint, region and credentials come
from the environment as for any AWS tool; ``--local`` points at the local
stack's AWS emulator (127.0.0.1:$AWS_EMULATOR_PORT, default 8002).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from chalicelib.dynamo import make_dynamodb_client  # noqa: E402
from chalicelib.tenancy.keys import KeyAdminError, KeyRecord, KeyStore  # noqa: E402

FLAGS = {"rpm": "requests_per_minute", "tpm": "tokens_per_minute", "tpd": "tokens_per_day"}


def _stage_setting(stage: str, name: str) -> str:
    if os.environ.get(name):
        return os.environ[name]
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    try:
        return str(config["stages"][stage]["environment_variables"][name])
    except KeyError:
        raise SystemExit(f"keys: stage {stage!r} has no {name} in .chalice/config.json") from None


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
    limits = " ".join(f"{flag}={shown(name)}" for flag, name in FLAGS.items())
    state = "enabled" if record.enabled else "revoked"
    if record.enabled and record.expires_at is not None and record.expires_at <= time.time():
        state = "expired"
    return (f"{record.key_id}  tenant={record.tenant}  {state}  created={_when(record.created_at)}"
            f"  expires={_when(record.expires_at)}  {limits}")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="keys", description="Manage API keys.")
    root.add_argument("--stage", default="dev")
    root.add_argument("--local", action="store_true", help="use the local stack's AWS emulator")
    commands = root.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--expires-in-days", type=float)
    change = commands.add_parser("set-limits", help="change a key's limits")
    change.add_argument("key_id")
    for sub in (create, change):
        for flag, name in FLAGS.items():
            sub.add_argument(f"--{flag}", type=limit_value, help=name.replace("_", " "))
    commands.add_parser("list", help="list keys (never their secrets)")
    revoke = commands.add_parser("revoke", help="disable a key for good")
    revoke.add_argument("key_id")
    usage = commands.add_parser("usage", help="requests, tokens and cost per tenant for a UTC day")
    usage.add_argument("--day", help="YYYY-MM-DD (default: today, UTC)")
    return root


def usage_by_tenant(store: KeyStore, client: Any, usage_table: str,
                    day: str) -> dict[str, dict[str, Any]]:
    """Sum the day items of every key, by the key's tenant."""
    day_index = int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()) // 86_400
    tenants = {record.key_id: record.tenant for record in store.list()}
    totals: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=usage_table):
        for item in page.get("Items", []):
            key_id, kind, index = item["pk"]["S"].rsplit("#", 2)
            if kind != "d" or int(index) != day_index:
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
        secret, record = store.create(args.tenant, now=now, limits=limits, expires_at=expires)
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
        store.set_limits(args.key_id, changes, reset)
        print(f"limits of {args.key_id} changed", file=out)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.local:
        port = os.environ.get("AWS_EMULATOR_PORT", "8002")
        os.environ.update({"AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{port}",
                           "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                           "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")})
    store = KeyStore(make_dynamodb_client(), stage_table(args.stage))
    try:
        run(args, store)
    except KeyAdminError as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore errors: one line, no traceback
        print(f"keys: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
