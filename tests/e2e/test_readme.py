"""The README's snippets, run as a newcomer would paste them, against `make run`."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.e2e.stack import PROJECT_DIR, LocalStack
from tests.support import EmulatorControl, http

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
def test_every_readme_curl_succeeds(stack: LocalStack, line: str) -> None:
    # As pasted into a shell, after `export LLM_API_KEY=<the printed key>`
    # (and, for the job example, `export JOB=<the job id>`).
    job = json.loads(http("POST", stack.url + "/chat/jobs", {"prompt": "readme"},
                          {"Content-Type": "application/json", **stack.auth})[2])["job_id"]
    result = subprocess.run(["bash", "-c", localise(line, stack) + " -w '\n%{http_code}'"],
                            capture_output=True, text=True, timeout=30, check=True,
                            env={**os.environ, "LLM_API_KEY": stack.key, "JOB": job})
    body, status = result.stdout.rsplit("\n", 1)
    expected = "202" if line.split()[2].endswith("/chat/jobs") else "200"
    assert status == expected, body
    assert json.loads(body)


def test_the_readme_respond_next_curl_scripts_the_next_answer(stack: LocalStack,
                                                              emulator: EmulatorControl) -> None:
    lines = [ln.strip() for ln in README.splitlines()
             if ln.strip().startswith("curl -s http://127.0.0.1:8001/_emulator/config")]
    assert len(lines) == 1
    command = lines[0].replace("http://127.0.0.1:8001", stack.emulator_url)
    # The README's entry matches "Paris": jobs queued by earlier tests, which
    # reach the emulator whenever the poller runs, pass it by unless they
    # mention Paris too. A few tries, each checked, all the same.
    for _ in range(3):
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                                timeout=30, check=True)
        assert "get_weather" in json.loads(result.stdout)["respond_next"][0]["text"]
        status, _, body = http("POST", stack.url + "/chat", {"prompt": "Weather in Paris?"},
                               {"Content-Type": "application/json", **stack.auth})
        assert status == 200, body
        if "get_weather" in body.decode():
            break
    else:
        recent = [(r.get("operation"), str(r.get("body", ""))[-160:]) for r in emulator.requests()[-8:]]
        pytest.fail(f"the scripted answer never reached /chat: {body!r}; last requests: {recent}")
    assert emulator.configure()["respond_next"] == []


def test_the_readme_openai_snippet_runs(stack: LocalStack) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    snippet = next(b for b in blocks if "from openai import OpenAI" in b)
    result = subprocess.run([sys.executable, "-c", localise(snippet, stack)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "LLM_API_KEY": stack.key})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and "CompletionUsage" in lines[0] and lines[1]


# The client set-up snippets, each told apart by the import that makes it.
CLIENT_SNIPPETS = {"openai-agents": "from agents import", "litellm": "import litellm",
                   "llamaindex": "from llama_index"}
# What each prints: the agent's Report after a tool call, text and its token count, text.
PRINTED = {"openai-agents": r"^city='.+' temperature_c=-?\d+$", "litellm": r"^\S.* \d+$",
           "llamaindex": r"^\S"}


@pytest.mark.parametrize("client", CLIENT_SNIPPETS)
def test_the_readme_client_set_up_runs(stack: LocalStack, emulator: EmulatorControl,
                                       client: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    (snippet,) = [b for b in blocks if CLIENT_SNIPPETS[client] in b]
    # LiteLLM's import would fetch its price list from the internet: offline here.
    env = {**os.environ, "LLM_API_KEY": stack.key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run([sys.executable, "-c", localise(snippet, stack)], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert re.match(PRINTED[client], result.stdout.strip()), result.stdout
    assert len(emulator.requests()) == (2 if client == "openai-agents" else 1)


def test_the_printed_export_line_matches_the_readme(stack: LocalStack) -> None:
    assert f"export LLM_API_KEY={stack.key}" in stack.banner
