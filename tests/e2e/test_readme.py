"""The README's snippets, run as a newcomer would paste them, against `make run`."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

from tests.e2e.stack import PROJECT_DIR, LocalStack

pytestmark = pytest.mark.e2e
README = (PROJECT_DIR / "README.md").read_text()


def localise(text: str, stack: LocalStack) -> str:
    return text.replace("http://127.0.0.1:8000", stack.url)


def curl_lines() -> list[str]:
    return [ln.strip() for ln in README.splitlines()
            if ln.strip().startswith("curl -s http://127.0.0.1:8000/")]


def test_readme_has_both_curls() -> None:
    paths = {line.split()[2].split("8000")[1] for line in curl_lines()}
    assert {"/chat", "/v1/chat/completions"} <= paths


@pytest.mark.parametrize("line", curl_lines())
def test_every_readme_curl_answers_200(stack: LocalStack, line: str) -> None:
    argv = [localise(part, stack) for part in shlex.split(line)]
    result = subprocess.run([*argv, "-w", "\n%{http_code}"], capture_output=True, text=True,
                            timeout=30, check=True)
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "200", body
    assert json.loads(body)


def test_the_readme_openai_snippet_runs(stack: LocalStack) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    snippet = next(b for b in blocks if "from openai import OpenAI" in b)
    result = subprocess.run([sys.executable, "-c", localise(snippet, stack)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and "CompletionUsage" in lines[0] and lines[1]
