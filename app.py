"""Routes of the LLM endpoint: they parse, call one chalicelib function, return.

This is the only module that knows HTTP status codes: domain errors from
``chalicelib.errors`` become statuses here, in the OpenAI error envelope
``{"error": {"message", "type", "code", "param"}}``. Every answer carries an
``x-request-id`` header. Every route but ``/health`` and the pages
(``/``, ``/admin`` and ``/static/{name}``, which carry no data) sits behind the built-in
authorizer ``api_key_auth``. Nothing here calls AWS at import: clients are
built on first use by the Runtime (tests swap it with ``set_runtime``).
"""
from __future__ import annotations

import base64
import functools
import gc
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from chalice import AuthResponse, Chalice, Response
from chalice.app import AuthRequest, Request, SQSEvent

from chalicelib import counting, deadline, errors
from chalicelib.observe import callstats
from chalicelib.observe.callstats import Outcome
from chalicelib.tenancy.auth import (Caller, authenticate, caller_from_context, caller_to_context,
                                     for_admin, for_models)
from chalicelib.chat import ChatRequest, LimitStatus
from chalicelib.jobs.store import Job
from chalicelib.jobs.api import (answer_or_defer, base_url, find, render_job, status_url,
                                 submit)
from chalicelib.admin import api as admin_api
from chalicelib.admin import usage as admin_spend
from chalicelib.tenancy.access import settings_for
from chalicelib.tenancy.header_auth import KeyCache
from chalicelib.tenancy.limits import Need, need_of
from chalicelib.cache import cacheable
from chalicelib.completion import billable
from chalicelib.web.playground import asset, slash_redirect
from chalicelib.tenancy.usage import render_usage
from chalicelib.models import embeddings
from chalicelib.responses import api as responses_api, background as background_responses
from chalicelib.wire.completions import parse_completions_request, render_text_completion
from chalicelib.wire.openai import (parse_openai_request, render_completion, render_model,
                                    render_models)
from chalicelib.runtime import Runtime
from chalicelib.streaming import (messages as messages_stream, native as native_stream,
                                  openai as openai_stream)
from chalicelib.streaming.live import LiveStream
from chalicelib.streaming.response import StreamedResponse, from_proxy, single
from chalicelib.streaming.sse import HEADERS as SSE_HEADERS
from chalicelib.jobs.worker import handle_message
from chalicelib.wire import messages as messages_wire
from chalicelib.wire.native import parse_chat_request, render_chat
from chalicelib.wire.validation import decode_json_object, model_field

app = Chalice(app_name="llm-endpoint")
log = logging.getLogger("llm-endpoint")
log.setLevel(logging.INFO)

STATUS: dict[type[errors.ApiError], int] = {
    errors.InvalidRequestError: 400,
    errors.AuthenticationError: 401,
    errors.PermissionDeniedError: 403,
    errors.RequestTooLargeError: 413,
    errors.UnsupportedMediaTypeError: 415,
    errors.ModelNotFoundError: 404,
    errors.NotFoundError: 404,
    errors.MethodNotAllowedError: 405,
    errors.UpstreamThrottledError: 429,
    errors.UpstreamTimeoutError: 504,
    errors.UpstreamUnavailableError: 503,
    errors.UpstreamError: 502,
    errors.UpstreamMisconfiguredError: 502,
    errors.RateLimitExceededError: 429,
    # The request was fine but the model's answer could not honour it, even
    # after a repair; 422 because retrying the same request rarely helps (the
    # SDK does not retry 4xx) and the tokens were billed.
    errors.UnusableAnswerError: 422,
    errors.LimiterUnavailableError: 503,
    errors.QueueUnavailableError: 503,
    errors.StoreUnavailableError: 503,
    errors.ApiError: 500,
}
# Anthropic's statuses for the Messages routes (its types: wire/messages.py):
# 529 overloaded_error for whatever says "retry shortly", 500 api_error for a
# failure of ours or Bedrock's, and no 415 (Anthropic answers a body that is
# not JSON with a 400).
ANTHROPIC_STATUS: dict[type[errors.ApiError], int] = {
    **STATUS,
    errors.UnsupportedMediaTypeError: 400,
    errors.UpstreamUnavailableError: 529,
    errors.LimiterUnavailableError: 529,
    errors.QueueUnavailableError: 529,
    errors.AuthUnavailableError: 529,
    errors.UpstreamError: 500,
    errors.UpstreamMisconfiguredError: 500,
}
# API Gateway caches an authorizer's answer per key for this long, so a
# revoked key stops working within it (chalice local never caches).
AUTH_CACHE_TTL_S = 30
# Read at import on purpose: `chalice package` and `chalice deploy` load this
# file with the stage's environment, and these become the SQS event source's
# settings. No AWS call happens here.
JOBS_QUEUE = os.environ.get("JOBS_QUEUE", "llm-endpoint-dev-jobs")
JOBS_MAX_CONCURRENCY = int(os.environ.get("JOBS_MAX_CONCURRENCY", "10"))
# process_job's lambda_timeout (.chalice/config.json): a job's deadline when
# no Lambda context tells the time left.
WORKER_TIMEOUT_S = 300.0
# Chalice answers some requests itself (wrong method, wrong content type,
# unhandled exceptions) with {"Code", "Message"}; these become our envelope.
CHALICE_ERRORS: dict[int, type[errors.ApiError]] = {
    400: errors.InvalidRequestError,
    405: errors.MethodNotAllowedError,
    415: errors.UnsupportedMediaTypeError,
}

_runtime: Runtime | None = None
_key_cache: KeyCache | None = None


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Replace (or, with None, forget) the lazily built dependencies."""
    global _runtime, _key_cache
    _runtime = runtime
    _key_cache = None


def status_for(error: errors.ApiError,
               table: dict[type[errors.ApiError], int] = STATUS) -> int:
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]
    return 500


def is_messages_route(path: str) -> bool:
    """The routes that speak Anthropic's Messages API (and its error envelope)."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def limit_headers(status: tuple[LimitStatus, ...]) -> dict[str, str]:
    """OpenAI's x-ratelimit-* names; the daily budget adds a ``-day`` family,
    and dollar budgets (held in micro-dollars) ``-usd-day`` / ``-usd-month``
    in dollars with six decimals."""
    headers = {}
    for item in status:
        shown = (lambda n: f"{Decimal(n) / 1_000_000:.6f}") if "usd" in item.name else str
        headers[f"x-ratelimit-limit-{item.name}"] = shown(item.limit)
        headers[f"x-ratelimit-remaining-{item.name}"] = shown(item.remaining)
        headers[f"x-ratelimit-reset-{item.name}"] = f"{item.reset_seconds}s"
    return headers


def error_response(error: errors.ApiError, anthropic: bool = False,
                   request_id: str | None = None) -> Response:
    """The error in OpenAI's envelope, or (``anthropic``) in Anthropic's,
    which names the request (``request_id``, by default Chalice's current one)."""
    if anthropic:
        body = messages_wire.error_envelope(
            error, current_request_id() if request_id is None else request_id)
        status = status_for(error, ANTHROPIC_STATUS)
    else:
        body, status = error.envelope(), status_for(error)
    headers = {"Content-Type": "application/json"}
    if isinstance(error, (errors.UpstreamThrottledError, errors.RateLimitExceededError)):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, errors.RateLimitExceededError):
        headers.update(limit_headers(error.status))
    return Response(body=body, status_code=status, headers=headers)


def _internal_error(request_id: str) -> errors.ApiError:
    return errors.ApiError(f"Internal error. Quote request id {request_id} when reporting it.")


def current_request_id() -> str:
    request = app.current_request
    return str(request.context.get("requestId", "")) if request is not None else ""


def api_view(view: Callable[..., Any], anthropic: bool = False) -> Callable[..., Any]:
    """Turn domain errors into the envelope, and anything else into a bare 500."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except errors.ApiError as error:
            return error_response(error, anthropic)
        except Exception:
            request_id = current_request_id()
            log.exception("unhandled error, request id %s", request_id)
            return error_response(_internal_error(request_id), anthropic)
    return wrapper


def record(event: Request, response: Response, stats: callstats.CallStats, started: float) -> None:
    """One log line and EMF record for this request; never fails it."""
    try:
        body = response.body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and "code" not in error:  # Anthropic's envelope
            error = {"code": error.get("type")}
        outcome = Outcome(
            kind="request", request_id=str(event.context["requestId"]),
            route=f"{event.method} {event.context.get('resourcePath', event.path)}",
            tenant=(event.context.get("authorizer") or {}).get("tenant"),
            status=response.status_code,
            error_code=error.get("code") if isinstance(error, dict) else None,
            latency_ms=(time.monotonic() - started) * 1000)
        get_runtime().telemetry.record(outcome, stats)
    except Exception:
        log.exception("telemetry failed")


@app.middleware("http")
def request_id_and_envelope(event: Request, get_response: Callable[[Request], Response]) -> Response:
    # API Gateway's request id ties our answer to its logs; chalice local has none.
    request_id = str(event.context.get("requestId") or uuid.uuid4())
    event.context["requestId"] = request_id
    started = time.monotonic()
    stats = callstats.begin()
    deadline.start(deadline.for_api(app.lambda_context))
    response = get_response(event)
    body = response.body
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        kind = CHALICE_ERRORS.get(response.status_code)
        error = kind(str(body["Message"])) if kind else _internal_error(request_id)
        allow = response.headers.get("Allow")
        response = error_response(error, is_messages_route(event.path))
        if allow:
            response.headers["Allow"] = allow
    response.headers["x-request-id"] = request_id
    if response.status_code < 400:
        response.headers.update(served_headers(stats))
    if is_messages_route(event.path):
        response.headers["request-id"] = request_id  # where Anthropic's SDKs read it
    record(event, response, stats, started)
    return response


def served_headers(stats: callstats.CallStats) -> dict[str, str]:
    """What answered: the model (a fallback link's, or the one asked for)
    and the Bedrock region it was called in; none when no model answered."""
    if not stats.served_model:
        return {}
    return {"x-served-model": stats.served_model, "x-served-region": stats.served_region or ""}


@app.authorizer(ttl_seconds=AUTH_CACHE_TTL_S)
def api_key_auth(auth_request: AuthRequest) -> AuthResponse:
    """``Authorization: Bearer <key>`` -> the caller's tenant and limits.

    A rejection is ``AuthResponse(routes=[])``: API Gateway's ACCESS_DENIED,
    which the gateway responses (infra/gateway-responses.yaml) answer 401
    ``invalid_api_key``. When the keys table cannot be read, authenticate
    raises: API Gateway then answers AUTHORIZER_CONFIGURATION_ERROR (mapped to
    503 with Retry-After) and, unlike a deny, caches nothing. A missing header
    is UNAUTHORIZED (401) before this runs. The local stack and the tests
    answer the same from the same file (devstack/gateway.py).
    """
    runtime = get_runtime()
    caller = authenticate(auth_request.token, runtime.keys, runtime.clock(),
                          runtime.settings.default_limits)
    if caller is None:
        return AuthResponse(routes=[], principal_id="anonymous")
    # "*": API Gateway caches this answer for every route the key calls.
    return AuthResponse(routes=["*"], principal_id=caller.tenant,
                        context=caller_to_context(caller))


def current_caller() -> Caller:
    """The caller of a model route (an admin key is refused: 403)."""
    return for_models(caller_from_context(app.current_request.context["authorizer"]))


def json_body() -> dict[str, Any]:
    request = app.current_request
    return decode_json_object(request.raw_body, get_runtime().settings.max_body_bytes)


NO_STORE = {"Cache-Control": "no-store"}


def json_response(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(body=body, status_code=200,
                    headers={"Content-Type": "application/json", **(headers or {})})


@app.route("/health", methods=["GET"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.route("/", methods=["GET"])
@api_view
def playground() -> Response:
    """The playground page; it needs no key (the user pastes one into it)."""
    location = slash_redirect(str(app.current_request.context.get("path", "/")))
    if location is not None:
        return Response(body="", status_code=301, headers={"Location": location})
    body, headers = asset("index.html")
    return Response(body=body, status_code=200, headers=headers)


@app.route("/static/{name}", methods=["GET"])
@api_view
def static_asset(name: str) -> Response:
    body, headers = asset(name)
    return Response(body=body, status_code=200, headers=headers)


@app.route("/admin", methods=["GET"])
@api_view
def admin_page() -> Response:
    """The admin page; like the playground it needs no key (an admin key is pasted into it)."""
    if str(app.current_request.context.get("path", "")).endswith("/"):
        # At /admin/ the page's relative asset URLs would resolve under /admin/static/.
        return Response(body="", status_code=301, headers={"Location": "../admin"})
    body, headers = asset("admin.html")
    return Response(body=body, status_code=200, headers=headers)


@app.route("/usage", methods=["GET"], authorizer=api_key_auth)
@api_view
def usage() -> Response:
    """The caller's own key: its limits, today and the last 7 UTC days."""
    caller = current_caller()
    shared = None if caller.tenant_limits.unlimited else caller.tenant
    days, month, tenant_spent = get_runtime().usage.week_and_month(caller.key_id, shared)
    return json_response(render_usage(caller, days, month, tenant_spent),
                         {"Cache-Control": "no-store"})


def prefers_async() -> bool:
    """RFC 7240 ``Prefer: respond-async`` (among other preferences)."""
    prefer = app.current_request.headers.get("prefer", "")
    return any(p.split(";")[0].split("=")[0].strip().lower() == "respond-async"
               for p in prefer.split(","))


def cache_header(request: ChatRequest, completion: Any) -> dict[str, str]:
    if not cacheable(request) or get_runtime().cache is None:
        return {}
    return {"x-cache": "hit" if completion.cached else "miss"}


def public_base() -> str:
    """The API's base URL as the client reached it (stage prefix included)."""
    request = app.current_request
    return base_url(request.headers, request.context, request.to_original_event().get("path"))


def job_accepted(job: Job, headers: dict[str, str] | None = None) -> Response:
    base = public_base()
    return Response(body=render_job(job, base), status_code=202, headers={
        "Content-Type": "application/json", "Location": status_url(base, job.job_id),
        **(headers or {})})


@app.route("/chat", methods=["POST"], authorizer=api_key_auth)
@api_view
def chat() -> Response:
    runtime = get_runtime()
    payload, stream = native_stream.split_stream_flag(json_body())
    caller = current_caller()
    request = parse_chat_request(payload, settings_for(runtime.settings, caller))
    if stream:
        live = open_stream(request, caller)
        return buffered(live, native_stream.render_events(live.events(), current_request_id(),
                                                          request.model))
    # Overloaded, and the client accepts an answer later: a job, counted once.
    answered = answer_or_defer(runtime, caller, request, prefers_async())
    if answered.job is not None:
        return job_accepted(answered.job, {"Preference-Applied": "respond-async"})
    completion = answered.completion
    return json_response(render_chat(completion, current_request_id()),
                         {**limit_headers(answered.reservation.status),
                          **cache_header(request, completion)})


def open_stream(request: ChatRequest, caller: Caller) -> LiveStream:
    """Reserve, call Bedrock, wait for its first event (errors until then
    are HTTP errors); the reservation is settled when the stream ends."""
    runtime = get_runtime()
    return LiveStream.open(runtime.limiter, caller, lambda: need_of(request),
                           lambda: runtime.service.stream(request), request.model)


def buffered(live: LiveStream, body: Iterator[str], anthropic: bool = False) -> Response:
    """A stream served by Chalice itself (the test client, plain ``chalice
    local``; once deployed, only while the deploy wires the streaming
    function): Chalice cannot stream (aws/chalice#2078), so the events are
    sent at once, and a failure inside the stream is still its HTTP error."""
    text = "".join(body)
    if live.error is not None:
        return error_response(live.error, anthropic)
    return Response(body=text, status_code=200,
                    headers={**SSE_HEADERS, **limit_headers(live.reservation.status)})


@app.route("/chat/jobs", methods=["POST"], authorizer=api_key_auth)
@api_view
def create_job() -> Response:
    caller = current_caller()
    request = parse_chat_request(json_body(), settings_for(get_runtime().settings, caller))
    return job_accepted(submit(get_runtime(), caller, request))


@app.route("/chat/jobs/{job_id}", methods=["GET"], authorizer=api_key_auth)
@api_view
def get_job(job_id: str) -> Response:
    return json_response(render_job(find(get_runtime(), current_caller(), job_id), public_base()))


@app.on_sqs_message(queue=JOBS_QUEUE, batch_size=1, maximum_concurrency=JOBS_MAX_CONCURRENCY)
def process_job(event: SQSEvent) -> None:
    """One message a batch, so each job succeeds or fails on its own (Chalice
    has no partial batch responses). A raised RetryLater leaves the message
    queued until its visibility timeout, which the worker has set."""
    runtime = get_runtime()
    deadline.start(deadline.for_worker(event.context, WORKER_TIMEOUT_S))
    for record in event:
        attributes = record.to_dict().get("attributes", {})
        handle_message(record.body, int(attributes.get("ApproximateReceiveCount", "1")),
                       record.receipt_handle, runtime)


# OpenAI's two generation routes differ only in these: the request parser,
# the id prefix, and the renderers of one answer and of a stream.
OPENAI_ROUTES: dict[str, tuple[Callable[..., Any], str, Callable[..., Any],
                               Callable[..., Iterator[str]]]] = {
    "/v1/chat/completions": (parse_openai_request, "chatcmpl", render_completion,
                             openai_stream.render_chunks),
    "/v1/completions": (parse_completions_request, "cmpl", render_text_completion,
                        openai_stream.render_text_chunks),
}


def openai_answer(route: str) -> Response:
    """Parse, then a stream or one answer under the key's limits."""
    parse, id_prefix, render, render_chunks = OPENAI_ROUTES[route]
    runtime = get_runtime()
    caller = current_caller()
    request, options = parse(json_body(), settings_for(runtime.settings, caller))
    completion_id = f"{id_prefix}-{current_request_id()}"
    created = int(runtime.clock())
    if options.stream:
        live = open_stream(request, caller)
        return buffered(live, render_chunks(live.events(), completion_id, created, request.model,
                                            options.include_usage))
    completion, reservation = runtime.limiter.run(
        caller, lambda: need_of(request),
        lambda: runtime.service.complete(request, caller.tenant), billable, request.model)
    return json_response(render(completion, completion_id, created),
                         {**limit_headers(reservation.status), **cache_header(request, completion)})


@app.route("/v1/chat/completions", methods=["POST"], authorizer=api_key_auth)
@api_view
def chat_completions() -> Response:
    return openai_answer("/v1/chat/completions")


@app.route("/v1/completions", methods=["POST"], authorizer=api_key_auth)
@api_view
def text_completions() -> Response:
    return openai_answer("/v1/completions")


# --- Anthropic's Messages API: the same path (limits, cache, deadline, billing,
# telemetry) in Anthropic's shapes. These routes take the key as x-api-key or
# as Authorization: Bearer, so API Gateway runs no authorizer on them and the
# function checks the key itself (tenancy/header_auth.py says why).


def key_caller(headers: Mapping[str, str]) -> Caller:
    """The caller of the key in ``headers`` (x-api-key or Bearer), or AuthenticationError."""
    global _key_cache
    runtime = get_runtime()
    if _key_cache is None:
        _key_cache = KeyCache(AUTH_CACHE_TTL_S)
    return for_models(_key_cache.caller(headers, runtime.keys, runtime.clock(),
                                        runtime.settings.default_limits))


def messages_caller() -> Caller:
    """The key's caller, recorded where the authorizer's would be (telemetry)."""
    request = app.current_request
    caller = key_caller(request.headers)
    request.context["authorizer"] = caller_to_context(caller)
    return caller


def message_id(request_id: str) -> str:
    return "msg_" + request_id.replace("-", "")


@app.route("/v1/messages", methods=["POST"])
@functools.partial(api_view, anthropic=True)
def create_message() -> Response:
    caller = messages_caller()
    runtime = get_runtime()
    request, options = messages_wire.parse_messages_request(
        json_body(), settings_for(runtime.settings, caller))
    msg_id = message_id(current_request_id())
    if options.stream:
        live = open_stream(request, caller)
        return buffered(live, messages_stream.render_events(
            live.events(), msg_id, request.model, current_request_id()), anthropic=True)
    completion, reservation = runtime.limiter.run(
        caller, need_of(request),
        lambda: runtime.service.complete(request, caller.tenant), billable, request.model)
    return json_response(messages_wire.render_message(completion, msg_id),
                         {**limit_headers(reservation.status), **cache_header(request, completion)})


@app.route("/v1/messages/count_tokens", methods=["POST"])
@functools.partial(api_view, anthropic=True)
def count_message_tokens() -> Response:
    """Free and never reserved: no model runs."""
    caller = messages_caller()
    runtime = get_runtime()
    request, _ = messages_wire.parse_messages_request(
        json_body(), settings_for(runtime.settings, caller), counting=True)
    return json_response({"input_tokens": counting.input_tokens(request,
                                                                runtime.service.gateway)})


# --- OpenAI's Responses API: the same limiter and ChatService path as the
# routes above; chalicelib/responses/ joins the stored history in and keeps
# the answer (store: true).

@app.route("/v1/responses", methods=["POST"], authorizer=api_key_auth)
@api_view
def create_response() -> Response:
    runtime = get_runtime()
    caller = current_caller()
    prepared = responses_api.prepare(runtime, caller, json_body())
    request = prepared.request
    if prepared.call.background:
        return json_response(background_responses.submit(runtime, caller, prepared))
    if prepared.call.stream:
        live = open_stream(request, caller)
        return buffered(live, responses_api.streamed(runtime, caller, prepared, live.events()))
    completion, reservation = runtime.limiter.run(
        caller, need_of(request),
        lambda: runtime.service.complete(request, caller.tenant), billable, request.model)
    return json_response(responses_api.answered(runtime, caller, prepared, completion),
                         {**limit_headers(reservation.status), **cache_header(request, completion)})


@app.route("/v1/responses/{response_id}", methods=["GET", "DELETE"], authorizer=api_key_auth)
@api_view
def response_by_id(response_id: str) -> Response:
    act = (responses_api.delete if app.current_request.method == "DELETE"
           else background_responses.retrieve)
    return json_response(act(get_runtime(), current_caller(), unquote(response_id)))


@app.route("/v1/responses/{response_id}/cancel", methods=["POST"], authorizer=api_key_auth)
@api_view
def cancel_response(response_id: str) -> Response:
    return json_response(background_responses.cancel(get_runtime(), current_caller(),
                                                     unquote(response_id)))


@app.route("/v1/responses/{response_id}/input_items", methods=["GET"], authorizer=api_key_auth)
@api_view
def response_input_items(response_id: str) -> Response:
    return json_response(responses_api.input_items(get_runtime(), current_caller(),
                                                   unquote(response_id),
                                                   app.current_request.query_params or {}))


@app.route("/v1/embeddings", methods=["POST"], authorizer=api_key_auth)
@api_view
def create_embeddings() -> Response:
    runtime = get_runtime()
    caller = current_caller()
    request = embeddings.parse_request(json_body(),
                                       settings_for(runtime.settings, caller).allowed_models)
    result, reservation = runtime.limiter.run(
        caller, Need(request.model, embeddings.reservation_size(request), 0),
        lambda: runtime.embeddings.embed(request, caller.tenant), embeddings.billable,
        request.model)
    # The service says whether this answer could be cached (it must fit an item).
    cached = callstats.current().cache
    cache = {"x-cache": cached} if cached else {}
    return json_response(embeddings.render(result, request.encoding_format),
                         {**limit_headers(reservation.status), **cache})


@app.route("/v1/models", methods=["GET"], authorizer=api_key_auth)
@api_view
def list_models() -> dict[str, Any]:
    return render_models(settings_for(get_runtime().settings, current_caller()))


@app.route("/v1/models/{model_id}", methods=["GET"], authorizer=api_key_auth)
@api_view
def retrieve_model(model_id: str) -> dict[str, Any]:
    settings = settings_for(get_runtime().settings, current_caller())
    return render_model(model_field(unquote(model_id), settings))


# --- The admin API (chalicelib/admin/): keys, tenants and spend, behind admin
# keys, which keys.py alone creates. Every change is an audit line.


def admin_caller() -> Caller:
    return for_admin(caller_from_context(app.current_request.context["authorizer"]))


def admin_body() -> Any:
    request = app.current_request
    if not request.raw_body:
        return {}
    return decode_json_object(request.raw_body, get_runtime().settings.max_body_bytes)


@app.route("/admin/keys", methods=["GET", "POST"], authorizer=api_key_auth)
@api_view
def admin_keys() -> Response:
    actor, runtime = admin_caller(), get_runtime()
    if app.current_request.method == "GET":
        tenant = (app.current_request.query_params or {}).get("tenant")
        return json_response(admin_api.list_keys(runtime.keys, tenant), NO_STORE)
    created = admin_api.create_key(runtime.keys, actor, admin_body(), runtime.clock(),
                                   runtime.settings.guardrails)
    return Response(body=created, status_code=201,
                    headers={"Content-Type": "application/json", **NO_STORE})


@app.route("/admin/keys/{key_id}", methods=["GET", "PATCH", "DELETE"], authorizer=api_key_auth)
@api_view
def admin_key(key_id: str) -> Response:
    actor, runtime = admin_caller(), get_runtime()
    method = app.current_request.method
    if method == "GET":
        return json_response(admin_api.get_key(runtime.keys, key_id), NO_STORE)
    if method == "PATCH":
        return json_response(admin_api.update_key(runtime.keys, actor, key_id, admin_body(),
                                                  runtime.clock(), runtime.settings.guardrails),
                             NO_STORE)
    return json_response(admin_api.revoke_key(runtime.keys, actor, key_id, runtime.clock()),
                         NO_STORE)


@app.route("/admin/keys/{key_id}/rotate", methods=["POST"], authorizer=api_key_auth)
@api_view
def admin_rotate_key(key_id: str) -> Response:
    actor, runtime = admin_caller(), get_runtime()
    return json_response(admin_api.rotate_key(runtime.keys, actor, key_id, admin_body(),
                                              runtime.clock()), NO_STORE)


@app.route("/admin/tenants/{tenant}", methods=["GET", "PUT"], authorizer=api_key_auth)
@api_view
def admin_tenant(tenant: str) -> Response:
    actor, runtime = admin_caller(), get_runtime()
    if app.current_request.method == "GET":
        return json_response(admin_api.get_tenant(runtime.keys, tenant), NO_STORE)
    return json_response(admin_api.put_tenant(runtime.keys, actor, tenant, admin_body(),
                                              runtime.clock(), runtime.settings.guardrails),
                         NO_STORE)


@app.route("/admin/usage", methods=["GET"], authorizer=api_key_auth)
@api_view
def admin_usage() -> Response:
    admin_caller()
    runtime = get_runtime()
    first, last, group, fmt = admin_spend.parse_query(
        dict(app.current_request.query_params or {}), runtime.clock())
    rows = admin_spend.spend(runtime.dynamodb, runtime.settings.usage_table, runtime.keys,
                             first, last, group)
    if fmt == "csv":
        return Response(body=admin_spend.as_csv(rows, group), status_code=200, headers={
            "Content-Type": "text/csv; charset=utf-8", **NO_STORE,
            "Content-Disposition": f'attachment; filename="usage-by-{group}.csv"'})
    return json_response(admin_spend.render(rows, first, last, group), NO_STORE)


# --- Real streaming. ``serve`` is the entry point of whatever can stream: the
# local server (devstack/app_server.py) and, once deployed, the stream_handler
# function behind API Gateway's response streaming (its Runtime API loop is
# chalicelib/streaming/lambda_runtime.py). It streams POSTs to these routes
# that ask for a stream, and hands every other request to Chalice.
STREAM_ROUTES = ("/chat", *OPENAI_ROUTES, "/v1/messages", "/v1/responses")


def stream_payload(event: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON body of a POST to a streaming route that asks for a stream;
    None for anything else, which Chalice answers (errors included)."""
    context = event.get("requestContext") or {}
    method = event.get("httpMethod") or context.get("httpMethod")  # chalice local: only the latter
    if method != "POST" or context.get("resourcePath") not in STREAM_ROUTES:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return None
    raw = event.get("body") or b""
    try:
        if isinstance(raw, bytes):  # chalice local's events carry bytes
            data = raw
        else:
            data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
        payload = decode_json_object(data, get_runtime().settings.max_body_bytes)
    except (errors.ApiError, ValueError):
        return None
    return payload if payload.get("stream") is True else None


def serve(event: dict[str, Any], context: Any) -> StreamedResponse:
    payload = stream_payload(event)
    if payload is None:
        return from_proxy(app(event, context))
    return serve_stream(event, context, payload)


def record_outcome(outcome: Outcome, stats: callstats.CallStats) -> None:
    try:
        get_runtime().telemetry.record(outcome, stats)
    except Exception:
        log.exception("telemetry failed")


def stream_caller(event: dict[str, Any], authorizer: dict[str, Any]) -> Caller:
    """The Messages route's caller: its key, checked here as the route checks it
    (API Gateway runs no authorizer there); the tenant goes to telemetry."""
    caller = key_caller({str(k): str(v) for k, v in (event.get("headers") or {}).items()})
    authorizer.update(caller_to_context(caller))
    return caller


def serve_stream(event: dict[str, Any], context: Any, payload: dict[str, Any]) -> StreamedResponse:
    """The same path as the routes above (authorizer context, validation,
    limits, the one ChatService, telemetry), answered as it comes."""
    request_context = event["requestContext"]
    request_id = str(request_context.get("requestId") or uuid.uuid4())
    route = str(request_context["resourcePath"])
    authorizer = request_context.get("authorizer") or {}
    started = time.monotonic()
    stats = callstats.begin()
    deadline.start(deadline.for_api(context))

    def finish(status: int, error_code: str | None) -> None:
        record_outcome(Outcome(kind="request", request_id=request_id, route=f"POST {route}",
                               tenant=authorizer.get("tenant"), status=status,
                               error_code=error_code,
                               latency_ms=(time.monotonic() - started) * 1000), stats)

    anthropic = is_messages_route(route)
    try:
        runtime = get_runtime()
        if anthropic:
            caller = stream_caller(event, authorizer)
            request, _ = messages_wire.parse_messages_request(
                payload, settings_for(runtime.settings, caller))
            live = open_stream(request, caller)
            events = live.events()
            chunks = messages_stream.render_events(events, message_id(request_id), request.model,
                                                   request_id)
        elif route == "/chat":
            caller = for_models(caller_from_context(authorizer))
            request = parse_chat_request(native_stream.split_stream_flag(payload)[0],
                                         settings_for(runtime.settings, caller))
            live = open_stream(request, caller)
            events = live.events()
            chunks = native_stream.render_events(events, request_id, request.model)
        elif route == "/v1/responses":
            caller = for_models(caller_from_context(authorizer))
            prepared = responses_api.prepare(runtime, caller, payload)
            live = open_stream(prepared.request, caller)
            events = live.events()
            chunks = responses_api.streamed(runtime, caller, prepared, events)
        else:
            parse, id_prefix, _, render_chunks = OPENAI_ROUTES[route]
            caller = for_models(caller_from_context(authorizer))
            request, options = parse(payload, settings_for(runtime.settings, caller))
            live = open_stream(request, caller)
            events = live.events()
            chunks = render_chunks(events, f"{id_prefix}-{request_id}", int(runtime.clock()),
                                   request.model, options.include_usage)
    except Exception as exc:
        if isinstance(exc, errors.ApiError):
            error = exc
        else:
            log.exception("unhandled error, request id %s", request_id)
            error = _internal_error(request_id)
        response = error_response(error, anthropic, request_id)
        if anthropic:
            response.headers["request-id"] = request_id
        finish(response.status_code, error.code)
        return single(response.status_code, {**response.headers, "x-request-id": request_id},
                      json.dumps(response.body).encode("utf-8"))

    def body() -> Iterator[bytes]:
        try:
            for text in chunks:
                yield text.encode("utf-8")
        finally:
            chunks.close()
            events.close()  # a client that hung up: drains Bedrock, settles
            error = live.error
            if error is not None:
                finish(status_for(error, ANTHROPIC_STATUS if anthropic else STATUS), error.code)
            else:
                finish(200, "client_disconnected" if live.abandoned else None)

    return StreamedResponse(200, {**SSE_HEADERS, **limit_headers(live.reservation.status),
                                  **served_headers(stats), "x-request-id": request_id,
                                  **({"request-id": request_id} if anthropic else {})}, body())


@app.lambda_function(name="stream_handler")
def stream_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway's streaming integration of POST /chat,
    /v1/chat/completions, /v1/completions, /v1/messages and /v1/responses. Deployed,
    the function's exec wrapper runs chalicelib/streaming/lambda_runtime.py
    instead of Python's managed runtime, and that loop calls ``serve`` and streams its answer. Called as
    a plain handler (no wrapper), it answers in the buffered proxy shape."""
    response = serve(event, context)
    return {"statusCode": response.status, "headers": response.headers,
            "multiValueHeaders": response.multi_headers,
            "body": b"".join(response.chunks()).decode("utf-8")}


# All that import built lives as long as the process. Freezing it keeps the
# first request's allocations (botocore's models and clients) from setting off
# a full collection over all of it: ~10 ms of a cold start (bench/overhead.py).
gc.freeze()
