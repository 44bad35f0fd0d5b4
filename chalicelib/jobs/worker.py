"""The jobs worker: one SQS message -> one job run, idempotently.

A redelivered message never calls Bedrock for a finished job, never finishes a
job leased to another live worker, and settles the token budget only after
winning the write of the result, so a job is charged once. Transient failures
(throttles, timeouts, 5xx, unexpected errors) put the job back in the queue
with exponential backoff; on the queue's last allowed receive the job is
marked failed and the message is left to SQS, which moves it to the
dead-letter queue. Permanent failures (Bedrock refusing the request, an answer
that could not honour the request's tools or JSON format) fail the job at once;
the latter's tokens are billed.

DynamoDB failures get the same backoff as Bedrock's (never the queue's long
visibility timeout). A duplicate delivery of a job that another live worker
runs comes back when that worker's lease ends, and never goes to the
dead-letter queue. A message whose job record has expired releases the
reservation it carries. An answer too large for the job's item fails the job
(``result_too_large``) with its tokens charged, instead of running again.

An attempt killed before it settled (the Lambda's timeout) is charged what it
reserved when its message comes back, before the job runs again: the job
store keeps each attempt's reservation until its outcome is written.
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.observe import callstats
from chalicelib.observe.callstats import Outcome
from chalicelib.completion import billable
from chalicelib.chat import Completion
from chalicelib.errors import (ApiError, InvalidRequestError, ResultTooLargeError,
                               UnusableAnswerError)
from chalicelib.jobs.store import FINISHED, Job, reservation_from_json
from chalicelib.wire.native import render_chat

if TYPE_CHECKING:
    from chalicelib.runtime import Runtime

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 900


class RetryLater(Exception):
    """Leave the message in the queue; it comes back after ``delay_s``."""

    def __init__(self, reason: str, delay_s: int) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


def backoff_s(base_s: int, receive_count: int) -> int:
    """Exponential, capped, with jitter so that a burst does not return at once."""
    delay = min(MAX_BACKOFF_S, base_s * 2 ** max(0, receive_count - 1))
    return int(delay * random.uniform(0.75, 1.0))


def job_id_of(body: str) -> str | None:
    try:
        job_id = json.loads(body).get("job_id")
    except (ValueError, AttributeError):
        return None
    return job_id if isinstance(job_id, str) else None


def reservation_of(body: str) -> str | None:
    """The reservation the message carries (messages queued before it did
    carry none)."""
    try:
        reservation = json.loads(body).get("reservation")
    except (ValueError, AttributeError):
        return None
    return reservation if isinstance(reservation, str) else None


def _too_large(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationException" and "size" in str(error.get("Message", ""))


@dataclass
class JobRun:
    """What one delivery did, filled in as it goes, for its log line."""

    job_id: str = "malformed"
    tenant: str | None = None
    status: str = "retry"
    error_code: str | None = None


def run_job(body: str, receive_count: int, runtime: Runtime, run: JobRun | None = None) -> None:
    """Process one message; raises RetryLater to keep it queued."""
    run = run or JobRun()
    settings = runtime.settings
    job_id = job_id_of(body)
    if job_id is None:
        # A poison message: no job to mark. Let SQS move it to the DLQ.
        raise RetryLater("malformed message", 0)
    run.job_id = job_id
    try:
        _run(job_id, body, receive_count, runtime, run)
    except (ClientError, BotoCoreError) as exc:  # DynamoDB: the job's backoff
        log.error("job %s: jobs or usage table unavailable: %s", job_id, exc)
        run.error_code = "store_unavailable"
        raise RetryLater("store_unavailable",
                         backoff_s(settings.jobs_retry_base_s, receive_count)) from None


def _run(job_id: str, body: str, receive_count: int, runtime: Runtime, run: JobRun) -> None:
    settings = runtime.settings
    job = runtime.jobs.get(job_id)
    if job is None:
        run.status = "expired"
        # The record (and the reservation in it) is gone; the message's copy
        # is given back, so no reservation outlives its job.
        reservation = reservation_from_json(reservation_of(body))
        if reservation is not None:
            runtime.limiter.release(reservation)
        return
    run.tenant = job.tenant
    callstats.current().model = job.request.model
    if job.status in FINISHED:  # done already: a duplicate delivery
        run.status, run.error_code = job.status, (job.error or {}).get("error", {}).get("code")
        return
    claimed = runtime.jobs.claim(job_id, settings.jobs_lease_s)
    if claimed is None:
        # Another live worker runs it (SQS delivered the message twice).
        if receive_count >= settings.jobs_max_receives:
            run.status = "duplicate"  # its own worker finishes it: not for the DLQ
            return
        now = int(runtime.clock())
        lease_until = job.lease_until if job.lease_until is not None else now + settings.jobs_lease_s
        raise RetryLater("leased by another worker", max(1, lease_until - now + 1))
    _charge_killed(runtime, claimed)
    try:
        completion = runtime.job_service.complete(claimed.request, claimed.tenant)
    except InvalidRequestError as error:
        # Bedrock may refuse mid-stream too (a validationException event):
        # what it generated before is paid for, as on /chat.
        _finish_failed(runtime, claimed, error.envelope(), error)
        run.status, run.error_code = "failed", error.code
        return
    except UnusableAnswerError as error:
        # The model answered, twice, but not usably: a retry would be billed
        # again for the same outcome. The job fails; its tokens are paid for.
        _finish_failed(runtime, claimed, error.envelope(), error)
        run.status, run.error_code = "failed", error.code
        return
    except ApiError as error:
        run.error_code = error.code
        if error.spent is not None and error.spent[0] > 0 and claimed.reservation:
            # Cut at the deadline or broken off: Bedrock billed those tokens.
            runtime.limiter.charge(claimed.reservation, *error.spent)
        _transient(runtime, claimed, error, receive_count)
    except Exception:
        log.exception("job %s failed unexpectedly", job_id)
        error = ApiError("The job failed unexpectedly.")
        run.error_code = error.code
        _transient(runtime, claimed, error, receive_count)
    else:
        _succeed(runtime, claimed, completion, run)


def _charge_killed(runtime: Runtime, job: Job) -> None:
    """Record this attempt's reservation, and charge the previous attempt's
    if it was never settled: killed in flight, it may have had Bedrock
    generate up to all of it, and nothing else will ever bill that."""
    if job.reservation is None:
        return
    killed = runtime.jobs.begin_attempt(job, job.reservation.tokens)
    if killed > 0:
        log.warning("job %s: attempt %s before this one ended unsettled; charging its %s "
                    "reserved tokens", job.job_id, job.attempts - 1, killed)
        runtime.limiter.charge(job.reservation, killed)


def _succeed(runtime: Runtime, job: Job, completion: Completion, run: JobRun) -> None:
    """Store the answer and charge it once. Bedrock generated the tokens, so
    they are charged even when the answer is too large for the job's item."""
    run.status = "succeeded"
    try:
        won = runtime.jobs.succeed(job, render_chat(completion, job.job_id))
    except ClientError as exc:
        if not _too_large(exc):
            raise
        error = ResultTooLargeError("The answer is too large to store as a job's result; "
                                    "send this request to /chat instead.")
        won = runtime.jobs.fail(job, error.envelope())
        run.status, run.error_code = "failed", error.code
    if won and job.reservation:
        runtime.limiter.settle(job.reservation, *billable(completion))


def _finish_failed(runtime: Runtime, job: Job, envelope: dict,
                   failure: BaseException | None = None) -> None:
    """Mark the job failed and, if this delivery won that write, settle its
    reservation to what ``failure`` spent (released when it spent nothing)."""
    if runtime.jobs.fail(job, envelope) and job.reservation:
        runtime.limiter.settle_failure(job.reservation, failure)


def _transient(runtime: Runtime, job: Job, error: ApiError, receive_count: int) -> None:
    settings = runtime.settings
    if receive_count >= settings.jobs_max_receives:
        envelope = error.envelope()
        envelope["error"]["message"] = (f"Gave up after {receive_count} attempts: "
                                        f"{envelope['error']['message']}")
        _finish_failed(runtime, job, envelope)
        raise RetryLater("attempts exhausted: to the dead-letter queue", 0)
    runtime.jobs.requeue(job, error.envelope())
    raise RetryLater(error.code, backoff_s(settings.jobs_retry_base_s, receive_count))


def handle_message(body: str, receive_count: int, receipt_handle: str, runtime: Runtime) -> None:
    """The SQS event handler's whole job: run, and on RetryLater set when the
    message comes back, then re-raise so the message is not deleted. Every
    run leaves one log line and one EMF record."""
    stats = callstats.begin()
    started = time.monotonic()
    run = JobRun()
    try:
        run_job(body, receive_count, runtime, run)
    except RetryLater as later:
        run.status, run.error_code = "retry", run.error_code or str(later)
        runtime.queue.delay(receipt_handle, later.delay_s)
        raise
    finally:
        runtime.telemetry.record(Outcome(
            kind="job", request_id=run.job_id, route="worker process_job", tenant=run.tenant,
            status=run.status, error_code=run.error_code,
            latency_ms=(time.monotonic() - started) * 1000), stats)
