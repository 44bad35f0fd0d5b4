"""How long a batch of embeddings takes when Titan needs one call a text.

Starts the Bedrock emulator in-process with a fixed latency per call (Titan's
real latency is tens of milliseconds), then times ``EmbeddingService.embed``
(no cache) for Titan Text Embeddings v2 at several thread counts, and for
Cohere Embed v3 (96 texts a call), printing seconds and texts/s.

Target: LangChain's default chunk (1,000 texts) on Titan well inside API
Gateway's 29 s at 50 ms a call.
Run: ``.venv/bin/python bench/embeddings.py [--texts 1000] [--latency-ms 50]``.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from chalicelib.models.bedrock import BedrockGateway  # noqa: E402
from chalicelib.models.embeddings import EmbeddingRequest, EmbeddingService  # noqa: E402
from chalicelib.models.pricing import DEFAULT_PRICES  # noqa: E402
from devstack.bedrock_emulator import make_server  # noqa: E402
from devstack.emulator_state import State  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50)
    args = parser.parse_args()
    state = State()
    state.configure({"latency_ms": args.latency_ms})
    server = make_server("127.0.0.1", 0, state)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = boto3.client("bedrock-runtime", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
                          region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
                          config=Config(max_pool_connections=32))
    gateway = BedrockGateway(client)
    texts = tuple(f"document number {i} about embeddings" for i in range(args.texts))
    print(f"{args.texts} texts, {args.latency_ms} ms a Bedrock call")
    runs = [("amazon.titan-embed-text-v2:0", n) for n in (1, 4, 8, 16)]
    runs.append(("cohere.embed-english-v3", 8))
    for model, threads in runs:
        service = EmbeddingService(gateway, None, DEFAULT_PRICES, concurrency=threads)
        started = time.perf_counter()
        result = service.embed(EmbeddingRequest(model, texts), "bench")
        took = time.perf_counter() - started
        assert len(result.vectors) == len(texts)
        print(f"{model:32} threads={threads:2}  {took:6.2f} s  {len(texts) / took:7.0f} texts/s")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
