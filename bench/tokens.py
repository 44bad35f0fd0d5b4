"""What counting a Llama prompt exactly costs: once per process, and per request.

Prints, each in a fresh process (the median of ``--runs``):

1. the first exact count, which loads the tokenizer: importing tiktoken,
   reading Meta's 128,000 ranks, building the encoder (only a key with
   limits ever pays it, on its first request in a Lambda container:
   ``Limiter.admit`` asks for the size only then);
2. a count once loaded, for the prompt ``bench/overhead.py`` sends, a 4 KB
   chat, and 100 KB of prose, digits and base64, beside the old estimate
   (UTF-8 bytes / 3) they replace and the real count.

Run: ``.venv/bin/python bench/tokens.py [--runs N]``.
"""
from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

# CPU time (what a Lambda's fraction of a vCPU pays for), not wall time.
FIRST = """
import json, time
clock = time.process_time
started = clock()
import tiktoken
imported = clock()
from chalicelib.models import tokens
ranks = tokens.read_ranks(tokens.tokenizer_file())
read = clock()
tokens._encoding()
built = clock()
tokens.llama3_tokens("Hello, how are you?")
counted = clock()
print(json.dumps({"import tiktoken": imported - started, "read the ranks": read - imported,
                  "build the encoder (ranks read again)": built - read,
                  "first count": counted - built, "total": counted - started}))
"""


def texts() -> dict[str, str]:
    template = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{}"
                "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    prose = "The quick brown fox jumps over the lazy dog while the model answers. "
    return {
        "bench prompt (19 chars)": template.format("Hello, how are you?"),
        "4 KB chat": template.format((prose * 60)[:4000]),
        "100 KB prose": template.format((prose * 1500)[:100_000]),
        "100 KB digits": template.format(" ".join(str(i * 7919) for i in range(15_000))[:100_000]),
        "100 KB base64": template.format(base64.b64encode(bytes(range(256)) * 300).decode()[:100_000]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="the cost of counting Llama prompts exactly")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from chalicelib.models import tokens

    if tokens.tokenizer_file() is None:
        raise SystemExit("no tokenizer file: make venv (llama-models) or scripts/llama_tokenizer.py")
    runs = [json.loads(subprocess.run([sys.executable, "-c", FIRST], cwd=PROJECT_DIR, check=True,
                                      capture_output=True, text=True).stdout)
            for _ in range(args.runs)]
    print(f"First exact count in a fresh process (median of {args.runs}, CPU time):")
    for name in runs[0]:
        print(f"  {name:<40} {statistics.median(r[name] for r in runs) * 1000:7.1f} ms")
    print("Per request, once loaded (best of 5, CPU time):")
    for name, text in texts().items():
        number = 2000 if len(text) < 10_000 else 20
        best = min(timeit.repeat(lambda: tokens.llama3_tokens(text), number=number, repeat=5,
                                 timer=time.process_time))
        real = tokens.llama3_tokens(text)
        old = -(-len(text.encode()) // 3)
        print(f"  {name:<26} {best / number * 1e6:9.1f} µs   {real:6d} tokens "
              f"(old estimate {old}{', short' if old < real else ''})")


if __name__ == "__main__":
    main()
