"""A Lambda Runtime API loop that streams its answers (the deployed streaming path).

Python's managed Lambda runtime cannot stream a response, so the
stream_handler function's exec wrapper (``exec_wrapper.sh``, next to this file, set
as ``AWS_LAMBDA_EXEC_WRAPPER``) starts this loop in place of it, with the same
interpreter and the same package. The loop speaks the Runtime API
(docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) itself:

- ``GET /2018-06-01/runtime/invocation/next``: the next event, its request id
  and deadline (``Lambda-Runtime-Deadline-Ms``), from which the context's
  ``get_remaining_time_in_millis`` is computed, and its X-Ray trace id
  (``Lambda-Runtime-Trace-Id``), which the managed runtime puts in
  ``_X_AMZN_TRACE_ID`` for the invocation (botocore sends it on as
  ``X-Amzn-Trace-Id``, so the Bedrock and DynamoDB calls join the trace); an
  invocation without one leaves none from the one before;
- ``POST /2018-06-01/runtime/invocation/{id}/response`` with
  ``Lambda-Runtime-Function-Response-Mode: streaming`` and chunked transfer
  encoding: API Gateway's metadata prelude (JSON ``statusCode``, ``headers``,
  ``multiValueHeaders``, ``cookies``), eight null bytes, then the body, each
  piece sent as the handler produces it (content type
  ``application/vnd.awslambda.http-integration-response``). A failure in
  the middle of a body is reported in the ``Lambda-Runtime-Function-Error-*``
  trailers;
- ``POST .../invocation/{id}/error`` when the handler fails before its
  answer, and ``POST /2018-06-01/runtime/init/error`` when the app cannot load.

The handler (``app.serve``) takes ``(event, context)`` and returns a
``StreamedResponse``: the same entry point the local server streams from.
"""
from __future__ import annotations

import base64
import http.client
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.streaming.response import StreamedResponse

log = logging.getLogger(__name__)

API = "/2018-06-01/runtime"
PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
DELIMITER = b"\0" * 8
ERROR_TRAILERS = "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
TRACE_ENV = "_X_AMZN_TRACE_ID"

Handler = Callable[[Any, Any], StreamedResponse]


class Context:
    """What Lambda's Python runtime hands a handler as ``context``."""

    def __init__(self, headers: Any, environ: dict[str, str]) -> None:
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.trace_id: str | None = headers.get("Lambda-Runtime-Trace-Id") or None
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def prelude(response: StreamedResponse) -> bytes:
    """API Gateway's metadata prelude and its delimiter."""
    meta = {"statusCode": response.status, "headers": response.headers,
            "multiValueHeaders": response.multi_headers, "cookies": []}
    return json.dumps(meta, separators=(",", ":")).encode("utf-8") + DELIMITER


def _error_body(exc: BaseException) -> dict[str, Any]:
    # Never the message: it may name internals. The log has the traceback.
    return {"errorMessage": "The function failed.", "errorType": type(exc).__name__}


class RuntimeClient:
    def __init__(self, address: str, environ: dict[str, str] | None = None) -> None:
        host, _, port = address.partition(":")
        self._host, self._port = host, int(port or 80)
        self._environ = dict(os.environ if environ is None else environ)
        # No timeout: /next blocks until there is an invocation.
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=None)

    def next(self) -> tuple[Any, Context]:
        self._conn.request("GET", f"{API}/invocation/next")
        answer = self._conn.getresponse()
        body = answer.read()
        return json.loads(body or b"null"), Context(answer.headers, self._environ)

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        self._conn.request("POST", path, body, headers)
        self._conn.getresponse().read()

    def init_error(self, exc: BaseException) -> None:
        self._post(f"{API}/init/error", json.dumps(_error_body(exc)).encode(),
                   {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportError"})

    def error(self, request_id: str, exc: BaseException) -> None:
        self._post(f"{API}/invocation/{request_id}/error", json.dumps(_error_body(exc)).encode(),
                   {"Lambda-Runtime-Function-Error-Type": f"Unhandled.{type(exc).__name__}",
                    "Content-Type": "application/json"})

    def stream(self, request_id: str, response: StreamedResponse) -> None:
        """Send the prelude, then each body piece as it is produced."""
        conn = self._conn
        conn.putrequest("POST", f"{API}/invocation/{request_id}/response")
        for name, value in (("Lambda-Runtime-Function-Response-Mode", "streaming"),
                            ("Transfer-Encoding", "chunked"),
                            ("Content-Type", PRELUDE_CONTENT_TYPE),
                            ("Trailer", ERROR_TRAILERS)):
            conn.putheader(name, value)
        conn.endheaders()
        trailers = b""
        pieces: Iterator[bytes] = response.chunks()
        try:
            conn.send(_chunk(prelude(response)))
            for piece in pieces:
                conn.send(_chunk(piece))
        except (BrokenPipeError, ConnectionResetError):
            raise  # the runtime API itself is gone: nothing more to send
        except Exception as exc:
            log.exception("streamed body failed, request id %s", request_id)
            body = base64.b64encode(json.dumps(_error_body(exc)).encode()).decode()
            trailers = (f"Lambda-Runtime-Function-Error-Type: Unhandled.{type(exc).__name__}\r\n"
                        f"Lambda-Runtime-Function-Error-Body: {body}\r\n").encode()
        finally:
            pieces.close()  # a body left early drains Bedrock and settles
        conn.send(b"0\r\n" + trailers + b"\r\n")
        conn.getresponse().read()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def serve_one(client: RuntimeClient, handler: Handler) -> None:
    event, context = client.next()
    if context.trace_id:
        os.environ[TRACE_ENV] = context.trace_id
    else:
        os.environ.pop(TRACE_ENV, None)
    try:
        response = handler(event, context)
    except Exception as exc:
        log.exception("handler failed, request id %s", context.aws_request_id)
        client.error(context.aws_request_id, exc)
        return
    client.stream(context.aws_request_id, response)


def load_handler(spec: str) -> Handler:
    module, _, name = spec.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    client = RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    try:
        handler = load_handler(argv[0] if argv else "app.serve")
    except Exception as exc:
        client.init_error(exc)
        raise
    while True:
        serve_one(client, handler)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    sys.exit(main())
