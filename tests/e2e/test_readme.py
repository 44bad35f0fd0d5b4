"""The snippets of the README and of every page of docs/, run as a newcomer would paste them,
against `make run`.

Every ``curl -s http://127.0.0.1:8000/...`` line must answer 2xx with JSON; every ```python block
runs: the SDK set-up, the client set-ups, the emulator's boto3 call, and the blocks that go on
from the SDK set-up (``client`` and ``model`` already made) after it.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.e2e.stack import PROJECT_DIR, LocalStack
from tests.support import EmulatorControl, http

pytestmark = pytest.mark.e2e
README = (PROJECT_DIR / "README.md").read_text()
PAGES: dict[str, str] = {"README.md": README, **{
    str(path.relative_to(PROJECT_DIR)): path.read_text()
    for path in sorted((PROJECT_DIR / "docs").rglob("*.md"))}}


def localise(text: str, stack: LocalStack) -> str:
    return (text.replace("http://127.0.0.1:8000", stack.url)
                .replace("http://127.0.0.1:8001", stack.emulator_url))


def curl_lines() -> list[str]:
    lines = (ln.strip() for text in PAGES.values() for ln in text.splitlines())
    return sorted({ln for ln in lines if ln.startswith("curl -s http://127.0.0.1:8000/")})


def python_blocks() -> dict[str, str]:
    """Each distinct ```python block, named by the first page that holds it."""
    blocks: dict[str, str] = {}
    for page, text in PAGES.items():
        for n, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            if block not in blocks.values():
                blocks[f"{page}#{n}"] = block
    return blocks


BLOCKS = python_blocks()
# The SDK set-up the README opens with; blocks that use its client and model run after it.
SDK_SETUP = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S)
                 if "from openai import OpenAI" in b)


def test_the_pages_are_read() -> None:
    assert {"docs/api.md", "docs/openai.md", "docs/tools.md", "docs/clients.md",
            "docs/emulator.md", "docs/keys.md"} <= set(PAGES)


def test_the_docs_have_both_curls() -> None:
    paths = {line.split()[2].split("8000")[1] for line in curl_lines()}
    assert {"/chat", "/v1/chat/completions"} <= paths
    assert stream_curl_lines()


def test_the_readme_itself_shows_both_curls_and_the_sdk() -> None:
    readme_curls = {ln.strip().split()[2].split("8000")[1] for ln in README.splitlines()
                    if ln.strip().startswith("curl -s http://127.0.0.1:8000/")}
    assert {"/chat", "/v1/chat/completions"} <= readme_curls
    assert "from openai import OpenAI" in SDK_SETUP


@pytest.mark.parametrize("line", curl_lines())
def test_every_curl_succeeds(stack: LocalStack, line: str) -> None:
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


def stream_curl_lines() -> list[str]:
    lines = (ln.strip() for text in PAGES.values() for ln in text.splitlines())
    return sorted({ln for ln in lines if ln.startswith("curl -sN http://127.0.0.1:8000/")})


@pytest.mark.parametrize("line", stream_curl_lines())
def test_every_streaming_curl_streams(stack: LocalStack, line: str) -> None:
    result = subprocess.run(["bash", "-c", localise(line, stack) + " -w '\n%{http_code}'"],
                            capture_output=True, text=True, timeout=30, check=True,
                            env={**os.environ, "LLM_API_KEY": stack.key})
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "200", body
    events = re.findall(r"^event: (\w+)$", body, re.M)
    assert events[0] == "start" and events[-1] == "end" and "delta" in events, body


def test_the_respond_next_curl_scripts_the_next_answer(stack: LocalStack,
                                                       emulator: EmulatorControl) -> None:
    lines = sorted({ln.strip() for text in PAGES.values() for ln in text.splitlines()
                    if ln.strip().startswith("curl -s http://127.0.0.1:8001/_emulator/config")})
    assert len(lines) == 1
    command = localise(lines[0], stack)
    # The entry matches "Paris": jobs queued by earlier tests, which
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


# The client set-up snippets, each told apart by the import that makes it.
CLIENT_SNIPPETS = {"openai-agents": "from agents import", "litellm": "import litellm",
                   "llamaindex": "from llama_index", "anthropic": "import anthropic"}
# What each prints: text and its token count for LiteLLM, text for the others; an agent
# with output_type=Report prints its Report after a tool call.
PRINTED = {"openai-agents": r"^\S", "litellm": r"^\S.* \d+$", "llamaindex": r"^\S",
           "anthropic": r"^\S"}
REPORT = r"^city='.+' temperature_c=-?\d+$"


def kind(block: str) -> str:
    """What a block is, so that each is run and checked as what it is."""
    for client, marker in CLIENT_SNIPPETS.items():
        if marker in block:
            return client
    if "from openai import OpenAI" in block:
        return "sdk"
    if "import boto3" in block:
        return "emulator"
    if re.search(r"\bclient\.", block):
        return "after-sdk"
    return "unknown"


def run(code: str, stack: LocalStack) -> subprocess.CompletedProcess[str]:
    # LiteLLM's import would fetch its price list from the internet: offline here.
    env = {**os.environ, "LLM_API_KEY": stack.key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, "-c", localise(code, stack)], capture_output=True,
                          text=True, timeout=90, env=env)


def test_every_python_block_is_of_a_known_kind() -> None:
    assert {name: kind(block) for name, block in BLOCKS.items() if kind(block) == "unknown"} == {}
    assert {kind(b) for b in BLOCKS.values()} >= {"sdk", "emulator", "after-sdk", *CLIENT_SNIPPETS}


@pytest.mark.parametrize("name", sorted(n for n, b in BLOCKS.items() if kind(b) == "sdk"))
def test_the_sdk_snippet_runs(stack: LocalStack, name: str) -> None:
    result = run(BLOCKS[name], stack)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    if "chat.completions" in BLOCKS[name]:  # the README's: the usage, then the answer
        assert len(lines) == 2 and "CompletionUsage" in lines[0] and lines[1]
    else:  # the answer and its token count
        assert lines and re.search(r"\S.* \d+$", lines[-1]), result.stdout


@pytest.mark.parametrize("name", sorted(n for n, b in BLOCKS.items() if kind(b) == "after-sdk"))
def test_the_snippets_that_go_on_from_the_sdk_run(stack: LocalStack, emulator: EmulatorControl,
                                                  name: str) -> None:
    emulator.clear_requests()
    result = run(SDK_SETUP + "\n" + BLOCKS[name], stack)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    # The SDK set-up's two calls, then the block's own.
    assert len(emulator.requests()) > 2


def test_the_emulator_snippet_runs(stack: LocalStack) -> None:
    (block,) = [b for b in BLOCKS.values() if kind(b) == "emulator"]
    result = run(block, stack)
    assert result.returncode == 0, result.stderr
    answer = result.stdout.strip()
    assert "'generation'" in answer and "'stop_reason'" in answer


@pytest.mark.parametrize("client, name", sorted((kind(b), n) for n, b in BLOCKS.items()
                                                if kind(b) in CLIENT_SNIPPETS))
def test_the_client_set_up_runs(stack: LocalStack, emulator: EmulatorControl, client: str,
                                name: str) -> None:
    snippet = BLOCKS[name]
    emulator.clear_requests()
    result = run(snippet, stack)
    assert result.returncode == 0, result.stderr
    printed = REPORT if "output_type=Report" in snippet else PRINTED[client]
    assert re.match(printed, result.stdout.strip()), result.stdout
    # An agent calls the model, runs the tool, and calls the model again.
    assert len(emulator.requests()) == (2 if client == "openai-agents" else 1)


KEYS = ".venv/bin/python scripts/keys.py --local "


def keys_lines() -> list[str]:
    lines = (ln.strip() for text in PAGES.values() for ln in text.splitlines())
    return sorted({ln.split("  #")[0].strip() for ln in lines if ln.startswith(KEYS)})


def test_the_docs_show_the_keys_commands() -> None:
    verbs = {shlex.split(line[len(KEYS):])[0] for line in keys_lines()}
    assert {"create", "list", "revoke", "set-limits", "usage"} <= verbs


@pytest.mark.parametrize("line", keys_lines())
def test_every_local_keys_command_runs(stack: LocalStack, line: str) -> None:
    # The placeholder key id stands for a key the operator made: one is made first.
    made = stack.keys_command("create", "--tenant", "docs")
    key_id = re.search(r"key id: (key_\w+)", made)
    assert key_id, made
    argv = shlex.split(line[len(KEYS):].replace("key_0123abcd", key_id.group(1)))
    out = stack.keys_command(*argv)
    if argv[0] == "create":
        assert re.search(r"^key: +llm_", out, re.M), out
    if argv[0] == "list":
        assert key_id.group(1) in out and "llm_" not in out


def test_the_printed_export_line_matches_the_readme(stack: LocalStack) -> None:
    assert f"export LLM_API_KEY={stack.key}" in stack.banner
    assert "export LLM_API_KEY=" in README
