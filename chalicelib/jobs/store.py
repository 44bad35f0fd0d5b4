"""Job records in DynamoDB: created queued, claimed with a lease, finished once.

Every state change is a conditional update, so at-least-once delivery (SQS
may hand a message to two workers) cannot run a job twice at the same time,
overwrite a finished result, or finish a job whose lease another worker took.
Records expire through DynamoDB's TTL (``expires_at``).

A Lambda killed at its timeout settles nothing, and SQS hands the message to
the next worker. So before an attempt calls Bedrock it records on the job what
it reserved (``begin_attempt``); every outcome that settles (a result, a
failure, a requeue) removes that record in the same write. The next attempt
finding the record still there knows the previous one died unsettled, and
swapping in its own record tells exactly one worker what to charge for it.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.chat import (ChatRequest, Guardrail, Message, ResponseFormat, Tool, ToolCall,
                             ToolChoice)
from chalicelib.dynamo import decode_item, encode, encode_item
from chalicelib.tenancy.alerts import watch_from_json
from chalicelib.tenancy.limits import Reservation

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
FINISHED = (SUCCEEDED, FAILED)


@dataclass(frozen=True)
class Job:
    job_id: str
    tenant: str
    status: str
    request: ChatRequest
    reservation: Reservation | None
    attempts: int
    created_at: int
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    lease_id: str | None = None
    lease_until: int | None = None


def request_to_json(request: ChatRequest) -> str:
    return json.dumps(asdict(request), separators=(",", ":"))


def _message(data: dict[str, Any]) -> Message:
    calls = tuple(ToolCall(**call) for call in data.get("tool_calls", ()))
    return Message(**{**data, "tool_calls": calls})


def request_from_json(text: str) -> ChatRequest:
    """The inverse of ``request_to_json``; items written before tools existed
    lack the new fields and get their defaults."""
    data = json.loads(text)
    return ChatRequest(messages=tuple(_message(m) for m in data["messages"]), model=data["model"],
                       max_tokens=data["max_tokens"], temperature=data["temperature"],
                       top_p=data["top_p"], stop=tuple(data["stop"]),
                       tools=tuple(Tool(**t) for t in data.get("tools", ())),
                       tool_choice=ToolChoice(**data.get("tool_choice", {})),
                       parallel_tool_calls=data.get("parallel_tool_calls", True),
                       response_format=ResponseFormat(**data.get("response_format", {})),
                       tools_cache_point=data.get("tools_cache_point", False),
                       guardrail=Guardrail(**data["guardrail"]) if data.get("guardrail") else None,
                       fallbacks=tuple(data.get("fallbacks", ())))


def reservation_from_json(text: str | None) -> Reservation | None:
    if not text:
        return None
    data = json.loads(text)
    return Reservation(key_id=data["key_id"], day_pk=data["day_pk"], minute=data["minute"],
                       tokens=data["tokens"], held=data["held"], status=(),
                       stale=tuple(data.get("stale", ())), micros=data.get("micros", 0),
                       others=tuple((pk, kind, tuple(stale))
                                    for pk, kind, stale in data.get("others", ())),
                       watches=tuple(watch_from_json(w) for w in data.get("watches", ())),
                       model=data.get("model", ""))


def reservation_to_json(reservation: Reservation | None) -> str:
    if reservation is None:
        return ""
    data = asdict(reservation)
    data.pop("status")
    return json.dumps(data, separators=(",", ":"))


def _job(item: dict[str, Any]) -> Job:
    data = decode_item(item)
    return Job(job_id=data["job_id"], tenant=data["tenant"], status=data["status"],
               request=request_from_json(data["request"]),
               reservation=reservation_from_json(data.get("reservation")),
               attempts=int(data.get("attempts", 0)), created_at=int(data["created_at"]),
               result=json.loads(data["result"]) if data.get("result") else None,
               error=json.loads(data["error"]) if data.get("error") else None,
               lease_id=data.get("lease_id"), lease_until=data.get("lease_until"))


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class JobStore:
    def __init__(self, client: Any, table: str, clock: Callable[[], float], ttl_s: int) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._ttl_s = ttl_s

    def create(self, tenant: str, request: ChatRequest, reservation: Reservation | None) -> Job:
        now = int(self._clock())
        job_id = "job_" + secrets.token_hex(12)
        self._client.put_item(TableName=self._table, Item=encode_item({
            "job_id": job_id, "tenant": tenant, "status": QUEUED,
            "request": request_to_json(request), "reservation": reservation_to_json(reservation),
            "attempts": 0, "created_at": now, "updated_at": now,
            "expires_at": now + self._ttl_s}), ConditionExpression="attribute_not_exists(job_id)")
        return Job(job_id, tenant, QUEUED, request, reservation, 0, now)

    def get(self, job_id: str) -> Job | None:
        """The job, or None when there is none or its record has expired:
        DynamoDB's TTL deletes expired items only eventually (within days), and
        until then reads still return them."""
        item = self._client.get_item(TableName=self._table, Key={"job_id": {"S": job_id}},
                                     ConsistentRead=True).get("Item")
        if not item:
            return None
        expires = item.get("expires_at")
        if expires is not None and int(expires["N"]) <= self._clock():
            return None
        return _job(item)

    def claim(self, job_id: str, lease_s: int) -> Job | None:
        """Take the job to run it: queued, or running under an expired lease
        (its worker died). None if finished or leased to a live worker."""
        now = int(self._clock())
        lease_id = secrets.token_hex(8)
        try:
            response = self._client.update_item(
                TableName=self._table, Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :running, lease_id = :lease, lease_until = :until, "
                                 "updated_at = :now ADD attempts :one",
                ConditionExpression="#s = :queued OR (#s = :running AND lease_until < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":running": encode(RUNNING), ":queued": encode(QUEUED),
                                           ":lease": encode(lease_id), ":until": encode(now + lease_s),
                                           ":now": encode(now), ":one": encode(1)},
                ReturnValues="ALL_NEW")
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return _job(response["Attributes"])

    def begin_attempt(self, job: Job, tokens: int) -> int:
        """Record that ``job``'s attempt (its lease) is about to call Bedrock
        with ``tokens`` reserved. Returns the tokens of a previous attempt
        that never settled (killed in flight), 0 when there is none or the
        lease is no longer ours."""
        try:
            response = self._client.update_item(
                TableName=self._table, Key={"job_id": {"S": job.job_id}},
                # One map, keyed by the lease: it always changes, so DynamoDB
                # (and moto) return its old value.
                UpdateExpression="SET unsettled = :attempt",
                ConditionExpression="#s = :running AND lease_id = :lease",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":attempt": encode({"lease": job.lease_id or "", "tokens": tokens}),
                    ":running": encode(RUNNING), ":lease": encode(job.lease_id or "")},
                ReturnValues="UPDATED_OLD")
        except ClientError as exc:
            if _conditional_failed(exc):
                return 0
            raise
        old = decode_item(response.get("Attributes", {})).get("unsettled") or {}
        return int(old.get("tokens", 0))

    def _transition(self, job_id: str, condition: str, status: str, field: str,
                    value: dict[str, Any], values: dict[str, Any], remove: str = "") -> bool:
        """Set the status and one outcome field if ``condition`` holds; False if not."""
        try:
            self._client.update_item(
                TableName=self._table, Key={"job_id": {"S": job_id}},
                # The outcome first: moto applies a SET in order and stops at an
                # oversized value (DynamoDB applies none), so the status never
                # changes without it.
                UpdateExpression=f"SET #f = :value, #s = :status, updated_at = :now {remove}",
                ConditionExpression=condition,
                # Names through placeholders: DynamoDB reserves many words.
                ExpressionAttributeNames={"#s": "status", "#f": field},
                ExpressionAttributeValues={":status": encode(status),
                                           ":value": encode(json.dumps(value)),
                                           ":now": encode(int(self._clock())), **values})
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def _finish(self, job: Job, status: str, field: str, value: dict[str, Any]) -> bool:
        """Write the outcome if ``job``'s lease still holds (never over a result)."""
        return self._transition(job.job_id, "#s = :running AND lease_id = :lease", status, field,
                                value, {":running": encode(RUNNING),
                                        ":lease": encode(job.lease_id or "")},
                                remove="REMOVE lease_id, lease_until, unsettled")

    def succeed(self, job: Job, result: dict[str, Any]) -> bool:
        return self._finish(job, SUCCEEDED, "result", result)

    def fail(self, job: Job, error: dict[str, Any]) -> bool:
        return self._finish(job, FAILED, "error", error)

    def abandon(self, job: Job, error: dict[str, Any]) -> bool:
        """Fail a job that never reached the queue (still queued, unleased)."""
        return self._transition(job.job_id, "#s = :queued", FAILED, "error", error,
                                {":queued": encode(QUEUED)})

    def requeue(self, job: Job, error: dict[str, Any]) -> bool:
        """Back to queued after a transient failure, keeping the last error."""
        return self._finish(job, QUEUED, "error", error)
