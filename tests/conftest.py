"""Fixtures: a Bedrock emulator over loopback, boto3 pointed at it, the app."""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from chalice.test import Client

import app as app_module
from chalicelib.bedrock import BedrockGateway, make_client
from chalicelib.completion import ChatService
from chalicelib.config import Settings
from devstack.bedrock_emulator import make_server
from tests.openapi_check import ValidatingHTTP
from tests.support import EmulatorControl

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def emulator(emulator_url: str) -> Iterator[EmulatorControl]:
    control = EmulatorControl(emulator_url)
    control.reset()
    yield control
    control.reset()


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch, emulator_url: str) -> None:
    # Whatever a test does, boto3 reaches only the emulator, never AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def runtime(emulator_url: str) -> Any:
    """A bedrock-runtime client on the emulator, with no retries (raw behaviour)."""
    return boto3.client("bedrock-runtime", endpoint_url=emulator_url, region_name="us-east-1",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))


class Api:
    """The app behind chalice.test.Client; every exchange is checked
    against openapi.yaml."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.http = ValidatingHTTP(client.http)


ApiFactory = Callable[..., Api]


@pytest.fixture
def make_api(emulator: EmulatorControl) -> Iterator[ApiFactory]:
    """Build a test client for the app with settings overrides."""
    clients: list[Client] = []

    def build(**overrides: Any) -> Api:
        settings = dataclasses.replace(Settings(), **overrides)
        service = ChatService(BedrockGateway(make_client(settings),
                                             retry_after=settings.throttle_retry_after_s))
        app_module.set_service(service, settings)
        client = Client(app_module.app, stage_name="dev")
        client.__enter__()
        clients.append(client)
        return Api(client)

    yield build
    for client in clients:
        client.__exit__(None, None, None)
    app_module.set_service(None)


@pytest.fixture
def api(make_api: ApiFactory) -> Api:
    return make_api()
