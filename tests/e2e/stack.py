"""Start and stop the local stack exactly as a user does: ``make run``."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.support import free_port

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


LOCAL_KEY = "e2e-local-key-0123456789abcdefghij"


class LocalStack:
    def __init__(self, **env: str) -> None:
        self.app_port = free_port()
        self.emulator_port = free_port()
        self.aws_port = free_port()
        self.key = LOCAL_KEY
        self.env = {**os.environ, "PORT": str(self.app_port),
                    "BEDROCK_EMULATOR_PORT": str(self.emulator_port),
                    "AWS_EMULATOR_PORT": str(self.aws_port), "LOCAL_API_KEY": LOCAL_KEY,
                    "JOBS_MAX_CONCURRENCY": "4", "JOBS_RETRY_BASE_S": "0", **env}
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        return "".join(self._lines)

    @property
    def banner(self) -> str:
        """What make run printed once ready (URLs, key, curl)."""
        text = self.output
        return text[text.index("Local stack is up"):] if "Local stack is up" in text else ""

    def _drain(self) -> None:
        # Read continuously: request logs must never fill the pipe and stall the app.
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def keys_command(self, *argv: str) -> str:
        """The operator command, as an operator runs it against this stack."""
        import subprocess as sp
        import sys
        result = sp.run([sys.executable, "scripts/keys.py", "--local", *argv], cwd=PROJECT_DIR,
                        env={**self.env, "AWS_EMULATOR_PORT": str(self.aws_port)},
                        capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start(self, timeout: float = 60) -> LocalStack:
        self.proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=PROJECT_DIR,
                                     env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"make run exited: {self.output}")
            if "Ctrl-C stops everything" in self.output:
                return self
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"stack did not start: {self.output}")

    def stop(self) -> set[int]:
        """SIGTERM to make itself; returns the processes it had started."""
        assert self.proc is not None
        started = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        return started
