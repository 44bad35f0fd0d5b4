"""Codex CLI, unchanged (its npm package, pinned in tests/e2e/codex), against
`make run`: ``codex exec`` with a custom model provider speaking the Responses
API (``wire_api = "responses"``), for Llama and a Converse model. Codex sends
its ~40 KB request (store: false, include reasoning.encrypted_content,
function, namespace and web_search tools), streamed; the emulator's model
calls one of Codex's tools, Codex runs it and sends the output back, and the
model's answer ends the turn. Nothing leaves loopback: the provider is the
local stack, and update checks and analytics are off. The provider block is
docs/responses.md's, so the documentation stays true."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.stack import LocalStack
from tests.support import EmulatorControl

pytestmark = pytest.mark.e2e
CODEX = Path(__file__).resolve().parent / "codex" / "node_modules" / ".bin" / "codex"
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
DOCS = (Path(__file__).resolve().parents[2] / "docs" / "responses.md").read_text()
# The provider block as docs/responses.md gives it, plus what keeps a test
# offline and quick: no update check, no analytics, no retries.
PROVIDER = re.search(r"```toml\n(.*?)```", DOCS, re.S).group(1)  # type: ignore[union-attr]


def config(model: str, url: str) -> str:
    block = PROVIDER.replace('"us.meta.llama3-1-8b-instruct-v1:0"', f'"{model}"', 1)
    block = block.replace("http://127.0.0.1:8000", url)
    return ("check_for_update_on_startup = false\n" + block
            + "request_max_retries = 0\nstream_max_retries = 0\n\n[analytics]\nenabled = false\n")


def codex_exec(stack: LocalStack, tmp_path: Path, model: str, prompt: str) -> str:
    assert CODEX.exists(), "run `npm ci --prefix tests/e2e/codex` (make test does)"
    home = tmp_path / "codex-home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / "config.toml").write_text(config(model, stack.url))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CODEX_HOME": str(home),
           "LLM_ENDPOINT_API_KEY": stack.key, "NO_COLOR": "1"}  # the docs' env_key
    done = subprocess.run([str(CODEX), "exec", "--skip-git-repo-check", prompt], cwd=work,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_codex_exec_runs_a_tool_turn_on_llama(stack: LocalStack, emulator: EmulatorControl,
                                              tmp_path: Path) -> None:
    out = codex_exec(stack, tmp_path, LLAMA, "Say hello to the team")
    prompts = [r["body"]["prompt"] for r in emulator.requests()]
    assert len(prompts) >= 2, out  # the model's call, then its answer to the tool's output
    first, last = prompts[0], prompts[-1]
    assert "Say hello to the team" in first and '"exec_command"' in first
    assert '"web_search"' not in first and "multi_agent_v1" not in first  # hosted: left out
    assert "<|start_header_id|>ipython<|end_header_id|>" in last  # Codex's tool output came back
    assert "tokens used" in out


def test_codex_exec_on_a_converse_model(stack: LocalStack, emulator: EmulatorControl,
                                        tmp_path: Path) -> None:
    out = codex_exec(stack, tmp_path, CLAUDE, "Say hello to the team")
    bodies = [r["body"] for r in emulator.requests()]
    assert len(bodies) >= 2, out
    names = {t["toolSpec"]["name"] for t in bodies[0]["toolConfig"]["tools"]}
    assert "exec_command" in names and "web_search" not in names
    assert "Say hello to the team" in json.dumps(bodies[0]["messages"])
    assert "toolResult" in json.dumps(bodies[-1]["messages"])
