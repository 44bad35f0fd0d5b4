"""``background: true``: a response answered by the jobs path, read back later.

Submitting reserves the key's limits and queues the ChatRequest as a job
(``jobs.api.submit``: the worker runs the one path, settles the reservation
and keeps the answer in the job's record). The stored response says
``queued`` and names its job; reading it follows the job (``in_progress``
while a worker runs it) and, once the job is done, writes the answer into the
stored response for good. ``cancel`` stops a job that no worker took yet,
releasing its reservation; a job already running cannot be stopped
mid-generation: its response is ``cancelled`` at once and its answer
discarded, and the worker still settles what Bedrock generated.
"""
from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chalicelib.chat import Completion, ToolCall, Usage
from chalicelib.errors import InvalidRequestError
from chalicelib.jobs.api import submit as submit_job
from chalicelib.jobs.store import FAILED, QUEUED, RUNNING, SUCCEEDED
from chalicelib.responses.records import find, stored
from chalicelib.responses.store import IN_FLIGHT, StoredResponse
from chalicelib.tenancy.auth import Caller
from chalicelib.wire.response_object import answered, error_field, response_object

if TYPE_CHECKING:
    from chalicelib.responses.api import Prepared
    from chalicelib.runtime import Runtime

CANCELLED = "cancelled"


def submit(runtime: Runtime, caller: Caller, prepared: Prepared) -> dict[str, Any]:
    job = submit_job(runtime, caller, prepared.request)
    response = response_object(prepared.call, prepared.response_id, prepared.created_at, "queued")
    record = StoredResponse(prepared.response_id, caller.tenant, "queued", response,
                            list(prepared.input), prepared.chain, job.job_id,
                            {"custom_tools": sorted(prepared.call.custom_tools)})
    stored(lambda: runtime.responses.save(record))
    return response


def completion_of(result: dict[str, Any]) -> Completion:
    """The job's answer (the native ``/chat`` shape it is kept in) as a Completion."""
    usage = result["usage"]
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"] if isinstance(c["arguments"], str)
                           else json.dumps(c["arguments"], ensure_ascii=False))
                  for c in result.get("tool_calls", ()))
    cost = usage.get("cost_usd")
    return Completion(result["model"], result["text"], result["stop_reason"],
                      Usage(usage["input_tokens"], usage["output_tokens"]), calls,
                      cost_usd=None if cost is None else Decimal(str(cost)))


def _settled(runtime: Runtime, record: StoredResponse, status: str,
             response: dict[str, Any]) -> StoredResponse:
    done = dataclasses.replace(record, status=status, response=response)
    stored(lambda: runtime.responses.save(done))
    return done


def refresh(runtime: Runtime, record: StoredResponse) -> StoredResponse:
    """The record with its job's progress; a finished job's answer is kept."""
    if record.status not in IN_FLIGHT or record.job_id is None:
        return record
    job = stored(lambda: runtime.jobs.get(str(record.job_id)))
    if job is None:  # the job's record expired before anyone read it
        return _settled(runtime, record, FAILED, {**record.response, "status": FAILED, "error": {
            "code": "expired", "message": "The background job expired before it finished."}})
    if job.status == SUCCEEDED and job.result is not None:
        custom = frozenset(record.extra.get("custom_tools", ()))
        response = answered(record.response, completion_of(job.result), custom)
        return _settled(runtime, record, response["status"], response)
    if job.status == FAILED:
        return _settled(runtime, record, FAILED, {**record.response, "status": FAILED,
                                                  "error": error_field(job.error or {})})
    status = "in_progress" if job.status == RUNNING else QUEUED
    return dataclasses.replace(record, status=status,
                               response={**record.response, "status": status})


def retrieve(runtime: Runtime, caller: Caller, response_id: str) -> dict[str, Any]:
    return refresh(runtime, find(runtime, caller, response_id)).response


def cancel(runtime: Runtime, caller: Caller, response_id: str) -> dict[str, Any]:
    record = refresh(runtime, find(runtime, caller, response_id))
    if record.job_id is None:
        raise InvalidRequestError("Only a background response can be cancelled.",
                                  param="response_id")
    if record.status not in IN_FLIGHT:
        return record.response  # done already (or cancelled): as it is
    job = stored(lambda: runtime.jobs.get(str(record.job_id)))
    if job is not None and job.status == QUEUED:
        won = stored(lambda: runtime.jobs.abandon(job, {"error": {
            "message": "Cancelled.", "type": "invalid_request_error", "code": CANCELLED,
            "param": None}}))
        if won and job.reservation is not None:
            runtime.limiter.release(job.reservation)
    return _settled(runtime, record, CANCELLED,
                    {**record.response, "status": CANCELLED}).response
