"""The deployed streaming path's wire protocol: the Runtime API loop
(chalicelib/streaming/lambda_runtime.py) against a local server that speaks
Lambda's Runtime API, recording what arrives and when: the streaming response
mode, chunked encoding, API Gateway's metadata prelude and its eight null
bytes, the body as it is produced, error reports and trailers."""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import app as app_module
from chalicelib.streaming.lambda_runtime import (DELIMITER, PRELUDE_CONTENT_TYPE, RuntimeClient,
                                                 serve_one)
from chalicelib.streaming.response import StreamedResponse
from tests.conftest import ApiFactory
from tests.functional.test_streaming import OPENAI, key_context, proxy_event
from chalicelib.tenancy.keys import KeyStore
from tests.support import EmulatorControl


class FakeRuntimeApi(ThreadingHTTPServer):
    """Hands out one event; records the answer chunk by chunk, with times."""

    daemon_threads = True

    def __init__(self, event: Any, deadline_ms: int, trace_id: str | None = None) -> None:
        self.event = event
        self.deadline_ms = deadline_ms
        self.trace_id = trace_id
        self.posts: list[dict[str, Any]] = []
        self.done = threading.Event()
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeRuntimeApi

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        assert self.path == "/2018-06-01/runtime/invocation/next"
        body = json.dumps(self.server.event).encode()
        self.send_response(200)
        for name, value in (("Lambda-Runtime-Aws-Request-Id", "inv-1"),
                            ("Lambda-Runtime-Deadline-Ms", str(self.server.deadline_ms)),
                            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:x"),
                            ("Content-Length", str(len(body))),
                            *([("Lambda-Runtime-Trace-Id", self.server.trace_id)]
                              if self.server.trace_id else [])):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        started = time.monotonic()
        record: dict[str, Any] = {"path": self.path, "headers": dict(self.headers),
                                  "chunks": [], "trailers": {}}
        if self.headers.get("Transfer-Encoding") == "chunked":
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    break
                record["chunks"].append((time.monotonic() - started, self.rfile.read(size)))
                self.rfile.readline()
            while (line := self.rfile.readline().strip()):
                name, _, value = line.decode().partition(": ")
                record["trailers"][name] = value
        else:
            record["body"] = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts.append(record)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.done.set()


def run_one(handler: Any, event: Any = None, seconds_left: float = 30,
            trace_id: str | None = None) -> dict[str, Any]:
    server = FakeRuntimeApi(event or {"hello": "world"}, int((time.time() + seconds_left) * 1000),
                            trace_id)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        serve_one(RuntimeClient(server.address, environ={"AWS_LAMBDA_FUNCTION_NAME": "fn"}),
                  handler)
        assert server.done.wait(10)
        return server.posts[-1]
    finally:
        server.shutdown()
        server.server_close()


def split(record: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    data = b"".join(piece for _, piece in record["chunks"])
    meta, _, body = data.partition(DELIMITER)
    return json.loads(meta), body


def test_streams_the_prelude_then_each_piece_as_it_is_produced() -> None:
    seen: dict[str, Any] = {}

    def handler(event: Any, context: Any) -> StreamedResponse:
        seen["event"], seen["left"] = event, context.get_remaining_time_in_millis()

        def body() -> Iterator[bytes]:
            for piece in (b"one ", b"two ", b"three"):
                time.sleep(0.15)
                yield piece
        return StreamedResponse(201, {"Content-Type": "text/event-stream"}, body(),
                                {"x-multi": ["a", "b"]})

    record = run_one(handler, seconds_left=12)
    assert record["path"] == "/2018-06-01/runtime/invocation/inv-1/response"
    headers = record["headers"]
    assert headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert headers["Content-Type"] == PRELUDE_CONTENT_TYPE
    assert seen["event"] == {"hello": "world"} and 11_000 < seen["left"] <= 12_000
    meta, body = split(record)
    assert meta == {"statusCode": 201, "headers": {"Content-Type": "text/event-stream"},
                    "multiValueHeaders": {"x-multi": ["a", "b"]}, "cookies": []}
    assert body == b"one two three"
    # The prelude goes at once; each piece when produced, not all at the end.
    times = [t for t, _ in record["chunks"]]
    assert times[0] < 0.1 and times[-1] - times[1] > 0.25
    assert record["trailers"] == {}


TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_each_invocation_runs_under_its_own_trace_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)  # restored after the test
    seen: list[str | None] = []

    def handler(event: Any, context: Any) -> StreamedResponse:
        seen.append(os.environ.get("_X_AMZN_TRACE_ID"))
        return StreamedResponse(200, {}, iter([b"ok"]))
    run_one(handler, trace_id=TRACE)
    run_one(handler)  # no trace id: none is left over from the one before
    assert seen == [TRACE, None]


def test_a_handler_failure_is_reported_as_an_invocation_error() -> None:
    def handler(event: Any, context: Any) -> StreamedResponse:
        raise RuntimeError("secret detail arn:aws:iam::123:role/x")

    record = run_one(handler)
    assert record["path"] == "/2018-06-01/runtime/invocation/inv-1/error"
    assert record["headers"]["Lambda-Runtime-Function-Error-Type"] == "Unhandled.RuntimeError"
    assert json.loads(record["body"]) == {"errorMessage": "The function failed.",
                                          "errorType": "RuntimeError"}


def test_a_body_that_fails_midway_ends_with_error_trailers() -> None:
    def body() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("boom")

    record = run_one(lambda event, context: StreamedResponse(200, {}, body()))
    assert split(record)[1] == b"partial"
    assert record["trailers"]["Lambda-Runtime-Function-Error-Type"] == "Unhandled.RuntimeError"


@pytest.mark.parametrize("path,payload", [
    ("/v1/chat/completions", OPENAI),
    ("/chat", {"prompt": "Hi", "stream": True}),
])
def test_the_app_streams_through_the_runtime_loop(
        make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl, path: str,
        payload: dict[str, Any]) -> None:
    make_api()
    authorizer, _ = key_context(key_store)
    emulator.configure(latency_ms=50, tokens_per_second=100)
    record = run_one(app_module.serve, proxy_event(path, payload, authorizer))
    meta, body = split(record)
    assert meta["statusCode"] == 200
    assert meta["headers"]["Content-Type"] == "text/event-stream"
    text = body.decode()
    assert text.endswith("data: [DONE]\n\n") if path != "/chat" else "event: end" in text
    # One chunk per event, spread over the generation.
    times = [t for t, _ in record["chunks"]]
    assert len(times) > 6 and times[-2] - times[1] > 0.05


def test_other_routes_answer_in_one_piece(make_api: ApiFactory, key_store: KeyStore) -> None:
    make_api()
    authorizer, _ = key_context(key_store)
    event = proxy_event("/chat", {"prompt": "Hi"}, authorizer)
    meta, body = split(run_one(app_module.serve, event))
    assert meta["statusCode"] == 200 and json.loads(body)["stop_reason"] == "stop"
    bad = proxy_event("/chat", {"prompt": "Hi"}, authorizer, content_type="text/plain")
    meta, body = split(run_one(app_module.serve, bad))
    assert meta["statusCode"] == 415
    assert json.loads(body)["error"]["code"] == "unsupported_media_type"
