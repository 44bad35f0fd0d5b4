"""How long one hostile schema check takes: issue 19's shape (items x anyOf
branches x a backtracking pattern, each search inside its own 50 ms bound).

Prints the schema's and the answer's sizes, the outcome of one check (its
first problem, or the error that ended it) and its wall and CPU time. Before
the per-request validation budget the check ran to its end (seconds to tens of
seconds of CPU); with it, it ends within ``deadline.VALIDATION_BUDGET_S``.

Run: ``.venv/bin/python bench/validation.py [--project DIR]`` (``DIR``: another
checkout's code, e.g. the commit before the budget, to compare).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=PROJECT_DIR,
                        help="the checkout whose chalicelib to measure")
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT_DIR))
    from tests.support import hostile_answer, hostile_schema  # this checkout's, always
    sys.path.insert(0, str(args.project))
    from chalicelib.models import schemas

    text = json.dumps(hostile_schema(), separators=(",", ":"))
    answer = hostile_answer()
    print(f"schema {len(text)} bytes, answer {len(json.dumps(answer))} bytes")
    wall, cpu = time.monotonic(), time.process_time()
    try:
        outcome = (schemas.problems(answer, text) or ["valid"])[0]
    except Exception as exc:  # noqa: BLE001 - the outcome is what this prints
        outcome = f"{type(exc).__name__}: {exc}"
    print(f"outcome: {outcome[:160]}")
    print(f"wall {time.monotonic() - wall:.2f} s, cpu {time.process_time() - cpu:.2f} s")


if __name__ == "__main__":
    main()
