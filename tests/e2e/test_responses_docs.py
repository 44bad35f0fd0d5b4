"""docs/responses.md's Python snippets, run in order as a reader would paste
them (each after the first reuses its client), against `make run`."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.e2e.stack import PROJECT_DIR, LocalStack

pytestmark = pytest.mark.e2e
DOC = (PROJECT_DIR / "docs" / "responses.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)
CLIENT = BLOCKS[0].split("response =")[0]  # imports and the client
# What each snippet prints, in order.
PRINTED = [r"^\S.* \d+$", r"completed \d+$", r"get_weather \{'city': '.+'\}\n.+",
           r"^name='.+' country='.+'$", r"^completed \S", r"^\S"]


def test_the_snippets_are_as_many_as_checked() -> None:
    assert len(BLOCKS) == len(PRINTED)


@pytest.mark.parametrize("index", range(len(PRINTED)))
def test_a_docs_snippet_runs(stack: LocalStack, index: int) -> None:
    code = BLOCKS[index]
    if "OpenAI(" not in code:
        code = CLIENT + code
    result = subprocess.run([sys.executable, "-c", code.replace("http://127.0.0.1:8000", stack.url)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "LLM_API_KEY": stack.key})
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(PRINTED[index], result.stdout.strip(), re.M), result.stdout
