"""What the Bedrock emulator spends building one answer, by kind of prompt.

Reading the prompt back (turns, tools, schema) and writing the answer (a call
with arguments from the tool's schema, a document, text) happen on every
invocation; this prints the time per answer for plain chat, tools (2 and the
endpoint's maximum of 128), a JSON schema and an answer after a tool result,
so the emulator stays negligible next to the endpoint it stands behind.

Run: ``.venv/bin/python bench/emulator_answers.py [--repeat N]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.generator import generate  # noqa: E402
from tests.llama_format import FLIGHT, PERSON, WEATHER, render  # noqa: E402


def per_answer_ms(prompt: str, repeat: int) -> float:
    started = time.perf_counter()
    for seed in range(repeat):
        generate("m", prompt, temperature=0.5, top_p=0.9, max_tokens=2048, seed=seed)
    return (time.perf_counter() - started) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1000)
    args = parser.parse_args()
    many = [{"type": "function", "function": {**FLIGHT["function"], "name": f"tool_{i}"}}
            for i in range(128)]
    cases = [
        ("plain chat", render([("user", "Hi there")]), args.repeat),
        ("2 tools", render([("user", "Book a flight")], tools=[WEATHER, FLIGHT]), args.repeat),
        ("128 tools", render([("user", "Book a flight")], tools=many), max(args.repeat // 10, 1)),
        ("json schema, { prefill", render([("user", "Ada")], schema=PERSON, prefill="{"),
         args.repeat),
        ("after a 5,000-char tool result",
         render([("user", "x"), ("assistant", "c"), ("ipython", "r" * 5000)], tools=[WEATHER]),
         args.repeat),
    ]
    print(f"{'prompt':34s} {'chars':>8s} {'ms/answer':>10s}")
    for name, prompt, repeat in cases:
        print(f"{name:34s} {len(prompt):8d} {per_answer_ms(prompt, repeat):10.3f}")


if __name__ == "__main__":
    main()
