"""A local Bedrock Runtime that speaks the real wire protocol.

Unmodified boto3 reaches it through ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (or
``endpoint_url``) with dummy credentials. It serves InvokeModel,
InvokeModelWithResponseStream for the Llama 3.x ids of ``chalicelib.models.registry``,
Converse and ConverseStream for every registered chat model (tools answered
with ``toolUse``: ``devstack.converse_wire``), InvokeModel for the Titan and
Cohere embedding models (with the token-count headers); answers errors as Bedrock does (status,
``x-amzn-ErrorType``, JSON ``message``); streams with AWS event-stream framing.
Text comes from ``devstack.generator``: deterministic, token counts consistent
(prompts counted with Meta's Llama 3 tokenizer, ``devstack.prompt_tokens``);
prompts offering tools or asking for JSON get calls and documents built from
their schemas (``devstack.llama_answers``).

A control API on the same port drives it from tests and benchmarks::

    GET  /_emulator/requests   recorded invocations, arrival order
    DELETE /_emulator/requests clear them
    GET|POST /_emulator/config read | change latency, faults, throttle, seed,
                               scripted answers (respond_next, optionally matched)
    GET  /_emulator/stats      invocations, in flight, throttles, errors
    POST /_emulator/reset      defaults, zero stats, no recorded requests

Run it with ``python -m devstack.bedrock_emulator --port 8001``.
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import struct
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from chalicelib.models.registry import REGISTRY
from devstack.bedrock_wire import (ERROR_STATUS, STREAM_EXCEPTIONS, Answer, BedrockError,
                                   apply_stop, check_model, parse_llama_body)
from devstack import guardrail_filter
from devstack.converse_wire import embed, parse_converse, response_fields
from devstack.emulator_state import ControlError, State
from devstack.generator import count_tokens, generate, scripted
from devstack.prompt_tokens import count_prompt_tokens

CHUNKS_BEFORE_CONNECTION_FAULT = 2
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,]+/[0-9]{8}/([a-z0-9-]+)/")
OPERATIONS = {
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "count-tokens": "CountTokens",
}


def _checked_answer(guard: guardrail_filter.Spec,
                    pieces: list[str]) -> tuple[list[str], tuple[str, int]]:
    """A generated answer after the guardrail (synchronous mode: checked whole
    before any of it is sent), with its verdict: the action Bedrock reports
    and the tokens the model generated, billed whatever is sent."""
    text = "".join(pieces)
    verdict, sent = guardrail_filter.assess_output(guard, text)
    if verdict == guardrail_filter.NONE:
        return pieces, ("NONE", count_tokens(text))
    return [sent], ("INTERVENED", count_tokens(text))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BedrockEmulator"
    # Without this, headers and body in separate sends stall ~40 ms per answer
    # on keep-alive connections (Nagle against delayed ACK; see SPEC.md).
    disable_nagle_algorithm = True
    state: State  # set by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    # --- plumbing

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        headers = {"Content-Length": str(len(body)), "x-amzn-RequestId": str(uuid.uuid4()),
                   **headers}
        lines += [f"{k}: {v}" for k, v in headers.items()]
        # One send for headers and body (see disable_nagle_algorithm).
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(),
                   {"Content-Type": "application/json", **(headers or {})})

    def _error(self, err: BedrockError) -> None:
        self._json(ERROR_STATUS[err.name], {"message": err.message},
                   {"x-amzn-ErrorType": f"{err.name}:http://internal.amazon.com/coral/com.amazon.bedrock/"})

    def _start_stream(self) -> None:
        self.send_response_only(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("X-Amzn-Bedrock-Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()

    def stream_message(self, message: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(message), message))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # --- routing

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        raw = self._read_body()
        try:
            if path.startswith("/_emulator/"):
                self._control(method, path, raw)
                return
            parts = path.split("/")
            if method == "POST" and len(parts) == 4 and parts[1] == "model" and parts[3] in OPERATIONS:
                self._invoke(OPERATIONS[parts[3]], unquote(parts[2]), raw)
                return
            self._json(404, {"message": f"Unknown operation {method} {path}"},
                       {"x-amzn-ErrorType": "UnknownOperationException"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; nothing to answer

    def _control(self, method: str, path: str, raw: bytes) -> None:
        state = self.state
        route = (method, path)
        if route == ("GET", "/_emulator/requests"):
            with state.lock:
                self._json(200, {"requests": list(state.requests)})
        elif route == ("DELETE", "/_emulator/requests"):
            with state.lock:
                state.requests.clear()
            self._json(200, {"requests": []})
        elif route == ("GET", "/_emulator/stats"):
            self._json(200, state.stats())
        elif route == ("GET", "/_emulator/config"):
            with state.lock:
                self._json(200, state.config.public())
        elif route == ("POST", "/_emulator/config"):
            try:
                self._json(200, state.configure(json.loads(raw or b"{}")))
            except (ValueError, ControlError) as exc:
                self._json(400, {"message": str(exc)})
        elif route == ("POST", "/_emulator/reset"):
            state.reset()
            self._json(200, {"status": "reset"})
        else:
            self._json(404, {"message": f"No control route {method} {path}"})

    # --- invocations

    def _invoke(self, operation: str, model_id: str, raw: bytes) -> None:
        state = self.state
        try:
            recorded: Any = json.loads(raw)
        except (ValueError, RecursionError):
            recorded = raw.decode("utf-8", "replace")
        state.record(operation, model_id, recorded,
                     {k: v for k, v in self.headers.items()
                      if k.lower().startswith("x-amzn-bedrock-guardrail")}, self._region())
        if operation == "CountTokens":
            self._count_tokens(model_id, recorded)
            return
        try:
            context = check_model(model_id)
            converse = operation.startswith("Converse")
            spec = REGISTRY[model_id]
            if not converse and spec.kind == "embedding":
                if operation != "InvokeModel":
                    raise BedrockError("ValidationException",
                                       "The model is unsupported for streaming.")
                self._embedding(model_id, raw)
                return
            if not converse and spec.family != "llama3":
                raise BedrockError("ValidationException", "The emulator serves this model "
                                   "through Converse and ConverseStream only.")
            body = (parse_converse(raw, model_id, operation == "ConverseStream") if converse
                    else parse_llama_body(raw))
            # Converse counts its tool definitions too (parse_converse).
            prompt_tokens = body.get("prompt_tokens") or count_prompt_tokens(body["prompt"])
            if prompt_tokens > context:
                raise BedrockError(
                    "ValidationException",
                    f"This model's maximum context length is {context} tokens. "
                    "Please reduce the length of the prompt.")
            named = guardrail_filter.named(operation, self.headers, recorded)
            guard = (None if named is None
                     else guardrail_filter.find(state.config.guardrails, *named))
        except BedrockError as err:
            state.count_error(err.name)
            self._error(err)
            return
        injected, cfg, admitted = state.admit(str(body["prompt"]), model_id, self._region())
        streaming = operation in STREAM_EXCEPTIONS
        # Only an admitted fault may come mid-stream (a throttle or an outage
        # refuses the call before its first byte).
        in_stream = (admitted and streaming and cfg.fail_in_stream
                     and injected in STREAM_EXCEPTIONS[operation])
        if injected is not None and not in_stream:
            if admitted:
                state.release()
            self._error(BedrockError(injected))
            return
        released = False

        def release() -> None:
            # Leave "in flight" before the last bytes go out, so that a
            # client that has its answer never sees itself still counted.
            nonlocal released
            if not released:
                released = True
                state.release()
        try:
            if cfg.latency_ms:
                time.sleep(cfg.latency_ms / 1000)
            tool_use = None
            verdict = None
            if guard is not None and guardrail_filter.assess_input(
                    guard, guardrail_filter.prompt_text(operation, recorded, body["prompt"])):
                # Blocked before the model: nothing generated, nothing billed.
                gen = scripted(guard.blocked_input_message, body["max_gen_len"])
                prompt_tokens, verdict = 0, ("INTERVENED", 0)
            elif cfg.respond_next:  # a scripted answer, taken by admit()
                gen = scripted(cfg.respond_next[0], body["max_gen_len"])
            elif converse and body.get("tool_use"):
                tool_use = body["tool_use"]
                gen = scripted("", body["max_gen_len"])
            else:
                gen = generate(model_id, body["prompt"], temperature=body["temperature"],
                               top_p=body["top_p"], max_tokens=body["max_gen_len"], seed=cfg.seed)
            pieces = list(gen.pieces)
            stop_reason = gen.stop_reason
            extra = None
            if converse and verdict is None:
                pieces, stop_reason, matched = apply_stop(pieces, stop_reason, body["stop"])
                extra = response_fields(model_id, body["response_fields"], matched)
            if guard is not None and verdict is None and tool_use is None:
                pieces, verdict = _checked_answer(guard, pieces)
            cache = (state.cache_prefixes(body["cache_points"], spec.cache_min_tokens)
                     if converse and body.get("cache_points") else None)
            answer = Answer(operation, pieces, stop_reason, prompt_tokens, cfg, tool_use, cache,
                            extra, verdict)
            if streaming:
                self._start_stream()
                answer.stream(_FaultySink(self, cfg), injected if in_stream else None)
                release()
                self._end_stream()
            else:
                answer.pace()
                payload = answer.body()
                release()
                self._send(200, *payload)
        finally:
            release()

    def _region(self) -> str:
        """The region the caller signed for (its SigV4 credential scope), as
        Bedrock's regional endpoint is chosen; "" when unsigned."""
        found = CREDENTIAL_SCOPE.search(self.headers.get("Authorization", ""))
        return found.group(1) if found else ""

    def _count_tokens(self, model_id: str, body: Any) -> None:
        """CountTokens of a Converse input: the input tokens Converse would
        report for it, for the models Bedrock counts; no inference, no faults."""
        try:
            # A foundation model id (FoundationModelVersionIdentifier), never a
            # profile's, even for a model served only through profiles.
            served = [spec for spec in REGISTRY.values()
                      if (spec.base_id or spec.id) == model_id and spec.count_tokens]
            if not served or model_id != served[0].base_id:
                raise BedrockError("ValidationException",
                                   "The provided model doesn't support counting tokens.")
            given = body.get("input") if isinstance(body, dict) else None
            if not isinstance(given, dict) or list(given) != ["converse"]:
                raise BedrockError("ValidationException",
                                   "input must hold exactly one of converse or invokeModel.")
            converse_input = given["converse"]
            if not isinstance(converse_input, dict) or "inferenceConfig" in converse_input:
                raise BedrockError("ValidationException", "input.converse takes messages, "
                                   "system, toolConfig and additionalModelRequestFields.")
            tokens = parse_converse(json.dumps(converse_input).encode(), served[0].id,
                                    False)["prompt_tokens"]
        except BedrockError as err:
            self.state.count_error(err.name)
            self._error(err)
            return
        self._json(200, {"inputTokens": tokens})

    def _embedding(self, model_id: str, raw: bytes) -> None:
        """An embedding answer, with Bedrock's token-count headers. Faults,
        throttles and latency apply as to chat models."""
        state = self.state
        try:
            payload, tokens = embed(model_id, raw)
        except BedrockError as err:
            state.count_error(err.name)
            self._error(err)
            return
        injected, cfg, admitted = state.admit(model_id=model_id, region=self._region())
        try:
            if injected is not None:
                self._error(BedrockError(injected))
                return
            if cfg.latency_ms:
                time.sleep(cfg.latency_ms / 1000)
            self._send(200, json.dumps(payload).encode(), {
                "Content-Type": "application/json",
                "X-Amzn-Bedrock-Input-Token-Count": str(tokens),
                "X-Amzn-Bedrock-Invocation-Latency": str(cfg.latency_ms)})
        finally:
            if admitted:
                state.release()


class _FaultySink:
    """Passes stream messages on; after the first ones, stalls or resets the
    connection, or corrupts one message, when the configuration asks for it."""

    def __init__(self, handler: Handler, cfg: Any) -> None:
        self._handler = handler
        self._cfg = cfg
        self._sent = 0

    def stream_message(self, message: bytes) -> None:
        if self._sent == CHUNKS_BEFORE_CONNECTION_FAULT:
            if self._cfg.reset_in_stream:
                sock = self._handler.connection
                # Linger 0: close sends a TCP reset, as a dropped connection does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                self._handler.close_connection = True
                raise ConnectionResetError("reset_in_stream")
            if self._cfg.stall_in_stream_ms:
                time.sleep(self._cfg.stall_in_stream_ms / 1000)
            if self._cfg.malformed_in_stream:  # one bit of its trailing CRC flipped
                message = message[:-1] + bytes([message[-1] ^ 1])
        self._sent += 1
        self._handler.stream_message(message)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a port in TIME_WAIT is not "in use"
    request_queue_size = 1024  # bursts must queue, not be reset

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its read timeout) is not the emulator's error.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def make_server(host: str, port: int, state: State | None = None,
                verbose: bool = False) -> EmulatorServer:
    handler = type("BoundHandler", (Handler,), {"state": state or State()})
    server = EmulatorServer((host, port), handler)
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        server = make_server(args.host, args.port, verbose=args.verbose)
    except OSError as exc:
        print(f"bedrock emulator: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    print(f"Bedrock emulator on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
