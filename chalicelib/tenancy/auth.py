"""Who is calling: ``Authorization: Bearer <key>`` -> Caller, or None.

Every rejection looks the same from outside (malformed, unknown, revoked and
expired keys all get None, which the authorizer turns into a deny: 401
``invalid_api_key`` through the gateway responses), so a caller learns nothing
about which keys exist. A lookup that fails is no answer at all: it raises
AuthUnavailableError, still failing closed, but retryable and never cached
as a deny.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chalicelib.chat import Guardrail
from chalicelib.errors import AuthUnavailableError, PermissionDeniedError
from chalicelib.models.guardrails import parse_guardrail
from chalicelib.tenancy.keys import LIMIT_NAMES, USD_LIMITS, KeyStore, Limits, well_formed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    tenant: str
    key_id: str
    limits: Limits
    models: tuple[str, ...] | None = None  # the models the key may use; None: all the stage's
    tenant_limits: Limits = Limits()  # the tenant's own, shared by all its keys
    scope: str = "model"  # "admin": the /admin routes only
    guardrail: Guardrail | None = None  # the key's own, else its tenant's; None: the stage's


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token if well_formed(token) else None


def authenticate(header: str | None, store: KeyStore, now: float, defaults: Limits) -> Caller | None:
    token = bearer_token(header)
    if token is None:
        return None
    try:
        record = store.lookup(token)
    except Exception as exc:  # fail closed: an outage must not open the endpoint
        log.exception("key lookup failed")
        raise AuthUnavailableError("API keys cannot be checked right now; retry shortly.") from exc
    if record is None or not record.usable_at(now):
        return None
    try:
        shared, tenant_guardrail = store.tenant_policy(record.tenant)
    except Exception as exc:  # as for the key: fail closed, retryable
        log.exception("tenant lookup failed")
        raise AuthUnavailableError("API keys cannot be checked right now; retry shortly.") from exc
    return Caller(tenant=record.tenant, key_id=record.key_id,
                  limits=record.effective_limits(defaults), models=record.models,
                  tenant_limits=shared, scope=record.scope,
                  guardrail=record.guardrail or tenant_guardrail)


# API Gateway passes the authorizer's context to the route as strings.

def caller_to_context(caller: Caller) -> dict[str, str]:
    # Model ids hold no comma; "" is a key without a list (every model of the stage).
    context = {"tenant": caller.tenant, "key_id": caller.key_id, "scope": caller.scope,
               "models": ",".join(caller.models) if caller.models is not None else "",
               "guardrail": "" if caller.guardrail is None else str(caller.guardrail)}
    for name in LIMIT_NAMES:
        value = getattr(caller.limits, name)
        context[name] = "" if value is None else str(value)
        shared = getattr(caller.tenant_limits, name)
        context["tenant_" + name] = "" if shared is None else str(shared)
    return context


def caller_from_context(context: Mapping[str, Any]) -> Caller:
    def limits(prefix: str) -> Limits:
        return Limits(**{name: (Decimal if name in USD_LIMITS else int)(context[prefix + name])
                         if context.get(prefix + name) not in (None, "") else None
                         for name in LIMIT_NAMES})
    models = str(context.get("models") or "")
    return Caller(tenant=str(context["tenant"]), key_id=str(context["key_id"]),
                  limits=limits(""), models=tuple(models.split(",")) if models else None,
                  tenant_limits=limits("tenant_"), scope=str(context.get("scope") or "model"),
                  guardrail=parse_guardrail(context["guardrail"]) if context.get("guardrail")
                  else None)


def for_models(caller: Caller) -> Caller:
    """The caller of a model route: an admin key has no business there."""
    if caller.scope != "model":
        raise PermissionDeniedError("This is an admin key: it manages keys on /admin and "
                                    "cannot call models. Use a model key.")
    return caller


def for_admin(caller: Caller) -> Caller:
    """The caller of an ``/admin`` route: only an admin key (made by scripts/keys.py)."""
    if caller.scope != "admin":
        raise PermissionDeniedError("The /admin routes take an admin key (scripts/keys.py "
                                    "create-admin); this key may only call models.")
    return caller
