"""Start and stop the local stack exactly as a user does: ``make run``."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support import free_port, http

PROJECT_DIR = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    found: set[int] = set()
    stack = [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not read its status yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


class LocalStack:
    def __init__(self, **env: str) -> None:
        self.app_port = free_port()
        self.emulator_port = free_port()
        self.env = {**os.environ, "PORT": str(self.app_port),
                    "BEDROCK_EMULATOR_PORT": str(self.emulator_port), **env}
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def start(self, timeout: float = 60) -> LocalStack:
        self.proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=PROJECT_DIR,
                                     env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"make run exited: {self.proc.stdout.read()}")  # type: ignore
            try:
                if http("GET", self.url + "/health", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"stack did not start: {self.output}")

    def stop(self) -> set[int]:
        """SIGTERM to make itself; returns the processes it had started."""
        assert self.proc is not None
        started = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.output, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate()
        return started
