"""API keys: generated from 32 random bytes, shown once, stored only as a SHA-256 hash.

A SHA-256 of a 256-bit random secret needs no salt or slow hash: there is
nothing to guess. The table's partition key is that hash, so the authorizer
finds a key with one GetItem. Limits are stored per key: a number is a limit,
null means unlimited, and an absent limit takes the stage's default. A key may
name the models it may use (``models``); without that list it may use all of
the stage's (``chalicelib.tenancy.access`` narrows a request to them).

A tenant (team) may have limits of its own, shared by all its keys: they are
stored in the same table under ``tenant#<name>`` (no key's hash looks like
that: hashes are hex), so the authorizer reads them with one more GetItem. A
tenant's absent limit is unlimited (stage defaults are per key).

A key or a tenant may name a Bedrock guardrail (``guardrail``, ``id:version``);
the key's wins, then the tenant's, then the stage's default
(``chalicelib.tenancy.access``). Which guardrails a stage may use is the
stage's business (``GUARDRAILS``): the admin API checks that, the store only
the shape.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.chat import Guardrail
from chalicelib.dynamo import decode_item, encode, encode_item
from chalicelib.models.guardrails import parse_guardrail
from chalicelib.models.registry import REGISTRY

KEY_PREFIX = "llm_"
# What a well-formed secret looks like; anything else is rejected before I/O.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_\-.~+/=]{20,200}")
USD_PATTERN = re.compile(r"[0-9]{1,10}(\.[0-9]{1,12})?", re.ASCII)
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
TOKEN_LIMITS = ("requests_per_minute", "tokens_per_minute", "tokens_per_day")
# Budgets in US dollars: a UTC day's and a UTC calendar month's spend.
USD_LIMITS = ("usd_per_day", "usd_per_month")
LIMIT_NAMES = TOKEN_LIMITS + USD_LIMITS
MICROS = Decimal(1_000_000)
KEEP: Any = object()  # an argument left as stored


class KeyAdminError(Exception):
    """An operator mistake (unknown key id, bad tenant name)."""


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    usd_per_day: Decimal | None = None
    usd_per_month: Decimal | None = None

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, name) is None for name in LIMIT_NAMES)


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    tenant: str
    enabled: bool
    created_at: int
    expires_at: int | None
    limits: Mapping[str, int | None]  # as stored: absent = stage default
    models: tuple[str, ...] | None = None  # the models it may use; None: all the stage's
    scope: str = "model"  # "model": the model routes | "admin": /admin only (keys.py makes them)
    superseded: bool = False  # rotated away: works until ``expires_at``, no longer listed
    guardrail: Guardrail | None = None  # the key's own; None: its tenant's or the stage's

    def effective_limits(self, defaults: Limits) -> Limits:
        return _limits({name: self.limits[name] if name in self.limits else getattr(defaults, name)
                        for name in LIMIT_NAMES})

    def usable_at(self, now: float) -> bool:
        return self.enabled and (self.expires_at is None or now < self.expires_at)


def tenant_item(tenant: str) -> str:
    """The keys table's item of a tenant's limits."""
    return f"tenant#{tenant}"


def _limits(stored: Mapping[str, Any]) -> Limits:
    values = {name: stored.get(name) for name in LIMIT_NAMES}
    for name in USD_LIMITS:
        if values[name] is not None:
            values[name] = Decimal(values[name])
    return Limits(**values)


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def well_formed(secret: str) -> bool:
    return KEY_PATTERN.fullmatch(secret) is not None


def _record(item: Mapping[str, Any]) -> KeyRecord:
    data = decode_item(item)
    return KeyRecord(key_id=data["key_id"], tenant=data["tenant"], enabled=bool(data["enabled"]),
                     created_at=int(data["created_at"]), expires_at=data.get("expires_at"),
                     limits=data.get("limits") or {},
                     models=tuple(data["models"]) if data.get("models") else None,
                     scope=data.get("scope", "model"), superseded=bool(data.get("superseded")),
                     guardrail=_stored_guardrail(data))


def _stored_guardrail(data: Mapping[str, Any]) -> Guardrail | None:
    return parse_guardrail(data["guardrail"]) if data.get("guardrail") else None


def check_guardrail(value: Any) -> Guardrail | None:
    """A key's or tenant's guardrail: None, or ``id:version``."""
    if value is None:
        return None
    try:
        return parse_guardrail(value)
    except ValueError as exc:
        raise KeyAdminError(f"guardrail: {exc}, or None for none of its own") from None


def check_models(models: Any) -> tuple[str, ...] | None:
    """A key's models: None (all the stage's) or a non-empty list of model ids
    this endpoint knows, each once (whether the stage serves them is the
    stage's business: a request may use those of them the stage allows)."""
    if models is None:
        return None
    if isinstance(models, str) or not isinstance(models, (list, tuple)) or not models:
        raise KeyAdminError("models must be a non-empty list of model ids, or None for all")
    unknown = [m for m in models if not isinstance(m, str) or m not in REGISTRY]
    if unknown:
        shown = [m[:80] if isinstance(m, str) else m for m in unknown[:3]]
        raise KeyAdminError(f"unknown models: {shown}; known: {sorted(REGISTRY)}")
    if len(set(models)) != len(models):
        raise KeyAdminError("models names a model twice")
    return tuple(models)


def usd_amount(value: Any, name: str) -> Decimal:
    """A dollar budget: more than 0, in whole micro-dollars (6 decimals at most)."""
    text = str(value) if isinstance(value, (int, str, Decimal, float)) else ""
    if isinstance(value, bool) or not USD_PATTERN.fullmatch(text):
        text = "nan"  # only plain ASCII decimals ("5", "0.25"): not "5_000" nor other digits
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal("nan")
    if not amount.is_finite() or amount <= 0 or amount > 10**9 or (amount * MICROS) % 1:
        raise KeyAdminError(f"{name} must be an amount of US dollars > 0 with at most 6 "
                            "decimals, or None for unlimited")
    return amount


def check_limits(limits: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(limits) - set(LIMIT_NAMES)
    if unknown:
        raise KeyAdminError(f"unknown limits: {sorted(unknown)}")
    checked: dict[str, Any] = {}
    for name, value in limits.items():
        if value is not None and name in USD_LIMITS:
            value = usd_amount(value, name)
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < 1):
            raise KeyAdminError(f"{name} must be a whole number >= 1, or None for unlimited")
        checked[name] = value
    return checked


class KeyStore:
    """The keys table. ``client`` is a low-level DynamoDB client."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    @property
    def client(self) -> Any:
        return self._client

    def create(self, tenant: str, *, now: int, limits: Mapping[str, int | None] | None = None,
               expires_at: int | None = None, secret: str | None = None,
               models: Any = None, scope: str = "model",
               guardrail: Any = None) -> tuple[str, KeyRecord]:
        """Store a new key; returns the secret (never stored) and the record."""
        if TENANT_PATTERN.fullmatch(tenant) is None:
            raise KeyAdminError("tenant must be 1-64 letters, digits, '.', '_' or '-'")
        secret = secret or new_secret()
        if not well_formed(secret):
            raise KeyAdminError("a key must be 20-200 characters of A-Z a-z 0-9 _ - . ~ + / =")
        if scope not in ("model", "admin"):
            raise KeyAdminError("scope is 'model' or 'admin'")
        if expires_at is not None and expires_at <= now:
            raise KeyAdminError("a key must expire in the future")
        record = KeyRecord(key_id="key_" + secrets.token_hex(8), tenant=tenant, enabled=True,
                           created_at=now, expires_at=expires_at,
                           limits=check_limits(limits or {}), models=check_models(models),
                           scope=scope, guardrail=check_guardrail(guardrail))
        item = {"key_hash": hash_secret(secret), "key_id": record.key_id, "tenant": tenant,
                "enabled": True, "created_at": now, "limits": dict(record.limits),
                "scope": scope}
        if expires_at is not None:
            item["expires_at"] = expires_at
        if record.models is not None:
            item["models"] = list(record.models)
        if record.guardrail is not None:
            item["guardrail"] = str(record.guardrail)
        self._client.put_item(TableName=self._table, Item=encode_item(item),
                              ConditionExpression="attribute_not_exists(key_hash)")
        return secret, record

    def lookup(self, secret: str) -> KeyRecord | None:
        """The record of a well-formed secret, or None. One GetItem."""
        response = self._client.get_item(TableName=self._table,
                                         Key={"key_hash": {"S": hash_secret(secret)}})
        item = response.get("Item")
        return _record(item) if item else None

    def _items(self) -> Iterator[Mapping[str, Any]]:
        """The keys' items (a tenant's limits share the table; they are skipped)."""
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(TableName=self._table):
            yield from (item for item in page.get("Items", []) if "key_id" in item)

    def tenant_limits(self, tenant: str) -> Limits:
        """A tenant's own limits (unlimited where unset). One GetItem."""
        return self.tenant_policy(tenant)[0]

    def tenant_policy(self, tenant: str) -> tuple[Limits, Guardrail | None]:
        """A tenant's own limits and guardrail. One GetItem."""
        stored = self._tenant_stored(tenant)
        return _limits(stored.get("limits") or {}), _stored_guardrail(stored)

    def _tenant_stored(self, tenant: str) -> dict[str, Any]:
        """A tenant's item as stored (absent: {}, nothing set)."""
        if TENANT_PATTERN.fullmatch(tenant) is None:
            raise KeyAdminError("tenant must be 1-64 letters, digits, '.', '_' or '-'")
        item = self._client.get_item(TableName=self._table,
                                     Key={"key_hash": {"S": tenant_item(tenant)}}).get("Item")
        return decode_item(item) if item else {}

    def set_tenant_limits(self, tenant: str, changes: Mapping[str, Any],
                          reset: tuple[str, ...] = (), guardrail: Any = KEEP) -> Limits:
        """Set a tenant's limits (None or a name in ``reset``: unlimited), and
        its guardrail unless ``KEEP`` (None: none of its own)."""
        changes = check_limits(changes)
        check_limits({name: 1 for name in reset})
        stored = self._tenant_stored(tenant)
        limits = {k: v for k, v in {**(stored.get("limits") or {}), **changes}.items()
                  if k not in reset and v is not None}
        item: dict[str, Any] = {"key_hash": tenant_item(tenant), "tenant": tenant,
                                "limits": limits}
        chosen = _stored_guardrail(stored) if guardrail is KEEP else check_guardrail(guardrail)
        if chosen is not None:
            item["guardrail"] = str(chosen)
        self._client.put_item(TableName=self._table, Item=encode_item(item))
        return _limits(limits)

    def list(self) -> list[KeyRecord]:
        """Every key (not the rotated-away secrets of one), oldest first."""
        return sorted((r for r in map(_record, self._items()) if not r.superseded),
                      key=lambda r: r.created_at)

    def _hash_of(self, key_id: str) -> str:
        # Operator path only: a scan of a small table, never on a request.
        for item in self._items():
            if item["key_id"]["S"] == key_id and not item.get("superseded", {}).get("BOOL"):
                return str(item["key_hash"]["S"])
        raise KeyAdminError(f"no key with id {key_id}")

    def get(self, key_id: str) -> KeyRecord:
        return self._get(self._hash_of(key_id))

    def set_expiry(self, key_id: str, expires_at: int | None) -> None:
        key = {"key_hash": {"S": self._hash_of(key_id)}}
        if expires_at is None:
            self._client.update_item(TableName=self._table, Key=key,
                                     UpdateExpression="REMOVE expires_at")
        else:
            self._client.update_item(TableName=self._table, Key=key,
                                     UpdateExpression="SET expires_at = :e",
                                     ExpressionAttributeValues={":e": encode(expires_at)})

    def rotate(self, key_id: str, *, now: int, grace_s: int) -> tuple[str, KeyRecord]:
        """A new secret for the same key (same id, tenant, limits, models and
        usage); the old secret keeps working for ``grace_s`` seconds (0: not
        at all), then stops, and is never listed again."""
        old_hash = self._hash_of(key_id)
        item = self._client.get_item(TableName=self._table,
                                     Key={"key_hash": {"S": old_hash}})["Item"]
        secret = new_secret()
        fresh = {**item, "key_hash": {"S": hash_secret(secret)}}
        self._client.put_item(TableName=self._table, Item=fresh,
                              ConditionExpression="attribute_not_exists(key_hash)")
        old_expiry = decode_item(item).get("expires_at")
        until = now + grace_s if old_expiry is None else min(int(old_expiry), now + grace_s)
        self._client.update_item(
            TableName=self._table, Key={"key_hash": {"S": old_hash}},
            UpdateExpression="SET superseded = :t, expires_at = :e",
            ExpressionAttributeValues={":t": encode(True), ":e": encode(until)})
        return secret, _record(fresh)

    def revoke(self, key_id: str) -> None:
        self._client.update_item(
            TableName=self._table, Key={"key_hash": {"S": self._hash_of(key_id)}},
            UpdateExpression="SET enabled = :false", ExpressionAttributeValues={":false": encode(False)})

    def set_limits(self, key_id: str, changes: Mapping[str, int | None],
                   reset: tuple[str, ...] = ()) -> None:
        """Set limits (None = unlimited); names in ``reset`` return to the default."""
        changes = check_limits(changes)
        check_limits({name: 1 for name in reset})
        key_hash = self._hash_of(key_id)
        record = self._get(key_hash)
        limits = {k: v for k, v in {**record.limits, **changes}.items() if k not in reset}
        self._client.update_item(
            TableName=self._table, Key={"key_hash": {"S": key_hash}},
            UpdateExpression="SET limits = :limits", ExpressionAttributeValues={":limits": encode(limits)})

    def set_models(self, key_id: str, models: Any) -> None:
        """The models a key may use (None: all of the stage's again)."""
        checked = check_models(models)
        key = {"key_hash": {"S": self._hash_of(key_id)}}
        if checked is None:
            self._client.update_item(TableName=self._table, Key=key, UpdateExpression="REMOVE models")
        else:
            self._client.update_item(TableName=self._table, Key=key,
                                     UpdateExpression="SET models = :models",
                                     ExpressionAttributeValues={":models": encode(list(checked))})

    def set_guardrail(self, key_id: str, guardrail: Any) -> None:
        """The key's own guardrail (None: its tenant's or the stage's again)."""
        checked = check_guardrail(guardrail)
        key = {"key_hash": {"S": self._hash_of(key_id)}}
        if checked is None:
            self._client.update_item(TableName=self._table, Key=key,
                                     UpdateExpression="REMOVE guardrail")
        else:
            self._client.update_item(TableName=self._table, Key=key,
                                     UpdateExpression="SET guardrail = :g",
                                     ExpressionAttributeValues={":g": encode(str(checked))})

    def _get(self, key_hash: str) -> KeyRecord:
        item = self._client.get_item(TableName=self._table, Key={"key_hash": {"S": key_hash}})["Item"]
        return _record(item)
