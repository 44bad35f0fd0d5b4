"""The local stack as `make run` starts it, driven by real clients."""
from __future__ import annotations

import json
import shlex
import shutil
import socket
import struct
import subprocess
import time

import pytest

from tests.e2e.stack import PROJECT_DIR, LocalStack, alive
from tests.support import EmulatorControl, http

pytestmark = pytest.mark.e2e


def test_every_port_answers(stack: LocalStack) -> None:
    status, _, body = http("GET", stack.url + "/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = http("GET", stack.emulator_url + "/_emulator/stats")
    assert status == 200 and "invocations" in json.loads(body)
    status, _, _ = http("GET", f"http://127.0.0.1:{stack.aws_port}/moto-api/data.json")
    assert status == 200


def test_the_printed_curl_gets_the_model_answer(stack: LocalStack, emulator: EmulatorControl) -> None:
    assert shutil.which("curl"), "curl is needed for this test"
    line = next(ln.strip() for ln in stack.banner.splitlines() if ln.strip().startswith("curl"))
    result = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=30,
                            check=True)
    answer = json.loads(result.stdout)
    assert answer["text"] and answer["stop_reason"] in ("stop", "length")
    assert answer["usage"]["total_tokens"] > 0
    _, _, raw = http("GET", stack.emulator_url + "/_emulator/requests")
    sent = json.loads(raw)["requests"]
    assert len(sent) == 1 and "Hello, how are you?" in sent[0]["body"]["prompt"]


def test_stop_leaves_nothing_behind_and_restarts_at_once() -> None:
    first = LocalStack().start()
    http("POST", first.url + "/chat", {"prompt": "keep-alive traffic"},
         {"Content-Type": "application/json", **first.auth})
    started = first.stop()
    assert len(started) >= 2  # emulator and app at least
    assert first.proc is not None and first.proc.returncode is not None
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in started if alive(pid)]
    # Same ports again at once: TIME_WAIT must not count as "in use".
    again = LocalStack()
    again.env.update(PORT=str(first.app_port), BEDROCK_EMULATOR_PORT=str(first.emulator_port),
                     AWS_EMULATOR_PORT=str(first.aws_port))
    again.app_port = first.app_port
    again.start()
    assert http("GET", again.url + "/health")[0] == 200
    again.stop()


def test_a_busy_port_is_a_one_line_error(stack: LocalStack) -> None:
    clash = LocalStack(PORT=str(stack.app_port))
    result = subprocess.run(["make", "--no-print-directory", "run"], cwd=PROJECT_DIR, env=clash.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    ours = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("make run:")]
    assert ours == [f"make run: port {stack.app_port} is already in use on 127.0.0.1"]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO"])
def test_unknown_methods_are_405_in_the_envelope(stack: LocalStack, method: str) -> None:
    status, headers, body = http(method, stack.url + "/chat", None, stack.auth)
    assert status == 405 and headers["x-request-id"]
    assert json.loads(body)["error"]["code"] == "method_not_allowed"


def raw_exchange(stack: LocalStack, path: str, framing: bytes, body: bytes) -> tuple[int, bytes]:
    """One request written byte for byte (what http.client would refuse to
    send), and the status and de-chunked body of the answer."""
    with socket.create_connection(("127.0.0.1", stack.app_port), timeout=10) as conn:
        conn.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Authorization: Bearer " + stack.key.encode() + b"\r\n"
                     b"Content-Type: application/json\r\n" + framing + b"\r\n" + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        pieces = b""
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            pieces, rest = pieces + rest[:int(size, 16)], rest[int(size, 16) + 2:]
        rest = pieces
    return int(head.split()[1]), rest


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


CHAT = b'{"prompt": "Hello", "max_tokens": 5'


@pytest.mark.parametrize("path,body,kind", [
    ("/chat", chunked(CHAT[:10], CHAT[10:] + b"}"), "chat"),
    ("/chat", chunked(CHAT + b', "stream": true}'), "stream"),
    ("/v1/chat/completions", chunked(b'{"model": "us.meta.llama3-1-8b-instruct-v1:0", '
                                     b'"messages": [{"role": "user", "content": "Hi"}], ',
                                     b'"max_tokens": 5, "stream": true}'), "stream"),
])
def test_a_chunked_body_is_read(stack: LocalStack, path: str, body: bytes, kind: str) -> None:
    # API Gateway takes chunked request bodies; Chalice's local handler read
    # them as no body (400 "empty") and the chunks as the next request.
    status, answer = raw_exchange(stack, path, b"Transfer-Encoding: chunked\r\n", body)
    assert status == 200, answer
    assert (b"event: end" in answer or b"data: [DONE]" in answer) if kind == "stream" \
        else json.loads(answer)["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("framing,body", [
    (b"Content-Length: abc\r\n", CHAT + b"}"),
    (b"Content-Length: -1\r\n", CHAT + b"}"),
    (b"Content-Length: 1e2\r\n", CHAT + b"}"),
    (b"Transfer-Encoding: chunked\r\n", b"zz\r\n" + CHAT + b"}\r\n0\r\n\r\n"),
])
def test_a_body_that_cannot_be_delimited_is_a_400(stack: LocalStack, framing: bytes,
                                                  body: bytes) -> None:
    status, answer = raw_exchange(stack, "/chat", framing, body)
    assert status == 400  # before: the connection dropped without an answer
    assert json.loads(answer)["error"]["code"] == "invalid_request"


def test_a_client_resetting_an_idle_connection_leaves_no_traceback(stack: LocalStack) -> None:
    # Connection pools reset idle keep-alive connections; the server printed
    # socketserver's "Exception occurred during processing of request" and a
    # ConnectionResetError traceback for each.
    port = stack.url.rsplit(":", 1)[1]
    before = len(stack.output)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            assert conn.recv(65536).startswith(b"HTTP/1.1 200")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # closed with linger 0: a reset, while the server waits for the next request
    time.sleep(1.0)
    assert http("GET", stack.url + "/health")[0] == 200  # still serving
    after = stack.output[before:]
    assert "Traceback" not in after and "ConnectionResetError" not in after, after
