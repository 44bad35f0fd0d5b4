"""Where a running ``make run`` says which ports it serves, for the commands that talk to it.

``make run`` takes its ports from the environment (``PORT``,
``BEDROCK_EMULATOR_PORT``, ``AWS_EMULATOR_PORT``), so a command started later
from another terminal cannot know them; the supervisor writes them, with its
pid, to ``.devstack/stack.json`` in the project directory once every service
answers, and removes the file when it stops. A file whose pid is gone (the
supervisor was killed outright) counts as no stack. Dev-only: never deployed.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATE_FILE = PROJECT_DIR / ".devstack" / "stack.json"


@dataclass(frozen=True)
class StackPorts:
    pid: int
    stage: str
    app_port: int
    bedrock_emulator_port: int
    aws_emulator_port: int


def write(ports: StackPorts, path: Path | None = None) -> None:
    path = path or STATE_FILE
    path.parent.mkdir(exist_ok=True)
    partial = path.with_name(f".{path.name}.{ports.pid}")
    partial.write_text(json.dumps(asdict(ports)))
    partial.replace(path)  # atomic: a reader never sees half a file


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(path: Path | None = None) -> StackPorts | None:
    """The running stack's ports, or None when no stack started here is running."""
    path = path or STATE_FILE
    try:
        ports = StackPorts(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return ports if _alive(ports.pid) else None


def clear(pid: int, path: Path | None = None) -> None:
    """Remove the file if it is still this supervisor's (a later stack may have replaced it)."""
    path = path or STATE_FILE
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass
