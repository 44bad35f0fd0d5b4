"""Compile chalicelib to hash-checked bytecode, so that the package ships it.

Lambda's task root is read-only: Python cannot write ``__pycache__`` there,
so without bytecode in the package every cold start compiles each of
chalicelib's modules again (~25 ms of a ~150 ms cold start,
bench/overhead.py). Chalice zips chalicelib whole, ``__pycache__``
included, so this runs right before ``chalice deploy`` and ``chalice
package`` (deploy.yml, ``make check-templates``, the artifact test and the
bench).

Hash-checked (PEP 552) rather than the default timestamps: a zip keeps file
times only to two seconds, so timestamp bytecode can fail its check once
unpacked; a checked hash is of the source itself, so it is valid wherever the
source is unchanged and ignored (recompiled in memory) wherever it changed,
which also makes it safe to leave in a working tree. Old ``__pycache__``
directories are removed first: nothing stale or orphaned ships. The
interpreter must be the runtime's minor version (3.11): bytecode of another
version is ignored, costing only the compile it would have saved.

    .venv/bin/python scripts/compile_bytecode.py
"""
from __future__ import annotations

import compileall
import py_compile
import shutil
import sys
from pathlib import Path

CHALICELIB = Path(__file__).resolve().parent.parent / "chalicelib"


def compile_chalicelib(root: Path = CHALICELIB) -> bool:
    for cache in sorted(root.rglob("__pycache__")):
        shutil.rmtree(cache)
    return bool(compileall.compile_dir(
        str(root), quiet=1, force=True,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH))


if __name__ == "__main__":
    sys.exit(0 if compile_chalicelib() else 1)
