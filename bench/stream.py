"""Streaming through the official openai SDK against the local stack.

Starts the stack as ``make run`` does (its own ports), sets the Bedrock
emulator to ``--latency-ms`` (300) and ``--tokens-per-second`` (50), and for
``--runs`` different prompts at ``max_tokens`` 400 measures, in the same run:

- Bedrock's own first chunk and last chunk (the emulator called directly with
  botocore, the same body the app sends): the floor;
- ``stream=True`` through the SDK: time to the first token, the arrival
  times of the text chunks (their spread against the generation), the total;
- ``stream=False`` through the SDK, which is what a buffered stream gave
  before (the first token arrives with the last).

Run: ``.venv/bin/python bench/stream.py [--runs 20]``. It stops the stack.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

import botocore.session  # noqa: E402
import openai  # noqa: E402

from chalicelib.chat import ChatRequest, Message  # noqa: E402
from chalicelib.models.registry import build_llama_body  # noqa: E402
from tests.e2e.stack import LocalStack  # noqa: E402
from tests.support import EmulatorControl  # noqa: E402

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
MAX_TOKENS = 400


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> str:
    return f"{value * 1000:7.1f} ms"


def direct(bedrock: object, prompt: str) -> tuple[float, float]:
    """Bedrock's (emulator's) first and last chunk, called directly."""
    # The body the app sends for this request (temperature 1 halved, top_p 1).
    body = build_llama_body(ChatRequest(messages=(Message("user", prompt),), model=MODEL,
                                        max_tokens=MAX_TOKENS, temperature=0.5, top_p=0.9))
    started = time.monotonic()
    response = bedrock.invoke_model_with_response_stream(  # type: ignore[attr-defined]
        modelId=MODEL, body=json.dumps(body))
    first = last = 0.0
    for event in response["body"]:
        if "chunk" in event:
            last = time.monotonic() - started
            first = first or last
    return first, last


def streamed(client: openai.OpenAI, prompt: str) -> tuple[float, list[float], float, int]:
    started = time.monotonic()
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS,
        temperature=1.0, top_p=0.9, stream=True, stream_options={"include_usage": True})
    arrivals: list[float] = []
    tokens = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return arrivals[0], arrivals, time.monotonic() - started, tokens


def buffered(client: openai.OpenAI, prompt: str) -> float:
    started = time.monotonic()
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                   max_tokens=MAX_TOKENS, temperature=1.0, top_p=0.9)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description="streaming latency through the openai SDK")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--tokens-per-second", type=float, default=50)
    args = parser.parse_args()
    stack = LocalStack().start()
    try:
        emulator = EmulatorControl(stack.emulator_url)
        emulator.configure(latency_ms=args.latency_ms, tokens_per_second=args.tokens_per_second)
        bedrock = botocore.session.get_session().create_client(
            "bedrock-runtime", endpoint_url=stack.emulator_url, region_name="us-east-1",
            aws_access_key_id="x", aws_secret_access_key="x")
        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.key, max_retries=0)
        streamed(client, "warm up")  # first request builds the app's clients
        floor_first, floor_last, ttft, totals, plain, spreads, gaps, gens = [], [], [], [], [], [], [], []
        tokens = []
        for run in range(args.runs):
            prompt = f"Tell me about streaming, take {run}."
            first, last = direct(bedrock, prompt)
            floor_first.append(first)
            floor_last.append(last)
            t_first, arrivals, total, count = streamed(client, prompt)
            ttft.append(t_first)
            totals.append(total)
            spreads.append(arrivals[-1] - arrivals[0])
            gaps += [b - a for a, b in zip(arrivals, arrivals[1:])]
            gens.append(last - first)
            tokens.append(count)
            plain.append(buffered(client, prompt))
        print(f"emulator: latency_ms {args.latency_ms}, tokens_per_second "
              f"{args.tokens_per_second:g}; max_tokens {MAX_TOKENS}; {args.runs} prompts "
              f"({min(tokens)}-{max(tokens)} tokens, median {statistics.median(tokens):g})")
        print(f"Bedrock's first chunk (direct)      p50 {ms(p(floor_first, .5))}  "
              f"p90 {ms(p(floor_first, .9))}")
        print(f"time to first token, stream=True    p50 {ms(p(ttft, .5))}  p90 {ms(p(ttft, .9))}"
              f"   (p50 {(p(ttft, .5) - p(floor_first, .5)) * 1000:+.1f} ms over Bedrock's; "
              f"target +30 ms)")
        print(f"chunk gaps, stream=True             p50 {ms(p(gaps, .5))}  p90 {ms(p(gaps, .9))}"
              f"  max {ms(max(gaps))}")
        print(f"first-to-last chunk, stream=True    p50 {ms(p(spreads, .5))}   "
              f"(Bedrock's own first-to-last p50 {ms(p(gens, .5))})")
        print(f"total, stream=True                  p50 {ms(p(totals, .5))}   "
              f"(Bedrock's last chunk p50 {ms(p(floor_last, .5))})")
        print(f"first token = total, stream=False   p50 {ms(p(plain, .5))}   (the buffered path)")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
