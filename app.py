"""Routes of the LLM endpoint: they parse, call one chalicelib function, return.

This is the only module that knows HTTP status codes: domain errors from
``chalicelib.errors`` become statuses here, in the OpenAI error envelope
``{"error": {"message", "type", "code", "param"}}``. Every answer carries an
``x-request-id`` header. Nothing here calls AWS at import: the Bedrock client
is created on first use by ``get_service`` (tests replace it with
``set_service``).
"""
from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from chalice import Chalice, Response
from chalice.app import Request

from chalicelib import errors
from chalicelib.bedrock import BedrockGateway, make_client
from chalicelib.completion import ChatService
from chalicelib.config import Settings, load_settings
from chalicelib.native_api import render_chat
from chalicelib.openai_api import (parse_openai_request, render_completion, render_model,
                                   render_models, render_stream)
from chalicelib.validation import decode_json_object, model_field, parse_chat_request

app = Chalice(app_name="llm-endpoint")
log = logging.getLogger("llm-endpoint")
log.setLevel(logging.INFO)

STATUS: dict[type[errors.ApiError], int] = {
    errors.InvalidRequestError: 400,
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
    errors.ApiError: 500,
}
# Chalice answers some requests itself (wrong method, wrong content type,
# unhandled exceptions) with {"Code", "Message"}; these become our envelope.
CHALICE_ERRORS: dict[int, type[errors.ApiError]] = {
    400: errors.InvalidRequestError,
    405: errors.MethodNotAllowedError,
    415: errors.UnsupportedMediaTypeError,
}

_settings: Settings | None = None
_service: ChatService | None = None


def get_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def get_service() -> ChatService:
    global _service
    if _service is None:
        settings = get_settings()
        _service = ChatService(BedrockGateway(make_client(settings),
                                              retry_after=settings.throttle_retry_after_s))
    return _service


def set_service(service: ChatService | None, settings: Settings | None = None) -> None:
    """Replace (or, with None, forget) the lazily built dependencies."""
    global _service, _settings
    _service, _settings = service, settings


def status_for(error: errors.ApiError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(error: errors.ApiError) -> Response:
    body = {"error": {"message": error.message, "type": error.type,
                      "code": error.code, "param": error.param}}
    headers = {"Content-Type": "application/json"}
    if isinstance(error, errors.UpstreamThrottledError):
        headers["Retry-After"] = str(error.retry_after)
    return Response(body=body, status_code=status_for(error), headers=headers)


def _internal_error(request_id: str) -> errors.ApiError:
    return errors.ApiError(f"Internal error. Quote request id {request_id} when reporting it.")


def current_request_id() -> str:
    request = app.current_request
    return str(request.context.get("requestId", "")) if request is not None else ""


def api_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into the envelope, and anything else into a bare 500."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except errors.ApiError as error:
            return error_response(error)
        except Exception:
            request_id = current_request_id()
            log.exception("unhandled error, request id %s", request_id)
            return error_response(_internal_error(request_id))
    return wrapper


@app.middleware("http")
def request_id_and_envelope(event: Request, get_response: Callable[[Request], Response]) -> Response:
    # API Gateway's request id ties our answer to its logs; chalice local has none.
    request_id = str(event.context.get("requestId") or uuid.uuid4())
    event.context["requestId"] = request_id
    response = get_response(event)
    body = response.body
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        kind = CHALICE_ERRORS.get(response.status_code)
        error = kind(str(body["Message"])) if kind else _internal_error(request_id)
        allow = response.headers.get("Allow")
        response = error_response(error)
        if allow:
            response.headers["Allow"] = allow
    response.headers["x-request-id"] = request_id
    return response


def json_body() -> dict[str, Any]:
    request = app.current_request
    return decode_json_object(request.raw_body, get_settings().max_body_bytes)


@app.route("/health", methods=["GET"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.route("/chat", methods=["POST"])
@api_view
def chat() -> Response:
    request = parse_chat_request(json_body(), get_settings())
    completion = get_service().complete(request)
    return Response(body=render_chat(completion, current_request_id()), status_code=200,
                    headers={"Content-Type": "application/json"})


@app.route("/v1/chat/completions", methods=["POST"])
@api_view
def chat_completions() -> Response:
    request, options = parse_openai_request(json_body(), get_settings())
    completion_id = f"chatcmpl-{current_request_id()}"
    created = int(time.time())
    if options.stream:
        # Chalice cannot stream a REST response (aws/chalice#2078): the whole
        # stream is read first, so a mid-stream Bedrock error still becomes
        # the HTTP error the OpenAI SDK maps to its exception classes.
        streamed = get_service().stream(request)
        body = render_stream(streamed, completion_id, created, options.include_usage)
        return Response(body=body, status_code=200,
                        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    completion = get_service().complete(request)
    return Response(body=render_completion(completion, completion_id, created), status_code=200,
                    headers={"Content-Type": "application/json"})


@app.route("/v1/models", methods=["GET"])
@api_view
def list_models() -> dict[str, Any]:
    return render_models(get_settings())


@app.route("/v1/models/{model_id}", methods=["GET"])
@api_view
def retrieve_model(model_id: str) -> dict[str, Any]:
    return render_model(model_field(unquote(model_id), get_settings()))
