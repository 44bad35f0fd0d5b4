"""AWS event-stream framing (application/vnd.amazon.eventstream), encode side.

A message is a 12-byte prelude ``!III`` (total length, headers length, CRC32 of
the first 8 bytes), the headers, the payload and a CRC32 of everything before
it. Headers here are all strings: 1-byte name length, name, type 7, 2-byte
value length, value. botocore's ``EventStreamBuffer`` decodes exactly this.
"""
from __future__ import annotations

import json
import struct
import zlib
from typing import Any

_STRING = 7


def _header(name: str, value: str) -> bytes:
    n = name.encode("utf-8")
    v = value.encode("utf-8")
    return struct.pack("!B", len(n)) + n + struct.pack("!BH", _STRING, len(v)) + v


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    header_bytes = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack("!II", total, len(header_bytes))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + header_bytes + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(event_type: str, body: dict[str, Any]) -> bytes:
    """An ``event`` message whose payload is the event's JSON members."""
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json",
         ":message-type": "event"},
        json.dumps(body, separators=(",", ":")).encode("utf-8"))


def exception(exception_type: str, message: str) -> bytes:
    """An ``exception`` message; boto3 raises it as EventStreamError."""
    return encode_message(
        {":exception-type": exception_type, ":content-type": "application/json",
         ":message-type": "exception"},
        json.dumps({"message": message}).encode("utf-8"))
