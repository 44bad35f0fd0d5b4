"""Response cache for deterministic requests (temperature 0), in DynamoDB.

The key is a SHA-256 of the tenant, the model, the formatted prompt and every
parameter that shapes the answer. The tenant is part of it so that entries never
cross tenants: otherwise ``x-cache: hit`` (and a zero cost) would tell one
tenant that another asked the very same question within the TTL.

Concurrent identical misses make one Bedrock call: the first claims the
entry with a conditional write, a "pending" lease that covers the leader's
whole deadline (``lease_s``: every attempt of its Bedrock call); the others
poll for its answer until it comes, the leader lets go (it failed), its lease
runs out (it died), or their own wait budget (``wait_s``, their own deadline)
is spent, and only then call Bedrock themselves. So a slow call (15 s) is
still made once, and no follower waits past its deadline. Followers back off
(exponentially from ``poll_s``, with jitter, capped at ``MAX_POLL_S``): a
15 s call costs each of them about 20 reads, not 300, and a burst of them does
not read in step. A leader whose answer cannot be stored (too large for an
item, DynamoDB throttling) lets go of its claim as a failed one does, so that
its followers do not wait out its lease. The cache never fails a request: if
DynamoDB cannot be reached, the answer is computed uncached.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, astuple
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.chat import ChatRequest, Completion, ToolCall, Usage, new_call_id
from chalicelib.dynamo import decode_item, encode, encode_item

log = logging.getLogger(__name__)
PENDING, DONE = "pending", "done"
MAX_POLL_S = 1.0  # a follower reads the entry at least once a second
T = TypeVar("T")


def cacheable(request: ChatRequest) -> bool:
    return request.temperature == 0


def cache_key(request: Any, tenant: str) -> str:
    """Everything in the request shapes the answer (messages, tools, tool
    choice, response format, parameters), so all of it is in the key."""
    material = [tenant, asdict(request)]
    return hashlib.sha256(json.dumps(material).encode("utf-8")).hexdigest()


def _to_json(completion: Completion) -> str:
    return json.dumps({"model": completion.model, "text": completion.text,
                       "stop_reason": completion.stop_reason,
                       "stop_sequence": completion.stop_sequence,
                       # Usage's four counts (entries written before 2026-12 hold two).
                       "usage": list(astuple(completion.usage)),
                       "tool_calls": [[c.name, c.arguments] for c in completion.tool_calls],
                       # What answered (a fallback link), so a hit says so too.
                       "served": [completion.served_model, completion.served_region]})


def _from_json(text: str) -> Completion:
    data = json.loads(text)
    # Each answer gets ids of its own: a tool call id is never handed out twice.
    calls = tuple(ToolCall(new_call_id(), name, arguments)
                  for name, arguments in data.get("tool_calls", []))
    return Completion(model=data["model"], text=data["text"], stop_reason=data["stop_reason"],
                      usage=Usage(*data["usage"]), tool_calls=calls, cached=True,
                      stop_sequence=data.get("stop_sequence"),
                      served_model=data.get("served", [None, None])[0],
                      served_region=data.get("served", [None, None])[1])


def poll_delay_s(base_s: float, attempt: int) -> float:
    """A follower's wait before its ``attempt``-th read (0 first): doubling
    from ``base_s`` up to ``MAX_POLL_S``, each between half and all of that
    (jitter, so that followers who started together do not read together)."""
    return min(MAX_POLL_S, base_s * 2 ** min(attempt, 30)) * random.uniform(0.5, 1.0)


class ResponseCache:
    def __init__(self, client: Any, table: str, clock: Callable[[], float], ttl_s: int,
                 lease_s: float = 30.0, poll_s: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._ttl_s = ttl_s
        self._lease_s = lease_s  # default leader deadline, when a caller names none
        self._poll_s = poll_s  # a follower's first wait; each next one doubles
        self._sleep = sleep

    def _get(self, key: str) -> dict[str, Any] | None:
        item = self._client.get_item(TableName=self._table, Key={"pk": {"S": key}},
                                     ConsistentRead=True).get("Item")
        if not item:
            return None
        data = decode_item(item)
        # DynamoDB's TTL deletes late: an expired entry is a miss.
        return data if data.get("expires_at", 0) > self._clock() else None

    def _claim(self, key: str, lease_s: float) -> bool:
        now = int(self._clock())
        try:
            self._client.put_item(
                TableName=self._table, Item=encode_item({
                    "pk": key, "state": PENDING, "lease_until": now + math.ceil(lease_s) + 1,
                    "expires_at": now + self._ttl_s}),
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR "
                                    "(#st = :pending AND lease_until < :now)",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={":now": encode(now), ":pending": encode(PENDING)})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _store(self, key: str, text: str) -> None:
        now = int(self._clock())
        self._client.put_item(TableName=self._table, Item=encode_item({
            "pk": key, "state": DONE, "completion": text,
            "expires_at": now + self._ttl_s}))

    def _release(self, key: str) -> None:
        self._client.delete_item(TableName=self._table, Key={"pk": {"S": key}},
                                 ConditionExpression="#st = :pending",
                                 ExpressionAttributeNames={"#st": "state"},
                                 ExpressionAttributeValues={":pending": encode(PENDING)})

    def get_or_compute(self, request: Any, tenant: str, compute: Callable[[], T],
                       encode: Callable[[T], str] = _to_json,  # type: ignore[assignment]
                       decode: Callable[[str], T] = _from_json,  # type: ignore[assignment]
                       *, lease_s: float | None = None, wait_s: float | None = None) -> T:
        """A cached answer (``cached=True``) or a computed one, stored, in
        ``tenant``'s own part of the cache. ``request`` is any dataclass (a
        ChatRequest, an embeddings request); ``encode``/``decode`` write and
        read its answer (a Completion's by default). ``lease_s``: how long
        ``compute`` may take at worst (this caller's deadline, should it
        lead); ``wait_s``: how long this caller may wait for another's answer
        (its own time left), by default as long as it would lead."""
        lease_s = self._lease_s if lease_s is None else lease_s
        budget = lease_s if wait_s is None else wait_s
        key = cache_key(request, tenant)
        try:
            entry = self._get(key)
            if entry is not None and entry["state"] == DONE:
                return decode(entry["completion"])
            won = self._claim(key, lease_s)
        except (ClientError, BotoCoreError) as exc:
            log.warning("cache unavailable, answering uncached: %s", exc)
            return compute()
        if won:
            try:
                completion = compute()
            except BaseException:
                self._quietly(self._release, key)
                raise
            try:
                self._store(key, encode(completion))
            except (ClientError, BotoCoreError) as exc:
                log.warning("cache write failed, letting go of the entry: %s", exc)
                self._quietly(self._release, key)
            return completion
        stored = self._follow(key, budget)
        return decode(stored) if stored is not None else compute()

    def _follow(self, key: str, budget_s: float) -> str | None:
        """The leader's stored answer, or None when this caller must compute its own."""
        deadline = time.monotonic() + max(0.0, budget_s)
        for attempt in range(1_000_000):  # bounded by the deadline long before this
            left = deadline - time.monotonic()
            if left <= 0:
                return None  # our own deadline: never wait past it
            self._sleep(min(poll_delay_s(self._poll_s, attempt), left))
            try:
                entry = self._get(key)
            except (ClientError, BotoCoreError):
                return None
            if entry is None:
                return None  # the leader failed and let go
            if entry["state"] == DONE:
                return str(entry["completion"])
            if entry.get("lease_until", 0) < self._clock():
                return None  # the leader died: its lease covered its whole deadline
        return None

    def _quietly(self, action: Callable[..., None], *args: Any) -> None:
        try:
            action(*args)
        except (ClientError, BotoCoreError) as exc:
            log.warning("cache write failed: %s", exc)
