"""Asynchronous chat: submit a job, read its state (translation and one
orchestration each; routes and the worker call these)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.auth import Caller
from chalicelib.chat import ChatRequest
from chalicelib.errors import NotFoundError, QueueUnavailableError
from chalicelib.jobs import FAILED, SUCCEEDED, Job
from chalicelib.limits import reservation_size

if TYPE_CHECKING:
    from chalicelib.runtime import Runtime

log = logging.getLogger(__name__)


def status_url(job_id: str) -> str:
    # Relative to the API's base URL (which, once deployed, ends in the stage: /api).
    return f"/chat/jobs/{job_id}"


def submit(runtime: Runtime, caller: Caller, request: ChatRequest) -> Job:
    """Reserve the caller's limits, store the job, queue it. The reservation
    travels with the job and is settled (or released) by the worker."""
    reservation = runtime.limiter.admit(caller, reservation_size(request))
    try:
        job = runtime.jobs.create(caller.tenant, request, reservation)
    except (ClientError, BotoCoreError) as exc:
        runtime.limiter.release(reservation)
        raise QueueUnavailableError("The job could not be stored; retry shortly.") from exc
    try:
        runtime.queue.send(job.job_id)
    except (ClientError, BotoCoreError) as exc:
        log.error("job %s not queued: %s", job.job_id, exc)
        runtime.jobs.abandon(job, QueueUnavailableError("The job could not be queued.").envelope())
        runtime.limiter.release(reservation)
        raise QueueUnavailableError("The job could not be queued; retry shortly.") from exc
    return job


def find(runtime: Runtime, caller: Caller, job_id: str) -> Job:
    """The caller's own job; someone else's is as absent as a missing one."""
    job = runtime.jobs.get(job_id) if job_id.startswith("job_") and len(job_id) <= 64 else None
    if job is None or job.tenant != caller.tenant:
        raise NotFoundError(f"No job with id '{job_id[:64]}'.", param="job_id")
    return job


def render_job(job: Job) -> dict[str, Any]:
    body: dict[str, Any] = {"job_id": job.job_id, "status": job.status,
                            "status_url": status_url(job.job_id), "created_at": job.created_at,
                            "attempts": job.attempts}
    if job.status == SUCCEEDED:
        body["result"] = job.result
    elif job.status == FAILED:
        body.update(job.error or {})
    return body
