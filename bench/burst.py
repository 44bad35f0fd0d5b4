"""Bursts against the local stack: N jobs at once, then a synchronous burst.

Starts the stack as ``make run`` does (its own ports, worker cap C), then:

1. submits N jobs at once with the Bedrock emulator at latency L and
   ``max_concurrency`` C (Bedrock's quota = the worker cap), and prints
   accepted, completed, failed, lost (must be 0), the emulator's
   ``max_in_flight`` (must be <= C), throttles, and the drain time against
   the ideal N*L/C;
2. sends a synchronous burst of S concurrent ``POST /chat`` against an
   emulator that throttles beyond a small concurrency, and prints the count of
   each status (only 200 and 429 allowed) and p50/p99 latency.

Run: ``.venv/bin/python bench/burst.py [--jobs 10000] [--latency-ms 100]
[--cap 10] [--sync 1000]``. It stops by itself and stops the stack.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

import botocore.session  # noqa: E402

from tests.e2e.stack import LocalStack  # noqa: E402
from tests.support import EmulatorControl, http  # noqa: E402

JSON = {"Content-Type": "application/json"}


def job_states(stack: LocalStack) -> collections.Counter[str]:
    """Every job's status, read from the jobs table itself."""
    client = botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=f"http://127.0.0.1:{stack.aws_port}", region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x")
    counts: collections.Counter[str] = collections.Counter()
    for page in client.get_paginator("scan").paginate(
            TableName="llm-endpoint-dev-jobs", ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"}):
        counts.update(item["status"]["S"] for item in page["Items"])
    return counts


def jobs_burst(stack: LocalStack, emulator: EmulatorControl, n: int, latency_ms: int,
               cap: int, timeout_s: float) -> None:
    emulator.reset()
    emulator.configure(latency_ms=latency_ms, max_concurrency=cap)
    headers = {**JSON, **stack.auth}

    def submit(i: int) -> int:
        return http("POST", stack.url + "/chat/jobs", {"prompt": f"job {i}", "max_tokens": 32},
                    headers, timeout=120)[0]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = collections.Counter(pool.map(submit, range(n)))
    submitted_s = time.monotonic() - started
    accepted = statuses.get(202, 0)
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if emulator.stats()["invocations"] >= accepted:
            states = job_states(stack)
            if states.get("succeeded", 0) + states.get("failed", 0) >= accepted:
                break
        time.sleep(1)
    drain_s = time.monotonic() - started
    states = job_states(stack)
    stats = emulator.stats()
    finished = states.get("succeeded", 0) + states.get("failed", 0)
    ideal = n * latency_ms / 1000 / cap
    print(f"Jobs burst: N={n}, emulator latency L={latency_ms} ms, max_concurrency C={cap} "
          f"(= worker cap)")
    print(f"  submitted in {submitted_s:.1f} s; answers: {dict(statuses)}")
    print(f"  accepted {accepted}, completed {states.get('succeeded', 0)}, "
          f"failed {states.get('failed', 0)}, lost {accepted - finished}")
    print(f"  Bedrock max_in_flight {stats['max_in_flight']} (cap {cap}), "
          f"throttled {stats['throttled']}, invocations {stats['invocations']}")
    print(f"  drain time {drain_s:.1f} s against the ideal N*L/C = {ideal:.1f} s "
          f"({drain_s / ideal:.2f}x)")


def sync_burst(stack: LocalStack, emulator: EmulatorControl, s: int, concurrency: int) -> None:
    emulator.reset()
    emulator.configure(latency_ms=50, max_concurrency=4)
    headers = {**JSON, **stack.auth}

    def call(i: int) -> tuple[int, float]:
        begun = time.monotonic()
        try:
            status = http("POST", stack.url + "/chat", {"prompt": f"sync {i}", "max_tokens": 20},
                          headers, timeout=120)[0]
        except OSError as exc:  # a reset or refused connection: must never happen
            status = f"{type(exc).__name__}"  # type: ignore[assignment]
        return status, time.monotonic() - begun
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(call, range(s)))
    counts = collections.Counter(status for status, _ in results)
    latencies = sorted(elapsed for _, elapsed in results)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"Sync burst: {s} POST /chat, {concurrency} at once, emulator throttling beyond 4 "
          f"in flight (50 ms each)")
    print(f"  statuses {dict(counts)} (only 200 and 429 allowed: "
          f"{'yes' if set(counts) <= {200, 429} else 'NO'})")
    print(f"  latency p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description="bursts against the local stack")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--cap", type=int, default=10)
    parser.add_argument("--sync", type=int, default=1000)
    parser.add_argument("--sync-concurrency", type=int, default=1000)
    parser.add_argument("--timeout-s", type=float, default=1800)
    args = parser.parse_args()
    stack = LocalStack(JOBS_MAX_CONCURRENCY=str(args.cap), JOBS_RETRY_BASE_S="1").start()
    try:
        emulator = EmulatorControl(stack.emulator_url)
        if args.jobs:
            jobs_burst(stack, emulator, args.jobs, args.latency_ms, args.cap, args.timeout_s)
        if args.sync:
            sync_burst(stack, emulator, args.sync, args.sync_concurrency)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
