"""What the ``/admin`` routes do: manage keys and tenants, and read spend.

Routes translate; these functions decide. Each takes the KeyStore (and the
usage table's reader) and the acting admin key, validates its body into the
KeyStore's terms (a ``KeyAdminError`` becomes a 400 naming the problem), and
writes one audit line per change: who (the admin key's id), what, when, on
which key or tenant; never a secret or a hash. A secret appears once, in the
answer that made it (create, rotate).

Admin keys have their own scope: they are made only by ``scripts/keys.py
create-admin`` (never through this API, so a leaked admin key cannot mint
another that outlives its revocation), cannot call models, and every model
key gets 403 here.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from chalicelib.chat import Guardrail
from chalicelib.errors import InvalidRequestError, NotFoundError
from chalicelib.models.guardrails import parse_guardrail
from chalicelib.tenancy.auth import Caller
from chalicelib.tenancy.keys import (LIMIT_NAMES, USD_LIMITS, KeyAdminError, KeyRecord, KeyStore,
                                     Limits)

log = logging.getLogger("llm_endpoint.audit")

DEFAULT_GRACE_S = 86_400  # a rotated secret keeps working a day: time to roll it out
MAX_GRACE_S = 7 * 86_400
KEY_FIELDS = ("tenant", "limits", "models", "expires_at", "guardrail")
PATCH_FIELDS = ("limits", "models", "expires_at", "enabled", "guardrail")


def audit(actor: Caller, action: str, now: float, **what: Any) -> None:
    """One audit line: who, what, when (never a secret)."""
    log.info(json.dumps({"kind": "audit", "actor": actor.key_id, "action": action,
                         "at": int(now), **what}, default=str, sort_keys=True))


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidRequestError("The body must be a JSON object.")
    return body


def _only(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidRequestError(f"Unrecognized field '{unknown[0]}'; this route takes "
                                  f"{', '.join(allowed)}.", param=unknown[0])


def _limit_json(name: str, value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) or (value is not None
                                                          and name in USD_LIMITS) else value


def render_key(record: KeyRecord) -> dict[str, Any]:
    """A key as the admin sees it: never its secret or hash. ``limits`` holds
    what is set on the key (a missing name takes the stage's default)."""
    return {"object": "api_key", "key_id": record.key_id, "tenant": record.tenant,
            "enabled": record.enabled, "created_at": record.created_at,
            "expires_at": record.expires_at, "scope": record.scope,
            "limits": {k: _limit_json(k, v) for k, v in record.limits.items()},
            "models": list(record.models) if record.models is not None else None,
            "guardrail": None if record.guardrail is None else str(record.guardrail)}


def render_limits(limits: Limits) -> dict[str, Any]:
    return {name: _limit_json(name, getattr(limits, name)) for name in LIMIT_NAMES}


def _limits_change(value: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``{"rpm-like name": number | null | "default"}`` -> changes and resets."""
    if not isinstance(value, Mapping):
        raise InvalidRequestError("'limits' must be an object of limit names.", param="limits")
    changes = {k: v for k, v in value.items() if v != "default"}
    reset = tuple(k for k, v in value.items() if v == "default")
    return changes, reset


def _expires_at(value: Any, now: float) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= now:
        raise InvalidRequestError("'expires_at' must be a Unix time in the future, or null.",
                                  param="expires_at")
    return value


def _guardrail(value: Any, allowed: tuple[Guardrail, ...]) -> str | None:
    """A key's or tenant's guardrail: null, or one of the stage's GUARDRAILS
    (the only ones its IAM policy lets it apply)."""
    if value is None:
        return None
    try:
        guardrail = parse_guardrail(value)
    except ValueError as exc:
        raise InvalidRequestError(f"'guardrail' must be null or {exc}.", param="guardrail") from None
    if guardrail not in allowed:
        offered = ", ".join(map(str, allowed)) or "none"
        raise InvalidRequestError(f"The guardrail '{guardrail}' is not one of this stage's "
                                  f"(GUARDRAILS: {offered}).", param="guardrail")
    return str(guardrail)


def _admin_error(exc: KeyAdminError) -> InvalidRequestError | NotFoundError:
    text = str(exc)
    if text.startswith("no key with id"):
        return NotFoundError(f"No key with id '{text.removeprefix('no key with id ')[:40]}'.")
    return InvalidRequestError(text[0].upper() + text[1:] + ".")


def create_key(store: KeyStore, actor: Caller, body: Any, now: float,
               guardrails: tuple[Guardrail, ...] = ()) -> dict[str, Any]:
    body = _object(body)
    _only(body, KEY_FIELDS)
    guardrail = _guardrail(body.get("guardrail"), guardrails)
    tenant = body.get("tenant")
    if not isinstance(tenant, str):
        raise InvalidRequestError("'tenant' is required: a tenant name.", param="tenant")
    changes, reset = _limits_change(body.get("limits", {}))
    if reset:
        raise InvalidRequestError("A new key's limits are the stage's defaults already: leave "
                                  "out the names set to 'default'.", param="limits")
    try:
        secret, record = store.create(tenant, now=int(now), limits=changes,
                                      expires_at=_expires_at(body.get("expires_at"), now),
                                      models=body.get("models"), guardrail=guardrail)
    except KeyAdminError as exc:
        raise _admin_error(exc) from None
    audit(actor, "create_key", now, key_id=record.key_id, tenant=tenant,
          limits=record.limits, models=record.models, expires_at=record.expires_at,
          guardrail=guardrail)
    return {**render_key(record), "key": secret}


def list_keys(store: KeyStore, tenant: str | None) -> dict[str, Any]:
    records = [r for r in store.list() if tenant is None or r.tenant == tenant]
    return {"object": "list", "data": [render_key(r) for r in records]}


def get_key(store: KeyStore, key_id: str) -> dict[str, Any]:
    try:
        return render_key(store.get(key_id))
    except KeyAdminError as exc:
        raise _admin_error(exc) from None


def update_key(store: KeyStore, actor: Caller, key_id: str, body: Any,
               now: float, guardrails: tuple[Guardrail, ...] = ()) -> dict[str, Any]:
    body = _object(body)
    _only(body, PATCH_FIELDS)
    guardrail = _guardrail(body.get("guardrail"), guardrails)
    if "enabled" in body and body["enabled"] is not False:
        raise InvalidRequestError("'enabled' can only be set to false (a revoked key stays "
                                  "revoked: make a new one).", param="enabled")
    try:
        store.get(key_id)
        if "limits" in body:
            changes, reset = _limits_change(body["limits"])
            store.set_limits(key_id, changes, reset)
        if "models" in body:
            store.set_models(key_id, body["models"])
        if "guardrail" in body:
            store.set_guardrail(key_id, guardrail)
        if "expires_at" in body:
            store.set_expiry(key_id, _expires_at(body["expires_at"], now))
        if body.get("enabled") is False:
            store.revoke(key_id)
        record = store.get(key_id)
    except KeyAdminError as exc:
        raise _admin_error(exc) from None
    audit(actor, "update_key", now, key_id=key_id, changes=dict(body))
    return render_key(record)


def revoke_key(store: KeyStore, actor: Caller, key_id: str, now: float) -> dict[str, Any]:
    try:
        store.revoke(key_id)
        record = store.get(key_id)
    except KeyAdminError as exc:
        raise _admin_error(exc) from None
    audit(actor, "revoke_key", now, key_id=key_id)
    return render_key(record)


def rotate_key(store: KeyStore, actor: Caller, key_id: str, body: Any,
               now: float) -> dict[str, Any]:
    """A new secret; the old one works ``grace_seconds`` more (default a day, 0..7 days)."""
    body = _object(body if body is not None else {})
    _only(body, ("grace_seconds",))
    grace = body.get("grace_seconds", DEFAULT_GRACE_S)
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= MAX_GRACE_S:
        raise InvalidRequestError(f"'grace_seconds' must be a whole number from 0 to "
                                  f"{MAX_GRACE_S} (7 days).", param="grace_seconds")
    try:
        if not store.get(key_id).enabled:
            raise InvalidRequestError("A revoked key cannot be rotated.")
        secret, record = store.rotate(key_id, now=int(now), grace_s=grace)
    except KeyAdminError as exc:
        raise _admin_error(exc) from None
    audit(actor, "rotate_key", now, key_id=key_id, grace_seconds=grace)
    return {**render_key(record), "key": secret, "previous_key_expires_at": int(now) + grace}


def render_tenant(tenant: str, limits: Limits, guardrail: Guardrail | str | None) -> dict[str, Any]:
    return {"object": "tenant", "tenant": tenant, "limits": render_limits(limits),
            "guardrail": None if guardrail is None else str(guardrail)}


def get_tenant(store: KeyStore, tenant: str) -> dict[str, Any]:
    try:
        return render_tenant(tenant, *store.tenant_policy(tenant))
    except KeyAdminError as exc:
        raise _admin_error(exc) from None


def put_tenant(store: KeyStore, actor: Caller, tenant: str, body: Any,
               now: float, guardrails: tuple[Guardrail, ...] = ()) -> dict[str, Any]:
    """Replace a tenant's limits (a name left out, or null, is unlimited) and
    its guardrail (left out, or null: none of its own)."""
    body = _object(body)
    _only(body, ("limits", "guardrail"))
    guardrail = _guardrail(body.get("guardrail"), guardrails)
    changes, reset = _limits_change(body.get("limits", {}))
    if reset:
        raise InvalidRequestError("A tenant has no defaults: use null for unlimited.",
                                  param="limits")
    unset = tuple(n for n in LIMIT_NAMES if n not in changes)
    try:
        limits = store.set_tenant_limits(tenant, changes, unset, guardrail=guardrail)
    except KeyAdminError as exc:
        raise _admin_error(exc) from None
    audit(actor, "put_tenant", now, tenant=tenant, limits=dict(changes), guardrail=guardrail)
    return render_tenant(tenant, limits, guardrail)
