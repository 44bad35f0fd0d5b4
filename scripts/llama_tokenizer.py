"""Copy Meta's Llama 3 tokenizer into chalicelib, so that the package ships it.

``chalicelib.models.tokens`` counts Llama prompts exactly with
``llama_models/llama3/tokenizer.model`` (2.2 MB, tiktoken BPE ranks). The
file comes from Meta's ``llama-models`` package (requirements-run-nodeps.txt,
a development dependency: the Lambda needs only the file and ``tiktoken``),
copied here at build time rather than committed: it is Meta's Llama
Material under the Llama 3 Community License, whose redistribution terms a
public repository would take on, and 2.2 MB in every clone's history. The
deployed function uses it as Bedrock serves the model. Its SHA-256 is checked
against ``tokens.TOKENIZER_SHA256``, so a changed file fails the build
instead of silently changing every count.

Runs before ``chalice package`` and ``chalice deploy``, beside
scripts/compile_bytecode.py (deploy.yml, ``make check-templates``, the
artifact test, the bench).

    .venv/bin/python scripts/llama_tokenizer.py
"""
from __future__ import annotations

import hashlib
import shutil
import sys
from importlib import util
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.models.tokens import SHIPPED, TOKENIZER_SHA256  # noqa: E402


def installed() -> Path:
    spec = util.find_spec("llama_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llama-models is not installed (requirements-run-nodeps.txt)")
    return Path(list(spec.submodule_search_locations)[0]) / "llama3" / "tokenizer.model"


def copy_tokenizer(source: Path, target: Path = SHIPPED) -> None:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != TOKENIZER_SHA256:
        raise SystemExit(f"{source}: SHA-256 {digest}, expected {TOKENIZER_SHA256}")
    shutil.copyfile(source, target)


if __name__ == "__main__":
    copy_tokenizer(installed())
