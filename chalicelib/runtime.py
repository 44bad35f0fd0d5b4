"""The process's dependencies, each built on first use and then kept.

Lambda keeps a process warm between requests, so clients are built once. The
authorizer (its own Lambda once deployed) touches only ``keys``, so it never
builds a Bedrock client. Building happens under a lock: the local server is
threaded, and botocore sessions are not safe to build clients from
concurrently. Tests build a Runtime with their own settings, clients or clock.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from chalicelib.bedrock import BedrockGateway, make_client
from chalicelib.completion import ChatService
from chalicelib.config import Settings, load_settings
from chalicelib.dynamo import make_dynamodb_client
from chalicelib.keys import KeyStore
from chalicelib.limits import Limiter

T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings | None = None, *, clock: Callable[[], float] = time.time,
                 bedrock_client: Any = None, dynamodb_client: Any = None) -> None:
        self.clock = clock
        self._built: dict[str, Any] = {}
        if settings is not None:
            self._built["settings"] = settings
        if bedrock_client is not None:
            self._built["bedrock"] = bedrock_client
        if dynamodb_client is not None:
            self._built["dynamodb"] = dynamodb_client
        self._lock = threading.RLock()

    def _once(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]  # type: ignore[no-any-return]

    @property
    def settings(self) -> Settings:
        return self._once("settings", load_settings)

    @property
    def service(self) -> ChatService:
        return self._once("service", lambda: ChatService(BedrockGateway(
            self._once("bedrock", lambda: make_client(self.settings)),
            retry_after=self.settings.throttle_retry_after_s)))

    @property
    def dynamodb(self) -> Any:
        return self._once("dynamodb", make_dynamodb_client)

    @property
    def keys(self) -> KeyStore:
        return self._once("keys", lambda: KeyStore(self.dynamodb, self.settings.keys_table))

    @property
    def limiter(self) -> Limiter:
        return self._once("limiter",
                          lambda: Limiter(self.dynamodb, self.settings.usage_table, self.clock))
