"""The Runtime builds each path's Bedrock client with that path's timeouts."""
from __future__ import annotations

from chalicelib.config import Settings
from chalicelib.runtime import Runtime


def read_timeout(service: object) -> float:
    return service._gateway._client.meta.config.read_timeout  # type: ignore[attr-defined]


def test_jobs_get_their_longer_read_timeout_whatever_was_built_first() -> None:
    runtime = Runtime(Settings(bedrock_read_timeout_s=18, jobs_read_timeout_s=120))
    assert read_timeout(runtime.service) == 18  # the synchronous path first
    assert read_timeout(runtime.job_service) == 120
    assert runtime.job_service is runtime.job_service  # built once
