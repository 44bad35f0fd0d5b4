"""Helpers shared by the test tiers: free ports and the emulator's control API."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange with urllib; 4xx/5xx come back, not as exceptions."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class EmulatorControl:
    """The emulator's control API, as tests and benchmarks use it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        status, _, raw = http(method, self.base_url + path, body)
        if status != 200:
            raise AssertionError(f"{method} {path} -> {status}: {raw!r}")
        return json.loads(raw)

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "/_emulator/config", changes)

    def respond_next(self, *texts: str) -> dict[str, Any]:
        """Script the next invocations' answers, one text each, in order."""
        return self.configure(respond_next=list(texts))

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_emulator/stats")

    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_emulator/requests")["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "/_emulator/requests")


def hostile_schema() -> dict[str, Any]:
    """Issue 19's shape: items x anyOf branches x a backtracking pattern, each
    search just inside its own 50 ms bound. Every item fails the slow branches
    before the last one accepts it, so no early problem cuts the check short
    (about 850 bytes as JSON)."""
    slow = {"type": "string", "pattern": "^(a|aa)+$"}
    return {"type": "object", "required": ["a"], "properties": {"a": {
        "type": "array", "items": {"anyOf": [slow] * 18 + [{"type": "string"}]}}}}


def hostile_answer() -> dict[str, Any]:
    """About 1.5 KB of strings that make each of those searches slow."""
    return {"a": ["a" * 19 + "!"] * 64}
