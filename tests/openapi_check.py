"""Validate real exchanges against openapi.yaml, so the description stays true.

Responses are always validated (status documented, headers, body schema).
Requests are validated when the app accepted them (2xx): the suite sends
invalid bodies on purpose, and those must be refused, not described.
Server-sent events are validated one ``data:`` event at a time.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
HOST = "http://127.0.0.1:8000"


def _decode_text(value: Any, **_: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


SPEC = OpenAPI.from_file_path(
    str(SPEC_PATH), config=Config(extra_media_type_deserializers={
        media: _decode_text for media in ("text/event-stream", "text/css", "text/javascript",
                                          "image/svg+xml", "text/csv")}))
_DOCUMENT = yaml.safe_load(SPEC_PATH.read_text())
_REGISTRY = Registry().with_resource(
    "urn:openapi", Resource.from_contents(_DOCUMENT, default_specification=DRAFT202012))
CHUNK = OAS31Validator({"$ref": "urn:openapi#/components/schemas/ChatCompletionChunk"},
                       registry=_REGISTRY)
TEXT_CHUNK = OAS31Validator({"$ref": "urn:openapi#/components/schemas/TextCompletionChunk"},
                            registry=_REGISTRY)
ERROR = OAS31Validator({"$ref": "urn:openapi#/components/schemas/Error"}, registry=_REGISTRY)
NATIVE_EVENT = OAS31Validator({"$ref": "urn:openapi#/components/schemas/NativeStreamEvent"},
                              registry=_REGISTRY)
NATIVE_EVENTS = {"start", "delta", "tool_call", "end", "error"}
MESSAGES_EVENT = OAS31Validator({"$ref": "urn:openapi#/components/schemas/MessagesStreamEvent"},
                                registry=_REGISTRY)
MESSAGES_ERROR = OAS31Validator({"$ref": "urn:openapi#/components/schemas/MessagesErrorBody"},
                                registry=_REGISTRY)
RESPONSE_EVENT = OAS31Validator({"$ref": "urn:openapi#/components/schemas/ResponseStreamEvent"},
                                registry=_REGISTRY)


def _content_type(headers: dict[str, str], default: str = "application/json") -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get("content-type", default).split(";")[0].strip()


def sse_events(body: bytes) -> list[Any]:
    """The JSON events of a server-sent event body; asserts the [DONE] ending."""
    blocks = [b for b in body.decode("utf-8").split("\n\n") if b]
    assert blocks[-1] == "data: [DONE]", blocks[-1]
    events = []
    for block in blocks[:-1]:
        assert block.startswith("data: "), block
        events.append(json.loads(block[len("data: "):]))
    return events


def native_events(body: bytes) -> list[tuple[str, Any]]:
    """The (name, data) events of a ``/chat`` stream: start first, end or error last."""
    events = []
    for block in [b for b in body.decode("utf-8").split("\n\n") if b]:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        events.append((name[len("event: "):], json.loads(data[len("data: "):])))
    assert events[0][0] == "start" and events[-1][0] in ("end", "error"), events
    return events


def messages_events(body: bytes) -> list[tuple[str, Any]]:
    """The (name, data) events of a Messages stream: each ``event:`` name is
    its data's ``type``; message_start first, message_stop or error last."""
    events = []
    for block in [b for b in body.decode("utf-8").split("\n\n") if b]:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        event = (name[len("event: "):], json.loads(data[len("data: "):]))
        assert event[0] == event[1]["type"], block
        events.append(event)
    assert events[0][0] == "message_start" and events[-1][0] in ("message_stop", "error"), events
    return events


def response_events(body: bytes) -> list[dict[str, Any]]:
    """The events of a ``/v1/responses`` stream: each named as its ``type``,
    with rising sequence numbers, created first, completed/incomplete/failed last."""
    events = []
    for block in [b for b in body.decode("utf-8").split("\n\n") if b]:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        event = json.loads(data[len("data: "):])
        assert event["type"] == name[len("event: "):], block
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created", events[0]
    assert events[-1]["type"] in ("response.completed", "response.incomplete",
                                  "response.failed"), events[-1]
    return events


def check_exchange(method: str, url: str, headers: dict[str, str], body: bytes | None,
                   status: int, response_headers: dict[str, str], response_body: bytes) -> None:
    parts = urlsplit(url)
    if status == 405:
        # A method the description does not list, on a path it does.
        assert parts.path in _DOCUMENT["paths"], parts.path
        assert method.lower() not in _DOCUMENT["paths"][parts.path]
        (MESSAGES_ERROR if parts.path.startswith("/v1/messages") else ERROR).validate(
            json.loads(response_body))
        return
    request = MockRequest(HOST, method.lower(), parts.path, args=parse_qs(parts.query),
                          headers=headers, data=body or None,
                          content_type=_content_type(headers))
    if 200 <= status < 300:
        SPEC.validate_request(request)
    media = _content_type(response_headers)
    if media == "text/event-stream":
        # The description's schema is one event's (as schemathesis and OpenAPI
        # 3.2 read event streams): the events are checked one by one below.
        documented = _DOCUMENT["paths"][parts.path][method.lower()]["responses"][str(status)]
        assert media in documented["content"], (parts.path, status)
    else:
        SPEC.validate_response(request, MockResponse(response_body, status,
                                                     headers=response_headers, content_type=media))
    if media == "text/event-stream" and parts.path == "/v1/messages":
        for _, event in messages_events(response_body):
            MESSAGES_EVENT.validate(event)
    elif media == "text/event-stream" and parts.path == "/chat":
        for name, event in native_events(response_body):
            assert name in NATIVE_EVENTS
            NATIVE_EVENT.validate(event)
    elif media == "text/event-stream" and parts.path == "/v1/responses":
        for event in response_events(response_body):
            RESPONSE_EVENT.validate(event)
    elif media == "text/event-stream":
        validator = TEXT_CHUNK if parts.path == "/v1/completions" else CHUNK
        for event in sse_events(response_body):
            validator.validate(event)


class ValidatingHTTP:
    """Wraps chalice.test's HTTP client: every exchange is checked. With a
    key, requests carry ``Authorization: Bearer <key>`` unless they set it."""

    def __init__(self, http: Any, key: str | None = None) -> None:
        self._http = http
        self._key = key

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | str = b"") -> Any:
        headers = dict(headers or {})
        if self._key and not any(h.lower() in ("authorization", "x-api-key") for h in headers):
            headers["Authorization"] = f"Bearer {self._key}"
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        response = self._http.request(method, path, headers=headers, body=raw)
        check_exchange(method, path, headers, raw, response.status_code, response.headers,
                       response.body)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)
