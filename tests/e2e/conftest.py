"""One local stack, started with `make run`, shared by the end-to-end tests."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    running = LocalStack().start()
    yield running
    running.stop()


@pytest.fixture
def emulator(stack: LocalStack) -> Iterator[EmulatorControl]:
    control = EmulatorControl(stack.emulator_url)
    control.reset()
    yield control
    control.reset()
