"""Zero-latency Bedrock and DynamoDB for the bench: real botocore clients, HTTP served from memory.

A client built by the app's own factories keeps everything it does in
production (parameter validation, serialisation, SigV4 signing, retries'
bookkeeping, response parsing, event-stream decoding); only the socket is
replaced, through botocore's ``before-send`` event, whose handler may answer
a request itself (the hook botocore's own Stubber sits beside). The answers
are the real wire shapes, built by the emulator's own code:

- Bedrock ``InvokeModelWithResponseStream``: the AWS event stream the emulator
  sends for that body (``devstack.bedrock_wire.Answer``, the same generator,
  prompt counted with Meta's tokenizer), computed once per distinct body and
  then replayed; ``InvokeModel``: its JSON body.
- DynamoDB (JSON 1.0): ``UpdateItem`` answers ``{"Attributes": {}}`` (or
  nothing, as DynamoDB does without ReturnValues), with a correct
  ``x-amz-crc32``, which botocore checks.

So the floor and the handler pay the same client costs and no I/O, and what
is left between them is the handler's own code. moto and the emulator over
HTTP stay the other half of the bench (bench/overhead.py).
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from devstack.bedrock_wire import Answer
from devstack.emulator_state import Config
from devstack.generator import generate
from devstack.prompt_tokens import count_prompt_tokens

Reply = tuple[int, dict[str, str], bytes]


class Body:
    """What botocore reads a response from: ``stream()`` (content, event
    streams) and ``read()`` (StreamingBody)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def stream(self, amt: int = 1024, decode_content: bool | None = None) -> Iterator[bytes]:
        while self._at < len(self._data):
            yield self.read(amt)

    def read(self, amt: int | None = None) -> bytes:
        end = len(self._data) if amt is None else min(len(self._data), self._at + amt)
        piece, self._at = self._data[self._at:end], end
        return piece

    def close(self) -> None:
        self._at = len(self._data)

    def release_conn(self) -> None:
        pass


def serve(client: Any, respond: Callable[[AWSPreparedRequest], Reply]) -> Any:
    """Answer every request ``client`` sends with ``respond`` (no socket)."""
    def send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        status, headers, data = respond(request)
        return AWSResponse(request.url, status, headers, Body(data))

    client.meta.events.register("before-send", send)
    return client


class _Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def stream_message(self, message: bytes) -> None:
        self.messages.append(message)


def _body(request: AWSPreparedRequest) -> bytes:
    body = request.body
    if body is None:
        return b""
    return body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else body.read()


class Bedrock:
    """InvokeModel and InvokeModelWithResponseStream for Llama, as the emulator answers them."""

    def __init__(self) -> None:
        self._replies: dict[tuple[str, bytes], Reply] = {}

    def __call__(self, request: AWSPreparedRequest) -> Reply:
        raw = _body(request)
        key = (request.url, raw)
        if key not in self._replies:
            self._replies[key] = self._answer(request.url, raw)
        return self._replies[key]

    @staticmethod
    def _answer(url: str, raw: bytes) -> Reply:
        path = url.split("/model/", 1)[1]
        model_id, action = unquote(path.rsplit("/", 1)[0]), path.rsplit("/", 1)[1]
        body = json.loads(raw)
        gen = generate(model_id, body["prompt"], temperature=body.get("temperature", 0.5),
                       top_p=body.get("top_p", 0.9), max_tokens=body.get("max_gen_len", 512),
                       seed=0)
        streamed = action == "invoke-with-response-stream"
        answer = Answer("InvokeModelWithResponseStream" if streamed else "InvokeModel",
                        list(gen.pieces), gen.stop_reason, count_prompt_tokens(body["prompt"]),
                        Config())
        if not streamed:
            data, headers = answer.body()
            return 200, headers, data
        sink = _Sink()
        answer.stream(sink, None)
        return 200, {"Content-Type": "application/vnd.amazon.eventstream",
                     "X-Amzn-Bedrock-Content-Type": "application/json"}, b"".join(sink.messages)


def dynamodb(request: AWSPreparedRequest) -> Reply:
    """UpdateItem (and any other call) answered at once in DynamoDB's JSON 1.0 shape."""
    operation = dict(request.headers).get("X-Amz-Target", b"")
    operation = operation.decode() if isinstance(operation, bytes) else operation
    params = json.loads(_body(request) or b"{}")
    reply: dict[str, Any] = {}
    if operation.endswith(".UpdateItem") and params.get("ReturnValues", "NONE") != "NONE":
        reply = {"Attributes": {}}
    data = json.dumps(reply).encode()
    return 200, {"Content-Type": "application/x-amz-json-1.0",
                 "x-amz-crc32": str(zlib.crc32(data))}, data
