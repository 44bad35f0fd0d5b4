"""Cooldowns shared by every Lambda: a failing link is skipped for a while.

Each link (``model`` or ``model@region``) has one item in the usage table,
``cooldown#<link>``, with a TTL. A failure that moves a request on adds one
to the current window's count (``f<epoch // window>``); the failure that
brings this window and the one before to the threshold (3 within 30 to 60 s
by default) opens the cooldown: ``until`` set to now plus a step (30 s, then
60 s, then 300 s while the item lives: its TTL lets the steps start over ten
minutes after the last failure or cooldown), or to what ``Retry-After`` said,
whichever is longer. Opening is a
conditional write (only while no cooldown is open), so concurrent Lambdas
open one cooldown, step once, and emit one ``CooldownOpened`` metric.

Reading: every process keeps what it read for ``cache_s`` (2 s). A model with
no fallback chain never reads (nothing to route around). A request on a chain
reads the links whose cached state is older than that, in one BatchGetItem:
at most one read per process every 2 s, on the request that finds the cache
stale, and none on the others. The price in accuracy: a process may try a
link for up to 2 s after another opened its cooldown (it then fails fast and
moves on, adding to the count), and may skip one for up to 2 s after it
closed. A process that opens a cooldown itself knows at once.

A cooldown never leaves a request with nowhere to go: when every link is
cooling down, the request tries them anyway, in order (the cooldown is a
preference, not a refusal).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

TTL_AFTER_S = 600


class Cooldowns:
    def __init__(self, client: Any, table: str, clock: Callable[[], float], *,
                 threshold: int = 3, window_s: int = 30,
                 steps_s: tuple[int, ...] = (30, 60, 300), cache_s: float = 2.0,
                 opened: Callable[[str, int], None] | None = None) -> None:
        self._client, self._table, self._clock = client, table, clock
        self._threshold, self._window_s, self._steps = threshold, window_s, steps_s
        self._cache_s = cache_s
        self._opened = opened or (lambda link, seconds: None)
        self._seen: dict[str, tuple[float, float]] = {}  # link -> (read at, open until)
        self._lock = threading.Lock()

    def cooling(self, links: Iterable[str]) -> set[str]:
        """Which of ``links`` are cooling down now (stale ones read first)."""
        now = self._clock()
        links = list(links)
        with self._lock:
            stale = [k for k in links if now - self._seen.get(k, (-1e18, 0.0))[0] > self._cache_s]
        if stale:
            self._read(stale, now)
        with self._lock:
            return {k for k in links if self._seen.get(k, (0.0, 0.0))[1] > now}

    def _read(self, links: list[str], now: float) -> None:
        try:
            response = self._client.batch_get_item(RequestItems={self._table: {
                "Keys": [{"pk": {"S": _pk(k)}} for k in links],
                "ProjectionExpression": "pk, #u", "ExpressionAttributeNames": {"#u": "until"}}})
        except (ClientError, BotoCoreError) as exc:
            # Unknown is healthy: better a failed attempt than a skipped good link.
            log.warning("cooldowns unreadable: %s", exc)
            return
        found = {i["pk"]["S"]: float(i.get("until", {}).get("N", 0))
                 for i in response.get("Responses", {}).get(self._table, [])}
        with self._lock:
            for link in links:
                self._seen[link] = (now, found.get(_pk(link), 0.0))

    def failed(self, link: str, retry_after: int | None = None) -> None:
        """Count a failure of ``link``; open its cooldown at the threshold."""
        now = self._clock()
        window = int(now // self._window_s)
        try:
            # ALL_OLD: what was there before this failure, so that an item
            # past its TTL (DynamoDB deletes them lazily) counts as none.
            old = self._client.update_item(
                TableName=self._table, Key={"pk": {"S": _pk(link)}},
                UpdateExpression="ADD #w :one SET expires_at = :e",
                ExpressionAttributeNames={"#w": f"f{window}"},
                ExpressionAttributeValues={":one": {"N": "1"},
                                           ":e": {"N": str(int(now) + TTL_AFTER_S)}},
                ReturnValues="ALL_OLD").get("Attributes", {})
        except (ClientError, BotoCoreError) as exc:
            log.warning("cooldown of %s not counted: %s", link, exc)
            return
        if int(old.get("expires_at", {}).get("N", 0)) < now:
            old = {}
        # This window and the one before: a burst across a boundary counts whole.
        count = 1 + sum(int(old.get(f"f{w}", {}).get("N", 0)) for w in (window, window - 1))
        if count < self._threshold:
            return
        level = int(old.get("level", {}).get("N", 0))
        seconds = max(self._steps[min(level, len(self._steps) - 1)], retry_after or 0)
        until = now + seconds
        try:
            self._client.update_item(
                TableName=self._table, Key={"pk": {"S": _pk(link)}},
                UpdateExpression="SET #u = :until, expires_at = :e, #l = :level",
                ConditionExpression="attribute_not_exists(#u) OR #u < :now",
                ExpressionAttributeNames={"#u": "until", "#l": "level"},
                ExpressionAttributeValues={":until": {"N": str(until)}, ":now": {"N": str(now)},
                                           ":level": {"N": str(level + 1)},
                                           ":e": {"N": str(int(until) + TTL_AFTER_S)}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                log.warning("cooldown of %s not opened: %s", link, exc)
            return  # another process opened it first
        except BotoCoreError as exc:
            log.warning("cooldown of %s not opened: %s", link, exc)
            return
        with self._lock:
            self._seen[link] = (now, until)
        log.warning("cooldown opened: %s for %s s", link, seconds)
        self._opened(link, seconds)


def _pk(link: str) -> str:
    return f"cooldown#{link}"
