"""The caller of a route that checks its key itself: ``x-api-key`` or ``Authorization: Bearer``.

Anthropic's clients send the key two ways: the SDKs and LangChain as
``x-api-key``, Claude Code's ``ANTHROPIC_AUTH_TOKEN`` as ``Authorization:
Bearer``. API Gateway cannot authorize both on one route with a cached
authorizer: a TOKEN authorizer reads one header, and a REQUEST authorizer
with caching on answers 401, without running, when any of its identity
sources is missing (SPEC.md), which one of the two always is. Without
caching it would run (one more Lambda invocation and one GetItem) on every
request. So the Messages routes have no API Gateway authorizer: the API
function checks the key, keeping what a lookup found (accepted or refused)
for ``ttl_s``, as API Gateway keeps an authorizer's answers, so a warm
function pays one GetItem per key per TTL and a revoked key stops working
within it. Keys are held by their hash, and the cache is bounded, so that
random keys cannot grow it.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from chalicelib.errors import AuthenticationError
from chalicelib.tenancy.auth import Caller, authenticate
from chalicelib.tenancy.keys import KeyStore, Limits, hash_secret

MAX_ENTRIES = 4096


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key as ``x-api-key`` or as ``Authorization: Bearer`` (x-api-key first)."""
    key = (headers.get("x-api-key") or "").strip()
    if key:
        return key
    scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class KeyCache:
    def __init__(self, ttl_s: float, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()

    def caller(self, headers: Mapping[str, str], store: KeyStore, now: float,
               defaults: Limits) -> Caller:
        """The caller, or AuthenticationError (a lookup that fails raises
        AuthUnavailableError, never cached)."""
        key = presented_key({k.lower(): v for k, v in headers.items()})
        if key is None:
            raise AuthenticationError("No API key: send it as x-api-key: <key> or as "
                                      "Authorization: Bearer <key>.", code="missing_api_key")
        digest = hash_secret(key)
        entry = self._entries.get(digest)
        if entry is not None and now < entry[0]:
            caller = entry[1]
        else:
            caller = authenticate(f"Bearer {key}", store, now, defaults)
            self._entries[digest] = (now + self._ttl_s, caller)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        if caller is None:
            raise AuthenticationError("Incorrect API key provided.")
        return caller
