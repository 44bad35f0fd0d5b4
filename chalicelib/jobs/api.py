"""Asynchronous chat: submit a job, read its state (translation and one
orchestration each; routes and the worker call these)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.tenancy.auth import Caller
from chalicelib.chat import ChatRequest, Completion
from chalicelib.completion import billable
from chalicelib.errors import (NotFoundError, QueueUnavailableError, RequestTooLargeError,
                               UpstreamThrottledError)
from chalicelib.jobs.store import FAILED, SUCCEEDED, Job, request_to_json, reservation_to_json
from chalicelib.tenancy.limits import Reservation, need_of

if TYPE_CHECKING:
    from chalicelib.runtime import Runtime

log = logging.getLogger(__name__)


def base_url(headers: Mapping[str, str], context: Mapping[str, Any], path: str | None) -> str:
    """The API's public base URL, as the client reached it, from the request.

    Deployed, ``requestContext.path`` is the path the client sent, stage
    included (``/prod/chat/jobs``), and the event's ``path`` is the same
    without it; the difference is the stage (or a custom domain's base path).
    Locally both are the same and the prefix is empty. Without a Host header
    (the test client) the URL stays relative."""
    host = headers.get("host") or context.get("domainName")
    full = str(context.get("path") or path or "")
    prefix = full[:-len(path)] if path and full.endswith(path) else ""
    if not host:
        return prefix
    scheme = (headers.get("x-forwarded-proto") or "http").split(",")[0].strip()
    return f"{scheme}://{host}{prefix}"


def status_url(base: str, job_id: str) -> str:
    return f"{base}/chat/jobs/{job_id}"


def _fits(request: ChatRequest, limit: int) -> bool:
    return len(request_to_json(request).encode("utf-8")) <= limit


def check_size(request: ChatRequest, limit: int) -> None:
    """A job's record holds its request and later its answer, in one DynamoDB
    item of at most 400 KB: a request that could not fit is refused now (413),
    instead of failing every retry or overflowing when the answer arrives."""
    size = len(request_to_json(request).encode("utf-8"))
    if size > limit:
        raise RequestTooLargeError(
            f"This request is {size} bytes as a job; jobs take at most {limit} "
            "(send it to /chat instead, or shorten the prompt).", param="messages")


def submit(runtime: Runtime, caller: Caller, request: ChatRequest) -> Job:
    """Reserve the caller's limits, store the job, queue it. The reservation
    travels with the job and is settled (or released) by the worker."""
    check_size(request, runtime.settings.jobs_max_request_bytes)
    return enqueue(runtime, caller, request,
                   runtime.limiter.admit(caller, lambda: need_of(request), request.model))


def enqueue(runtime: Runtime, caller: Caller, request: ChatRequest,
            reservation: Reservation) -> Job:
    """Store and queue a job that already holds ``reservation``; release it if
    the job cannot be accepted, whatever else fails on the way."""
    try:
        job = runtime.jobs.create(caller.tenant, request, reservation)
    except (ClientError, BotoCoreError) as exc:
        runtime.limiter.release(reservation)
        raise QueueUnavailableError("The job could not be stored; retry shortly.") from exc
    try:
        runtime.queue.send(job.job_id, reservation=reservation_to_json(reservation))
    except (ClientError, BotoCoreError) as exc:
        log.error("job %s not queued: %s", job.job_id, exc)
        try:
            runtime.jobs.abandon(job, QueueUnavailableError("The job could not be queued.").envelope())
        except (ClientError, BotoCoreError) as abandon_exc:
            # The record stays queued until its TTL; nothing will run it.
            log.error("job %s not marked failed: %s", job.job_id, abandon_exc)
        finally:
            runtime.limiter.release(reservation)
        raise QueueUnavailableError("The job could not be queued; retry shortly.") from exc
    return job


@dataclass(frozen=True)
class Answered:
    """What ``answer_or_defer`` did: answered now, or queued as ``job``."""

    completion: Completion | None
    reservation: Reservation
    job: Job | None = None


def answer_or_defer(runtime: Runtime, caller: Caller, request: ChatRequest,
                    defer: bool) -> Answered:
    """``/chat``: answer now; if Bedrock is overloaded and the client sent
    ``Prefer: respond-async``, queue the request as a job that keeps this
    request's reservation, so that it counts once against the key's limits."""
    reservation = runtime.limiter.admit(caller, lambda: need_of(request), request.model)
    try:
        completion = runtime.service.complete(request, caller.tenant)
    except UpstreamThrottledError as exc:
        if defer and _fits(request, runtime.settings.jobs_max_request_bytes):
            if exc.spent is not None and exc.spent[0] > 0:
                # Throttled mid-stream: Bedrock billed what it generated
                # before, and the job will generate its answer anew.
                runtime.limiter.charge(reservation, *exc.spent)
            # enqueue releases the reservation itself if the job is refused.
            return Answered(None, reservation, enqueue(runtime, caller, request, reservation))
        runtime.limiter.settle_failure(reservation, exc)
        raise
    except BaseException as exc:
        runtime.limiter.settle_failure(reservation, exc)
        raise
    runtime.limiter.settle(reservation, *billable(completion))
    return Answered(completion, reservation)


def find(runtime: Runtime, caller: Caller, job_id: str) -> Job:
    """The caller's own job; someone else's is as absent as a missing one."""
    job = runtime.jobs.get(job_id) if job_id.startswith("job_") and len(job_id) <= 64 else None
    if job is None or job.tenant != caller.tenant:
        raise NotFoundError(f"No job with id '{job_id[:64]}'.", param="job_id")
    return job


def render_job(job: Job, base: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"job_id": job.job_id, "status": job.status,
                            "status_url": status_url(base, job.job_id),
                            "created_at": job.created_at, "attempts": job.attempts}
    if job.status == SUCCEEDED:
        body["result"] = job.result
    elif job.status == FAILED:
        body.update(job.error or {})
    return body
