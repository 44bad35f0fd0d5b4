"""The only bedrock-runtime I/O: client configuration, the calls, error translation.

The client is created lazily (no AWS call or credential lookup at import) by
``make_client``, from a botocore session rather than boto3: boto3 adds nothing
for one client but costs ~60 ms of imports (s3transfer) on every cold start.
``BedrockGateway`` takes any client, so tests pass one pointed at the emulator.
botocore errors become domain errors here, with the cause kept
(``raise ... from exc``) for the log and never shown to the client.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.config import Config
from botocore.eventstream import ParserError as EventStreamParserError
from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError,
                                 EndpointConnectionError, EventStreamError, ReadTimeoutError)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout
from urllib3.util.timeout import Timeout

from chalicelib import deadline
from chalicelib.observe import callstats
from chalicelib.aws import session
from chalicelib.chat import Guardrail
from chalicelib.config import Settings
from chalicelib.models.guardrails import invoke_params
from chalicelib.errors import (ApiError, ContextWindowExceededError, DeadlineExceededError,
                               UpstreamError,
                               UpstreamMisconfiguredError, UpstreamRejectedError,
                               UpstreamThrottledError, UpstreamTimeoutError,
                               UpstreamUnavailableError)

log = logging.getLogger(__name__)

_THROTTLES = {"ThrottlingException", "ModelNotReadyException", "ServiceQuotaExceededException"}
_UPSTREAM_FAILURES = {"InternalServerException", "ModelErrorException",
                      "ModelStreamErrorException"}
_MISCONFIGURED = {"AccessDeniedException", "ResourceNotFoundException",
                  "UnrecognizedClientException", "ExpiredTokenException"}


def _after_attempt(caught_exception: Exception | None = None, response: Any = None,
                   **_: Any) -> None:
    """botocore's needs-retry event, after every attempt: count throttles for
    the request's metrics, and never retry a read timeout."""
    if response is not None:
        code = response[1].get("Error", {}).get("Code") if isinstance(response[1], dict) else None
        if code in _THROTTLES:
            callstats.current().throttles += 1
    # A generation that outlived the read timeout would do so again, and a
    # second wait would push the request past API Gateway's 29 s. Raising here
    # ends botocore's retry loop with the original error.
    if isinstance(caught_exception, ReadTimeoutError):
        raise caught_exception


def _bound_attempt(request: Any = None, **_: Any) -> None:
    """botocore's before-send event, before every attempt: no attempt starts
    past the call's deadline, and none may wait for its answer beyond it (the
    per-request ``read_timeout`` botocore's HTTP session honours)."""
    limit = deadline.current()
    if limit.expired:
        raise DeadlineExceededError("The model did not answer in time.")
    # The Lambda runtime's botocore (1.34, requirements-lambda-runtime.txt)
    # has no per-request context on a prepared request: there the pool's
    # _DeadlineTimeout cuts the wait instead (both hold on newer botocore).
    context = getattr(request, "context", None)
    if context is not None and limit.at != deadline.NONE.at:
        configured = context.get("client_config")
        read = getattr(configured, "read_timeout", None) or 60.0
        context["read_timeout"] = limit.bound(read)


class _DeadlineTimeout(Timeout):
    """The client's timeouts, whose read part each attempt takes cut to the
    time its deadline leaves. urllib3 clones a pool's timeout at the start of
    every request, in the caller's thread (where ``deadline.current()`` is
    the request's own), and sets the socket's timeout from the copy before
    waiting for the answer: so on every botocore, the Lambda runtime's 1.34
    included, no attempt waits for Bedrock past its deadline."""

    def clone(self) -> Timeout:
        read = self._read
        limit = deadline.current()
        if isinstance(read, (int, float)) and limit.at != deadline.NONE.at:
            read = limit.bound(read)
        return Timeout(connect=self._connect, read=read, total=self.total)


def _bound_reads(client: Any, connect_s: float, read_s: float) -> None:
    """Give the client's connection pools a _DeadlineTimeout. botocore has no
    public way to pass one, so this reaches into its HTTP session; should
    that ever change, the deadline still holds before each attempt and each
    read of a stream (``_bound_attempt``, ``_read``), and it is logged."""
    timeout = _DeadlineTimeout(connect=connect_s, read=read_s)
    try:
        http = client._endpoint.http_session
        pools = http._manager.connection_pool_kw
    except AttributeError:
        log.error("bedrock client: cannot bound its reads by the deadline")
        return
    http._timeout = timeout  # proxy pools are built from it
    pools["timeout"] = timeout


def _cut() -> DeadlineExceededError:
    return DeadlineExceededError("The model did not finish in time.")


def _generating(error: ApiError, generating: bool = True) -> ApiError:
    error.generating = generating
    return error


def _socket_of(stream: Any) -> Any:
    """The socket under an event stream (urllib3's response), or None."""
    raw = getattr(stream, "_raw_stream", None)
    connection = getattr(raw, "connection", None)
    return getattr(connection, "sock", None)


def make_client(settings: Settings, read_timeout_s: float | None = None,
                region: str | None = None) -> Any:
    """A bedrock-runtime client with explicit retries and timeouts.

    Endpoint, region and credentials come from the environment as usual
    (``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` points it at the emulator locally).
    The jobs worker passes its longer ``read_timeout_s``; a fallback link in
    another region its ``region``.
    """
    read_s = read_timeout_s or settings.bedrock_read_timeout_s
    client = session().create_client("bedrock-runtime", region_name=region, config=Config(
        retries={"mode": "standard", "total_max_attempts": settings.bedrock_max_attempts},
        connect_timeout=settings.bedrock_connect_timeout_s,
        read_timeout=read_s,
        tcp_keepalive=True,
    ))
    _bound_reads(client, settings.bedrock_connect_timeout_s, read_s)
    client.meta.events.register_first("needs-retry.bedrock-runtime", _after_attempt)
    client.meta.events.register("before-send.bedrock-runtime", _bound_attempt)
    return client


def _error_code(exc: ClientError) -> str:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    # In-stream errors arrive camel-cased (throttlingException): normalise.
    return code[:1].upper() + code[1:]


def translate_error(exc: Exception, retry_after: int) -> ApiError:
    """A botocore failure as the domain error a client may see."""
    if isinstance(exc, (ReadTimeoutError, Urllib3ReadTimeout)):
        return UpstreamTimeoutError("The model did not answer in time.")
    if isinstance(exc, (ConnectTimeoutError, EndpointConnectionError)):
        return UpstreamUnavailableError("The model service could not be reached.")
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        if code in _THROTTLES:
            return UpstreamThrottledError("The model is busy; retry after a short wait.",
                                          retry_after=retry_after)
        if code == "ModelTimeoutException":
            return UpstreamTimeoutError("The model did not answer in time.")
        if code == "ServiceUnavailableException":
            return UpstreamUnavailableError("The model service is unavailable; try again later.")
        if code == "ValidationException":
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if "context length" in message or "too long" in message:
                return ContextWindowExceededError(
                    "The prompt is longer than the model's context window.", param="messages")
            if "guardrail" in message.lower():  # the stage names one Bedrock does not have
                return UpstreamMisconfiguredError("The guardrail this key uses is not "
                                                  "reachable from this deployment.")
            return UpstreamRejectedError("The model rejected the request as invalid.")
        if code in _UPSTREAM_FAILURES:
            return UpstreamError("The model failed to answer.")
        if code in _MISCONFIGURED:
            return UpstreamMisconfiguredError("The model is not reachable from this deployment.")
    return UpstreamError("The model service failed.")


class BedrockGateway:
    """InvokeModelWithResponseStream, InvokeModel (embeddings), Converse and
    ConverseStream, errors translated. Llama chat reads the stream for plain
    calls too (completion.py): only the stream's chunks count the tokens of
    a generation cut at its deadline."""

    def __init__(self, client: Any, *, retry_after: int = 2) -> None:
        self._client = client
        self._retry_after = retry_after

    @property
    def region(self) -> str:
        """The Bedrock region this gateway calls."""
        return str(getattr(self._client.meta, "region_name", "") or "")

    def _fail(self, exc: Exception, model_id: str) -> ApiError:
        error = translate_error(exc, self._retry_after)
        if isinstance(exc, ClientError):
            stats = callstats.current()
            stats.retries += int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
            if isinstance(exc, EventStreamError) and isinstance(error, UpstreamThrottledError):
                stats.throttles += 1  # in-stream: no retry hook saw it
        # Details (which may name ARNs) go to the log only, never to clients.
        log.warning("bedrock call failed: model=%s code=%s cause=%s: %s",
                    model_id, error.code, type(exc).__name__, exc)
        return error

    def invoke_stream(self, model_id: str, body: dict[str, Any],
                      guardrail: Guardrail | None = None) -> Iterator[Any]:
        """The stream's chunks, JSON-decoded; errors before or inside the
        stream raise the same domain errors (see ``_read``). With a
        ``guardrail``, Bedrock applies it to the prompt and every chunk."""
        def decode(event: dict[str, Any]) -> Any:
            chunk = event.get("chunk")
            return None if chunk is None else json.loads(chunk["bytes"])
        return self._read(model_id, lambda: self._client.invoke_model_with_response_stream(
            modelId=model_id, body=json.dumps(body), contentType="application/json",
            accept="application/json", **invoke_params(guardrail)), "body", decode)

    def _read(self, model_id: str, call: Callable[[], Any], key: str,
              decode: Callable[[dict[str, Any]], Any]) -> Iterator[Any]:
        """Make the streaming ``call`` and yield ``decode(event)`` for each
        event of ``response[key]`` (None: skipped).

        The call's deadline bounds the whole iteration, not each read: before
        every read the socket's timeout is cut to the time left, and a read
        that outlives it raises DeadlineExceededError. A stall shorter than
        the deadline but longer than the read timeout is UpstreamTimeoutError,
        a connection reset UpstreamError: never an unexpected exception. A
        stream left early (deadline, or a consumer that stops) is closed, so
        Bedrock's connection is not left open.

        Every failure once Bedrock has the request (a wait past its timeout,
        anything after the stream opened: a break, an in-stream error, a
        corrupted event) is marked ``generating``: Bedrock may have billed
        tokens that no chunk counted."""
        stats = callstats.current()
        started = time.monotonic()
        limit = deadline.current()
        stream: Any = None
        opened = finished = False
        try:
            response = call()
            opened = True
            stats.retries += int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
            stream = response[key]
            sock = _socket_of(stream)
            read_timeout = self._client.meta.config.read_timeout or 60.0
            events = iter(stream)
            while True:
                if limit.expired:
                    raise _generating(_cut())
                if sock is not None and limit.at != deadline.NONE.at:
                    sock.settimeout(limit.bound(read_timeout))
                try:
                    event = next(events)
                except StopIteration:
                    finished = True
                    return
                item = decode(event)
                if item is not None:
                    yield item
        except (ReadTimeoutError, Urllib3ReadTimeout) as exc:
            raise _generating(_cut() if limit.expired else self._fail(exc, model_id)) from exc
        except (ClientError, EventStreamError, BotoCoreError) as exc:
            raise _generating(self._fail(exc, model_id), opened) from exc
        except (Urllib3Error, OSError) as exc:
            log.warning("bedrock stream broke: model=%s cause=%s: %s",
                        model_id, type(exc).__name__, exc)
            raise _generating(UpstreamError("The model's stream broke off."), opened) from exc
        except (ValueError, LookupError, TypeError, EventStreamParserError) as exc:
            # A corrupted frame (its checksum), or an event not of its shape.
            log.warning("bedrock stream malformed: model=%s cause=%s: %s",
                        model_id, type(exc).__name__, exc)
            raise _generating(UpstreamError("The model returned a malformed stream."),
                              opened) from exc
        finally:
            if stream is not None and not finished:
                stream.close()
            stats.bedrock_ms += (time.monotonic() - started) * 1000

    def invoke_with_headers(self, model_id: str, body: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        """InvokeModel, with the answer's HTTP headers (lower-cased names):
        embeddings read their token counts from ``x-amzn-bedrock-input-token-count``."""
        stats = callstats.current()
        started = time.monotonic()
        try:
            response = self._client.invoke_model(
                modelId=model_id, body=json.dumps(body), contentType="application/json",
                accept="application/json")
            metadata = response.get("ResponseMetadata", {})
            stats.retries += int(metadata.get("RetryAttempts", 0))
            headers = {str(k).lower(): str(v) for k, v in metadata.get("HTTPHeaders", {}).items()}
            return json.loads(response["body"].read()), headers
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, model_id) from exc
        except ValueError as exc:
            raise UpstreamError("The model returned a malformed answer.") from exc
        finally:
            stats.bedrock_ms += (time.monotonic() - started) * 1000

    def converse(self, model_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Converse (bedrock:InvokeModel), errors translated as for InvokeModel;
        only for what ConverseStream refuses (tools, on some models)."""
        stats = callstats.current()
        started = time.monotonic()
        try:
            response = self._client.converse(modelId=model_id, **request)
            stats.retries += int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
            return dict(response)
        except (ReadTimeoutError, Urllib3ReadTimeout) as exc:
            expired = deadline.current().expired
            raise _generating(_cut() if expired else self._fail(exc, model_id)) from exc
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, model_id) from exc
        finally:
            stats.bedrock_ms += (time.monotonic() - started) * 1000

    def count_tokens(self, model_id: str, converse_input: dict[str, Any]) -> int:
        """CountTokens of a Converse input (``messages``, ``system``,
        ``toolConfig``) for the foundation model ``model_id``; free, no inference."""
        try:
            response = self._client.count_tokens(modelId=model_id,
                                                 input={"converse": converse_input})
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, model_id) from exc
        count = response.get("inputTokens")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise UpstreamError("The model returned a malformed answer.")
        return count

    def converse_stream(self, model_id: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """ConverseStream's events (bedrock:InvokeModelWithResponseStream),
        under the call's deadline like ``invoke_stream``."""
        return self._read(model_id, lambda: self._client.converse_stream(
            modelId=model_id, **request), "stream", dict)
