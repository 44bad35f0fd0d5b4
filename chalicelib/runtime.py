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
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib.aws import make_sns_client, make_sqs_client, make_sts_client
from chalicelib.resilience.cooldowns import Cooldowns
from chalicelib.tenancy.alerts import BudgetAlerts, SnsNotifier
from chalicelib.models.bedrock import BedrockGateway, make_client
from chalicelib.cache import ResponseCache
from chalicelib.completion import ChatService
from chalicelib.config import Settings, call_deadline_s, load_settings
from chalicelib.dynamo import make_dynamodb_client
from chalicelib.models.embeddings import EmbeddingService
from chalicelib.jobs.store import JobStore
from chalicelib.responses.store import ResponseStore
from chalicelib.tenancy.keys import KeyStore
from chalicelib.tenancy.limits import Limiter
from chalicelib.jobs.queue import JobQueue
from chalicelib.tenancy.usage import UsageReader

if TYPE_CHECKING:
    from chalicelib.observe.telemetry import Telemetry

T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings | None = None, *, clock: Callable[[], float] = time.time,
                 bedrock_client: Any = None, dynamodb_client: Any = None,
                 sqs_client: Any = None, telemetry: Telemetry | None = None) -> None:
        self.clock = clock
        self._built: dict[str, Any] = {}
        if settings is not None:
            self._built["settings"] = settings
        # An injected Bedrock client (tests) serves both paths; otherwise each
        # path builds its own, with its own read timeout.
        self._bedrock_client = bedrock_client
        if dynamodb_client is not None:
            self._built["dynamodb"] = dynamodb_client
        if sqs_client is not None:
            self._built["sqs"] = sqs_client
        if telemetry is not None:
            self._built["telemetry"] = telemetry
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
    def cache(self) -> ResponseCache | None:
        settings = self.settings
        if not settings.cache_enabled:
            return None
        return self._once("cache", lambda: ResponseCache(self.dynamodb, settings.cache_table,
                                                         self.clock, settings.cache_ttl_s))

    @property
    def service(self) -> ChatService:
        """For requests answered while the client waits (API Gateway's 29 s)."""
        return self._once("service", lambda: ChatService(BedrockGateway(
            self._bedrock_client or make_client(self.settings),
            retry_after=self.settings.throttle_retry_after_s), self.cache,
            self.settings.model_prices, call_deadline_s(self.settings),
            regional=self._regional(None), cooldowns=self.cooldowns))

    def _regional(self, read_timeout_s: float | None) -> Callable[[str], BedrockGateway]:
        """A Bedrock gateway per other region (fallback links ``model@region``):
        a client of that region's endpoint, even when tests inject the
        function's own (the emulator tells regions apart by their signature)."""
        def gateway(region: str) -> BedrockGateway:
            client = make_client(self.settings, read_timeout_s, region)
            return BedrockGateway(client, retry_after=self.settings.throttle_retry_after_s)
        return gateway

    @property
    def cooldowns(self) -> Cooldowns | None:
        """The cooldowns of fallback links (None: the stage has no chains)."""
        if not self.settings.fallbacks:
            return None

        def opened(link: str, seconds: int) -> None:
            self.telemetry.cooldown_opened(link, seconds)
        return self._once("cooldowns", lambda: Cooldowns(
            self.dynamodb, self.settings.usage_table, self.clock,
            threshold=self.settings.cooldown_failures, steps_s=self.settings.cooldown_steps_s,
            opened=opened))

    @property
    def embeddings(self) -> EmbeddingService:
        """``/v1/embeddings``: the service's Bedrock gateway, the same cache and prices."""
        return self._once("embeddings", lambda: EmbeddingService(
            self.service.gateway, self.cache, self.settings.model_prices))

    @property
    def job_service(self) -> ChatService:
        """For the jobs worker: the same path, with a longer read timeout."""
        def build() -> ChatService:
            client = self._bedrock_client or make_client(
                self.settings, read_timeout_s=self.settings.jobs_read_timeout_s)
            return ChatService(BedrockGateway(client, retry_after=self.settings.throttle_retry_after_s),
                               self.cache, self.settings.model_prices,
                               call_deadline_s(self.settings, self.settings.jobs_read_timeout_s),
                               regional=self._regional(self.settings.jobs_read_timeout_s),
                               cooldowns=self.cooldowns)
        return self._once("job_service", build)

    @property
    def telemetry(self) -> Telemetry:
        # Imported here: Powertools loads on the first request that logs,
        # never in the authorizer's Lambda, which writes no telemetry.
        from chalicelib.observe.telemetry import Telemetry
        return self._once("telemetry", lambda: Telemetry(self.settings.stage,
                                                         self.settings.log_prompts))

    @property
    def jobs(self) -> JobStore:
        return self._once("jobs", lambda: JobStore(self.dynamodb, self.settings.jobs_table,
                                                   self.clock, self.settings.job_ttl_s))

    @property
    def responses(self) -> ResponseStore:
        """Stored Responses (``/v1/responses``), per tenant, with the stage's TTL."""
        return self._once("responses", lambda: ResponseStore(
            self.dynamodb, self.settings.responses_table, self.clock,
            self.settings.responses_ttl_s))

    @property
    def queue(self) -> JobQueue:
        return self._once("queue", lambda: JobQueue(self._once("sqs", make_sqs_client),
                                                    self.settings.jobs_queue))

    @property
    def dynamodb(self) -> Any:
        return self._once("dynamodb", make_dynamodb_client)

    @property
    def keys(self) -> KeyStore:
        return self._once("keys", lambda: KeyStore(self.dynamodb, self.settings.keys_table))

    @property
    def usage(self) -> UsageReader:
        return self._once("usage", lambda: UsageReader(self.dynamodb, self.settings.usage_table,
                                                       self.clock))

    @property
    def limiter(self) -> Limiter:
        return self._once("limiter",
                          lambda: Limiter(self.dynamodb, self.settings.usage_table, self.clock,
                                          self.settings.model_prices, self.budget_alerts))

    @property
    def budget_alerts(self) -> BudgetAlerts | None:
        """Budget alerts to the stack's topic (None without one). The SNS and
        STS clients are built only when a first alert is sent."""
        topic = self.settings.budget_alerts_topic
        if not topic:
            return None
        return self._once("budget_alerts", lambda: BudgetAlerts(
            self.dynamodb, self.settings.usage_table,
            SnsNotifier(lambda: self._once("sns", make_sns_client),
                        lambda: self._once("sts", make_sts_client), topic),
            self.settings.stage, self.clock))
