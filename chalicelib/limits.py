"""Per-key limits that hold under concurrent Lambdas: DynamoDB conditional updates.

Before Bedrock is called, the request's worst case (prompt estimate plus
max_tokens) is reserved with conditional ``ADD`` updates: one item per key and
minute (requests and tokens) and one per key and UTC day (the token budget).
DynamoDB applies each conditional update atomically, so concurrent requests
can never reserve past a limit. After the call the reservation is settled to
the tokens Bedrock reported; a failure releases it. If the day's update is
refused after the minute's succeeded, the minute's is taken back.

A reservation over-estimates on purpose (three UTF-8 bytes a token, where
Llama averages about four characters), so settling only ever gives tokens
back; a key's usage can pass its budget only if Bedrock counts a prompt as
more tokens than that estimate.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.auth import Caller
from chalicelib.chat import ChatRequest, LimitStatus
from chalicelib.errors import (LimiterUnavailableError, RateLimitExceededError,
                               RequestExceedsLimitError)
from chalicelib.prompting import may_repair, render

log = logging.getLogger(__name__)
T = TypeVar("T")

MINUTE = 60
DAY = 86_400
# Window items outlive their window a little (minute) or a week (day, for
# accounting), then DynamoDB's TTL deletes them.
MINUTE_ITEM_TTL = DAY
DAY_ITEM_TTL = 8 * DAY


@dataclass(frozen=True)
class Reservation:
    key_id: str
    minute_pk: str
    day_pk: str
    tokens: int
    held_on: tuple[str, ...]  # items that hold the reserved tokens
    status: tuple[LimitStatus, ...]


def day_pk(key_id: str, day: int) -> str:
    """The usage item of a key's UTC day (days since the epoch): requests,
    tokens and cost, kept a week (usage.py reads them back)."""
    return f"{key_id}#d#{day}"


def reservation_size(request: ChatRequest) -> int:
    """The worst case: a generous prompt estimate (tool definitions and schemas
    included) plus every token asked for, twice when the answer may need a
    repair attempt (a second call with the first answer in its prompt)."""
    prompt_bytes = len(render(request).text.encode("utf-8"))
    once = math.ceil(prompt_bytes / 3) + request.max_tokens
    return once * 2 + request.max_tokens if may_repair(request) else once


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _count(item: dict[str, Any] | None, name: str) -> int:
    return int(item[name]["N"]) if item and name in item else 0


class Limiter:
    def __init__(self, client: Any, table: str, clock: Callable[[], float]) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    def _add(self, pk: str, requests: int, tokens: int, ttl: int, *,
             condition: str | None = None, values: dict[str, Any] | None = None,
             cost: Decimal | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        adds = "ADD requests :r, tokens :t"
        if cost:
            adds += ", cost_usd :c"
            # Plain digits: str(Decimal) may write "2E-7", which moto cannot read.
            values = {**(values or {}), ":c": {"N": format(cost, "f")}}
        if condition:
            kwargs = {"ConditionExpression": condition,
                      "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        response = self._client.update_item(
            TableName=self._table, Key={"pk": {"S": pk}},
            UpdateExpression=f"{adds} SET expires_at = if_not_exists(expires_at, :e)",
            ExpressionAttributeValues={":r": _n(requests), ":t": _n(tokens), ":e": _n(ttl),
                                       **(values or {})},
            ReturnValues="UPDATED_NEW", **kwargs)
        return dict(response.get("Attributes", {}))

    def admit(self, caller: Caller, tokens: int) -> Reservation:
        """Reserve ``tokens`` for one request, or raise the limit that trips."""
        now = self._clock()
        minute, day = int(now // MINUTE), int(now // DAY)
        minute_reset = max(1, math.ceil((minute + 1) * MINUTE - now))
        day_reset = max(1, math.ceil((day + 1) * DAY - now))
        key = caller.key_id
        reservation = Reservation(key, f"{key}#m#{minute}", day_pk(key, day), tokens, (), ())
        limits = caller.limits
        if limits.unlimited:
            return reservation
        for name, limit in (("tokens_per_minute", limits.tokens_per_minute),
                            ("tokens_per_day", limits.tokens_per_day)):
            if limit is not None and tokens > limit:
                raise RequestExceedsLimitError(
                    f"This request reserves {tokens} tokens (prompt estimate plus max_tokens), "
                    f"more than this key's {name.replace('_', ' ')} limit of {limit}: "
                    "lower max_tokens or shorten the prompt.", param="max_tokens")
        rpm, tpm, tpd = limits.requests_per_minute, limits.tokens_per_minute, limits.tokens_per_day
        status: list[LimitStatus] = []
        held: list[str] = []
        minute_reserved = False
        try:
            if rpm is not None or tpm is not None:
                clauses, values = [], {}
                if rpm is not None:
                    clauses.append("(attribute_not_exists(requests) OR requests < :rpm)")
                    values[":rpm"] = _n(rpm)
                if tpm is not None:
                    clauses.append("(attribute_not_exists(tokens) OR tokens <= :tpm_room)")
                    values[":tpm_room"] = _n(tpm - tokens)
                # Tokens go on the minute item only when a per-minute token
                # limit needs them there: one write less to settle otherwise.
                minute_tokens = tokens if tpm is not None else 0
                try:
                    new = self._add(reservation.minute_pk, 1, minute_tokens,
                                    int(now) + MINUTE_ITEM_TTL,
                                    condition=" AND ".join(clauses), values=values)
                except ClientError as exc:
                    if _code(exc) != "ConditionalCheckFailedException":
                        raise
                    old = exc.response.get("Item")
                    tripped = ("requests_per_minute" if rpm is not None
                               and _count(old, "requests") >= rpm else "tokens_per_minute")
                    raise _exceeded(tripped, getattr(limits, tripped), minute_reset) from None
                minute_reserved = True
                if tpm is not None:
                    held.append(reservation.minute_pk)
                if rpm is not None:
                    status.append(LimitStatus("requests", rpm, max(0, rpm - _count(new, "requests")),
                                              minute_reset))
                if tpm is not None:
                    status.append(LimitStatus("tokens", tpm, max(0, tpm - _count(new, "tokens")),
                                              minute_reset))
            condition, values = None, None
            if tpd is not None:
                condition = "attribute_not_exists(tokens) OR tokens <= :tpd_room"
                values = {":tpd_room": _n(tpd - tokens)}
            try:
                new = self._add(reservation.day_pk, 1, tokens, int(now) + DAY_ITEM_TTL,
                                condition=condition, values=values)
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
                if minute_reserved:
                    self._undo_minute(reservation.minute_pk, tpm, tokens)
                raise _exceeded("tokens_per_day", tpd, day_reset) from None
            held.append(reservation.day_pk)
            if tpd is not None:
                status.append(LimitStatus("tokens-day", tpd, max(0, tpd - _count(new, "tokens")),
                                          day_reset))
        except (ClientError, BotoCoreError) as exc:
            if minute_reserved:
                self._undo_minute(reservation.minute_pk, tpm, tokens)
            log.error("limiter unavailable: %s", exc)
            raise LimiterUnavailableError("Rate limits cannot be checked right now; retry shortly.") from exc
        return Reservation(key, reservation.minute_pk, reservation.day_pk, tokens,
                           tuple(held), tuple(status))

    def _undo_minute(self, pk: str, tpm: int | None, tokens: int) -> None:
        self._undo([pk], requests=1, tokens=tokens if tpm is not None else 0)

    def _undo(self, pks: list[str] | tuple[str, ...], *, requests: int, tokens: int) -> None:
        for pk in pks:
            try:
                self._add(pk, -requests, -tokens, 0)
            except (ClientError, BotoCoreError):
                log.error("could not release %s tokens on %s", tokens, pk)

    def settle(self, reservation: Reservation, used_tokens: int,
               cost: Decimal | None = None) -> None:
        """Replace the reservation by what was used, and add its cost to the
        key's day (never fails the request)."""
        try:
            if reservation.held_on:
                for pk in reservation.held_on:
                    self._add(pk, 0, used_tokens - reservation.tokens, 0,
                              cost=cost if pk == reservation.day_pk else None)
            else:  # unlimited key: nothing reserved, usage still counted per day
                self._add(reservation.day_pk, 1, used_tokens, int(self._clock()) + DAY_ITEM_TTL,
                          cost=cost)
        except (ClientError, BotoCoreError):
            log.error("could not settle usage of %s on %s", reservation.key_id, reservation.day_pk)

    def charge(self, reservation: Reservation, tokens: int, cost: Decimal | None = None) -> None:
        """Add tokens a failed attempt generated, leaving the reservation held
        (a job that is retried keeps its reservation for the next attempt)."""
        try:
            for pk in reservation.held_on or (reservation.day_pk,):
                self._add(pk, 0, tokens, int(self._clock()) + DAY_ITEM_TTL,
                          cost=cost if pk == reservation.day_pk else None)
        except (ClientError, BotoCoreError):
            log.error("could not charge %s tokens to %s", tokens, reservation.key_id)

    def release(self, reservation: Reservation) -> None:
        """Give back the tokens of a request that failed; it still counts as a request."""
        self._undo(reservation.held_on, requests=0, tokens=reservation.tokens)

    def settle_failure(self, reservation: Reservation, exc: BaseException) -> None:
        """Settle a failed call to what it spent (an error's ``spent``: the
        tokens Bedrock generated before the failure, or for an unusable
        answer), or release it when Bedrock generated nothing."""
        spent = getattr(exc, "spent", None)
        if spent is not None and spent[0] > 0:
            self.settle(reservation, *spent)
        else:
            self.release(reservation)

    def run(self, caller: Caller, tokens: int, call: Callable[[], T],
            used: Callable[[T], tuple[int, Decimal | None]]) -> tuple[T, Reservation]:
        """Admit, call, settle to ``used(result)`` (tokens, cost). A call that
        fails after Bedrock generated tokens (cut at its deadline, broken off,
        an unusable answer) is settled to those; any other failure releases
        the reservation."""
        reservation = self.admit(caller, tokens)
        try:
            result = call()
        except BaseException as exc:
            self.settle_failure(reservation, exc)
            raise
        self.settle(reservation, *used(result))
        return result, reservation


def _exceeded(tripped: str, limit: int, retry_after: int) -> RateLimitExceededError:
    status = LimitStatus({"requests_per_minute": "requests", "tokens_per_minute": "tokens",
                          "tokens_per_day": "tokens-day"}[tripped], limit, 0, retry_after)
    return RateLimitExceededError(
        f"This key's limit of {limit} {tripped.replace('_', ' ')} is reached; "
        f"retry after {retry_after} s.", code=f"{tripped}_exceeded",
        retry_after=retry_after, status=(status,))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
