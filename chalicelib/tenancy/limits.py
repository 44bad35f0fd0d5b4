"""Per-key limits that hold under concurrent Lambdas: one conditional DynamoDB update.

Each key has one usage item per UTC day. It holds the day's token budget
(``tokens``, ``requests``, ``cost_usd``) and, beside it, the current minute's
counters under names that carry the minute (``r<minute>``, ``t<minute>``).
Before Bedrock is called, the request's worst case (prompt estimate plus
max_tokens) is reserved on the minute and the day together with one
conditional ``ADD``: DynamoDB applies it atomically, so concurrent requests
can never reserve past a limit, and a refusal leaves nothing to take back.
After the call one more update settles the reservation to the tokens Bedrock
reported (and drops the counters of minutes long gone); a failure releases it
with one update instead. So a limited key costs two round trips a request,
and a key without limits one (its usage is counted when it settles).

A reservation is never below what Bedrock will count (``prompt_estimate``):
a Llama prompt is counted exactly with Meta's tokenizer, any other family is
bounded at a token per UTF-8 byte of what is sent (``chalicelib.models.tokens``
says why that holds). So settling only ever gives tokens back, and no prompt,
however token-dense, spends past a key's limits. The exact count loads a 2 MB
tokenizer once per process, so it is made only for a key with limits:
``admit`` takes the size as a function it calls only then.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.tenancy.auth import Caller
from chalicelib.chat import ChatRequest, LimitStatus
from chalicelib.errors import (LimiterUnavailableError, RateLimitExceededError,
                               RequestExceedsLimitError)
from chalicelib.models import converse, tokens
from chalicelib.models.prompting import may_repair, render
from chalicelib.models.registry import get_model

log = logging.getLogger(__name__)
T = TypeVar("T")

MINUTE = 60
DAY = 86_400
# Day items are kept a week after their day (accounting), then DynamoDB's
# TTL deletes them.
DAY_ITEM_TTL = 8 * DAY


@dataclass(frozen=True)
class Reservation:
    key_id: str
    day_pk: str
    minute: int  # the epoch minute whose counters hold this request
    tokens: int
    held: bool  # tokens were reserved (a limited key) and must be settled or released
    status: tuple[LimitStatus, ...]
    stale: tuple[str, ...] = ()  # counters of past minutes, dropped when settling


def day_pk(key_id: str, day: int) -> str:
    """The usage item of a key's UTC day (days since the epoch): requests,
    tokens and cost, kept a week (usage.py reads them back)."""
    return f"{key_id}#d#{day}"


def prompt_estimate(request: ChatRequest) -> int:
    """The prompt's input tokens as Bedrock will count them, never fewer.

    Llama (InvokeModel, our template): the rendered prompt counted exactly
    with Meta's Llama 3 tokenizer, the template's special tokens one each.
    Every other family (Claude, Nova through Converse): the Converse request's
    UTF-8 bytes as JSON plus fixed framing (``tokens.converse_bound``), a bound
    for any byte-level tokenizer, which needs no tokenizer of theirs. It is
    what a reservation holds for the prompt, and what a call whose own count
    never came back is billed for it (completion.py)."""
    if get_model(request.model).api == "converse":
        return tokens.converse_bound(converse.build_request(request))
    return tokens.llama3_tokens(render(request).text)


def reservation_size(request: ChatRequest) -> int:
    """The worst case: the prompt (tool definitions and schemas included)
    plus every token asked for, twice when the answer may need a repair
    attempt (a second call with the first answer in its prompt)."""
    once = prompt_estimate(request) + request.max_tokens
    return once * 2 + request.max_tokens if may_repair(request) else once


def minute_names(minute: int) -> tuple[str, str]:
    """The attributes of one minute's request and token counters."""
    return f"r{minute}", f"t{minute}"


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _count(item: dict[str, Any] | None, name: str) -> int:
    return int(item[name]["N"]) if item and name in item else 0


def _stale(item: dict[str, Any], minute: int) -> tuple[str, ...]:
    """Counters of minutes before the last one (a request still in flight in
    the last minute may yet settle there)."""
    old = []
    for name in item:
        if name[:1] in ("r", "t") and name[1:].isdigit() and int(name[1:]) < minute - 1:
            old.append(name)
    return tuple(sorted(old))


class Limiter:
    def __init__(self, client: Any, table: str, clock: Callable[[], float]) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    def admit(self, caller: Caller, size: int | Callable[[], int]) -> Reservation:
        """Reserve ``size`` tokens for one request, or raise the limit that
        trips. ``size`` may be a function (``lambda: reservation_size(r)``):
        it is called only for a key with limits, so a key without them never
        pays for counting (nothing is reserved for it)."""
        now = self._clock()
        minute, day = int(now // MINUTE), int(now // DAY)
        key = caller.key_id
        pk = day_pk(key, day)
        limits = caller.limits
        if limits.unlimited:
            return Reservation(key, pk, minute, size if isinstance(size, int) else 0, False, ())
        tokens = size if isinstance(size, int) else size()
        for name, limit in (("tokens_per_minute", limits.tokens_per_minute),
                            ("tokens_per_day", limits.tokens_per_day)):
            if limit is not None and tokens > limit:
                raise RequestExceedsLimitError(
                    f"This request reserves {tokens} tokens (prompt estimate plus max_tokens), "
                    f"more than this key's {name.replace('_', ' ')} limit of {limit}: "
                    "lower max_tokens or shorten the prompt.", param="max_tokens")
        rpm, tpm, tpd = limits.requests_per_minute, limits.tokens_per_minute, limits.tokens_per_day
        mr, mt = minute_names(minute)
        clauses = []
        values: dict[str, Any] = {":one": _n(1), ":t": _n(tokens),
                                  ":e": _n(int(now) + DAY_ITEM_TTL)}
        if rpm is not None:
            clauses.append("(attribute_not_exists(#mr) OR #mr < :rpm)")
            values[":rpm"] = _n(rpm)
        if tpm is not None:
            clauses.append("(attribute_not_exists(#mt) OR #mt <= :tpm_room)")
            values[":tpm_room"] = _n(tpm - tokens)
        if tpd is not None:
            clauses.append("(attribute_not_exists(tokens) OR tokens <= :tpd_room)")
            values[":tpd_room"] = _n(tpd - tokens)
        try:
            new = self._client.update_item(
                TableName=self._table, Key={"pk": {"S": pk}},
                UpdateExpression="ADD requests :one, tokens :t, #mr :one, #mt :t "
                                 "SET expires_at = :e",
                ConditionExpression=" AND ".join(clauses),
                ExpressionAttributeNames={"#mr": mr, "#mt": mt},
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD")["Attributes"]
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise self._tripped(exc.response.get("Item"), caller, tokens, now) from None
            log.error("limiter unavailable: %s", exc)
            raise LimiterUnavailableError("Rate limits cannot be checked right now; retry shortly.") from exc
        except BotoCoreError as exc:
            log.error("limiter unavailable: %s", exc)
            raise LimiterUnavailableError("Rate limits cannot be checked right now; retry shortly.") from exc
        minute_reset = max(1, math.ceil((minute + 1) * MINUTE - now))
        day_reset = max(1, math.ceil((day + 1) * DAY - now))
        status: list[LimitStatus] = []
        if rpm is not None:
            status.append(LimitStatus("requests", rpm, max(0, rpm - _count(new, mr)), minute_reset))
        if tpm is not None:
            status.append(LimitStatus("tokens", tpm, max(0, tpm - _count(new, mt)), minute_reset))
        if tpd is not None:
            status.append(LimitStatus("tokens-day", tpd, max(0, tpd - _count(new, "tokens")),
                                      day_reset))
        return Reservation(key, pk, minute, tokens, True, tuple(status), _stale(new, minute))

    def _tripped(self, old: dict[str, Any] | None, caller: Caller, tokens: int,
                 now: float) -> RateLimitExceededError:
        """Which limit refused the update, from the item as it was."""
        limits = caller.limits
        minute, day = int(now // MINUTE), int(now // DAY)
        mr, mt = minute_names(minute)
        minute_reset = max(1, math.ceil((minute + 1) * MINUTE - now))
        day_reset = max(1, math.ceil((day + 1) * DAY - now))
        rpm, tpm, tpd = limits.requests_per_minute, limits.tokens_per_minute, limits.tokens_per_day
        if rpm is not None and _count(old, mr) >= rpm:
            return _exceeded("requests_per_minute", rpm, minute_reset)
        if tpm is not None and _count(old, mt) > tpm - tokens:
            return _exceeded("tokens_per_minute", tpm, minute_reset)
        return _exceeded("tokens_per_day", tpd or 0, day_reset)

    def _update(self, reservation: Reservation, *, requests: int, tokens: int,
                cost: Decimal | None = None, remove: tuple[str, ...] = ()) -> None:
        adds = ["tokens :t"]
        values: dict[str, Any] = {":t": _n(tokens)}
        names: dict[str, str] = {}
        if requests:
            adds.append("requests :r")
            values[":r"] = _n(requests)
        if reservation.held:
            adds.append("#mt :t")
            names["#mt"] = minute_names(reservation.minute)[1]
        if cost:
            adds.append("cost_usd :c")
            # Plain digits: str(Decimal) may write "2E-7", which moto cannot read.
            values[":c"] = {"N": format(cost, "f")}
        expression = "ADD " + ", ".join(adds)
        if not reservation.held:  # the key's first write of the day may be this one
            # A week after the latest write (within its day): the day's item
            # outlives its day by a week, as it must for accounting.
            expression += " SET expires_at = :e"
            values[":e"] = _n(int(self._clock()) + DAY_ITEM_TTL)
        if remove:
            names.update({f"#x{i}": name for i, name in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#x{i}" for i in range(len(remove)))
        kwargs: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
        self._client.update_item(TableName=self._table, Key={"pk": {"S": reservation.day_pk}},
                                 UpdateExpression=expression, ExpressionAttributeValues=values,
                                 **kwargs)

    def settle(self, reservation: Reservation, used_tokens: int,
               cost: Decimal | None = None) -> None:
        """Replace the reservation by what was used, and add its cost to the
        key's day, in one update (never fails the request)."""
        try:
            if reservation.held:
                self._update(reservation, requests=0, tokens=used_tokens - reservation.tokens,
                             cost=cost, remove=reservation.stale)
            else:  # unlimited key: nothing reserved, usage still counted per day
                self._update(reservation, requests=1, tokens=used_tokens, cost=cost)
        except (ClientError, BotoCoreError):
            log.error("could not settle usage of %s on %s", reservation.key_id, reservation.day_pk)

    def charge(self, reservation: Reservation, tokens: int, cost: Decimal | None = None) -> None:
        """Add tokens a failed attempt generated, leaving the reservation held
        (a job that is retried keeps its reservation for the next attempt)."""
        try:
            self._update(reservation, requests=0, tokens=tokens, cost=cost)
        except (ClientError, BotoCoreError):
            log.error("could not charge %s tokens to %s", tokens, reservation.key_id)

    def release(self, reservation: Reservation) -> None:
        """Give back the tokens of a request that failed; it still counts as a request."""
        if not reservation.held:
            return
        try:
            self._update(reservation, requests=0, tokens=-reservation.tokens)
        except (ClientError, BotoCoreError):
            log.error("could not release %s tokens on %s", reservation.tokens, reservation.day_pk)

    def settle_failure(self, reservation: Reservation, exc: BaseException | None) -> None:
        """Settle a failed call to what it spent (an error's ``spent``: the
        tokens Bedrock generated before the failure, or for an unusable
        answer), or release it when Bedrock generated nothing."""
        spent = getattr(exc, "spent", None)
        if spent is not None and spent[0] > 0:
            self.settle(reservation, *spent)
        else:
            self.release(reservation)

    def run(self, caller: Caller, tokens: int | Callable[[], int], call: Callable[[], T],
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
