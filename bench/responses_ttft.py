"""Time to first token: POST /v1/responses against /v1/chat/completions.

Starts the local stack (`make run`), sets the Bedrock emulator to a fixed
first-chunk latency and pace, and for each route streams the same prompt N
times, timing the first text delta (``response.output_text.delta`` /
a chunk with ``content``) and the whole stream. ``/v1/responses`` is timed
with ``store: true`` (its default: the answer is written to DynamoDB before
``response.completed``) and with ``store: false``. Prints p50 and p90 of each.

Target (issue 20): the first token arrives as soon as on /v1/chat/completions.
Run: ``.venv/bin/python bench/responses_ttft.py [--requests N]``.
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from tests.e2e.stack import LocalStack  # noqa: E402
from tests.support import EmulatorControl  # noqa: E402

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
PROMPT = "Tell me about streaming."
BODIES = {
    "/v1/chat/completions": {"model": MODEL, "stream": True, "max_tokens": 64,
                             "messages": [{"role": "user", "content": PROMPT}]},
    "/v1/responses store:true": {"model": MODEL, "stream": True, "max_output_tokens": 64,
                                 "input": PROMPT},
    "/v1/responses store:false": {"model": MODEL, "stream": True, "max_output_tokens": 64,
                                  "input": PROMPT, "store": False},
}
FIRST = {"/v1/chat/completions": b'"content":"', "/v1/responses": b"response.output_text.delta"}


def timed(url: str, key: str, route: str) -> tuple[float, float]:
    path = route.split(" ")[0]
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    started = time.perf_counter()
    connection.request("POST", path, json.dumps(BODIES[route]),
                       {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    assert response.status == 200, response.read()[:300]
    first = None
    seen = b""
    while True:
        piece = response.read1(65536)
        if not piece:
            break
        seen += piece
        if first is None and FIRST[path] in seen and b'"content":""' not in seen[-200:]:
            first = time.perf_counter() - started
    connection.close()
    return first if first is not None else float("nan"), time.perf_counter() - started


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    stack = LocalStack().start()
    try:
        EmulatorControl(stack.emulator_url).configure(latency_ms=100, tokens_per_second=200)
        for route in BODIES:
            for _ in range(3):  # warm up
                timed(stack.url, stack.key, route)
            samples = [timed(stack.url, stack.key, route) for _ in range(args.requests)]
            firsts, totals = [s[0] for s in samples], [s[1] for s in samples]
            print(f"{route:28} first token p50 {p(firsts, .5) * 1000:6.1f} ms  "
                  f"p90 {p(firsts, .9) * 1000:6.1f} ms   whole stream p50 "
                  f"{p(totals, .5) * 1000:6.1f} ms")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
