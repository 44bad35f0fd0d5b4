"""Serve app.py as ``chalice local`` does, with a listen backlog fit for bursts,
and real streaming.

``chalice local`` builds a ``LocalDevServer`` on socketserver's default backlog
of 5, so a burst of concurrent connections is reset (see SPEC.md). This builds
the same server through Chalice's own factory (stage config and environment
variables applied, routes validated), with a larger ``request_queue_size``.

``chalice local`` cannot stream, so the streaming routes (``app.STREAM_ROUTES``)
go through Chalice's own local gateway (routing, the authorizer, the Lambda
event and context) and then to ``app.serve``, the entry point the deployed
streaming function runs too, instead of to Chalice's handler. Its answer is
written with chunked transfer encoding, each piece as soon as it is produced.
Every other route is Chalice's alone.

Request bodies are read as API Gateway takes them: by ``Content-Length`` or
with chunked transfer encoding (which Chalice's handler reads as no body, and
then as the next request). A malformed ``Content-Length`` is a 400 in the
envelope, not a dropped connection, and a client that stops sending is cut off
after ``timeout`` seconds instead of holding its thread for ever. A client that
resets its connection (an idle keep-alive one, as pools do) ends it quietly:
nothing was asked, so there is nothing to answer or to report.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalice.cli.factory import CLIFactory
from chalice.deploy.validate import validate_routes
from chalice.local import (ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer,
                           LocalGatewayException, ThreadedHTTPServer)

from devstack.gateway import EmulatedGateway

PROJECT_DIR = Path(__file__).resolve().parent.parent


class StreamingGateway(EmulatedGateway):
    """Chalice's local gateway (with the stage's gateway responses), handing
    requests to ``serve`` (app.py)."""

    def __init__(self, app_object: Any, config: Any, serve: Callable[[Any, Any], Any]) -> None:
        super().__init__(app_object, config)
        self._app_object = _Serving(app_object, serve)


class _Serving:
    """Stands in for the app where LocalGateway calls it: the request is
    served by ``serve``; Chalice's other uses of the app reach the app."""

    def __init__(self, app_object: Any, serve: Callable[[Any, Any], Any]) -> None:
        self._app = app_object
        self._serve = serve

    def __call__(self, event: Any, context: Any) -> Any:
        return self._serve(event, context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


class AnyMethodHandler(ChaliceRequestHandler):
    """Every HTTP method reaches Chalice's routing, which refuses an unknown
    one with a 405 in the app's error envelope; the standard library would
    answer TRACE or any other method it does not know with a 501 HTML page.
    Streaming routes are served by ``app.serve``, written as they come. API
    Gateway's own answers (missing or refused key, a failing authorizer,
    unknown path) are the stage's gateway responses (devstack/gateway.py),
    on every route."""

    stream_routes: tuple[str, ...] = ()
    streaming_gateway: StreamingGateway | None = None
    # Seconds a connection may stay silent (socketserver applies it to the
    # socket): a client that announces a body and never sends it.
    timeout = 30
    # Chunked bodies are read up to this (API Gateway's own limit is 10 MB);
    # the app answers 413 to anything over its MAX_BODY_BYTES.
    max_chunked_body = 10 * 1024 * 1024

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any,
                 config: Any) -> None:
        # What ChaliceRequestHandler.__init__ does, with the emulated gateway
        # (the base class serves the request inside __init__).
        self.local_gateway = EmulatedGateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)  # type: ignore[arg-type]

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionResetError, BrokenPipeError):
            # socketserver would print the traceback of a reset while the
            # handler waits for the next request line: a client's normal exit.
            self.close_connection = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)

    def _parse_payload(self) -> tuple[dict[str, str], bytes | None]:
        headers = dict(self.headers)
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return headers, self._read_chunked()
        length = self.headers.get("content-length", "0").strip()
        if not length.isdigit():
            raise _BadFraming(f"Content-Length {length[:20]!r} is not a number of bytes.")
        return headers, self.rfile.read(int(length)) if int(length) > 0 else None

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise _BadFraming("The chunked body is malformed.") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers, then the blank line
                    pass
                return bytes(body)
            if len(body) + size > self.max_chunked_body:
                raise _BadFraming("The chunked body is over 10 MB.")
            body += self.rfile.read(size)
            self.rfile.readline(1024)  # the CRLF after the chunk

    def _generic_handle(self) -> None:
        try:
            self._route()
        except _BadFraming as error:
            self.close_connection = True  # what follows on the connection cannot be trusted
            body = json.dumps({"error": {"message": str(error), "type": "invalid_request_error",
                                         "code": "invalid_request", "param": None}})
            self._send_http_response(400, {"Content-Type": "application/json",
                                           "x-request-id": str(uuid.uuid4())}, body)

    def _route(self) -> None:
        path = urlsplit(self.path).path
        if self.streaming_gateway is None or path not in self.stream_routes:
            super()._generic_handle()
            return
        headers, body = self._parse_payload()
        try:
            response = self.streaming_gateway.handle_request(
                method=self.command, path=self.path, headers=headers, body=body)
        except LocalGatewayException as error:
            self._send_error_response(error)
            return
        if isinstance(response, dict):  # OPTIONS, answered by the gateway
            self._send_http_response(response["statusCode"], response["headers"], response["body"])
            return
        self._send_streamed(response)

    def _send_streamed(self, response: Any) -> None:
        chunks = response.chunks()
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            for name, values in response.multi_headers.items():
                for value in values:
                    self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for piece in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up
        finally:
            chunks.close()  # after a hang-up: the stream drains and settles

    # ChaliceRequestHandler binds these to its own _generic_handle.
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle


class _BadFraming(Exception):
    """The request's body cannot be delimited (a bad length or chunk)."""


class BurstReadyServer(ThreadedHTTPServer):
    request_queue_size = 1024
    allow_reuse_address = True  # a port in TIME_WAIT is not "in use"


def build_server(host: str, port: int, stage: str) -> LocalDevServer:
    factory = CLIFactory(str(PROJECT_DIR), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)
    app_obj = config.chalice_app
    validate_routes(app_obj.routes)
    # What chalice.local.create_local_server does, minus its fixed server class.
    CustomLocalChalice.__bases__ = (LocalChalice, app_obj.__class__)
    app_obj.__class__ = CustomLocalChalice
    app_module = importlib.import_module("app")
    handler = type("StreamingHandler", (AnyMethodHandler,), {
        "stream_routes": tuple(app_module.STREAM_ROUTES),
        "streaming_gateway": StreamingGateway(app_obj, config, app_module.serve)})
    return LocalDevServer(app_obj, config, host, port, handler_cls=handler,
                          server_cls=BurstReadyServer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # no credential chatter
    try:
        server = build_server(args.host, args.port, args.stage)
    except OSError as exc:
        print(f"app server: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
