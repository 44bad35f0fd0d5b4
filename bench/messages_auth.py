"""What checking the key in the function costs the Messages routes, per request.

The Messages routes take the key as ``x-api-key`` or ``Authorization: Bearer``
and have no API Gateway authorizer (chalicelib/tenancy/header_auth.py says
why). With DynamoDB (moto's server, in its own thread on loopback) holding
the keys table, prints the time per key check (p50, p99):

1. a warm function, key seen within the TTL: the in-process cache answers,
   no round trip (what nearly every request of an active key pays);
2. a key not seen within the TTL (first request, or every 30 s): two GetItems
   (the key, then its tenant's limits);
3. for comparison, what a REQUEST authorizer without caching (the only
   API Gateway authorizer that takes either header) would add on every
   request: the same GetItems, plus one authorizer Lambda invocation that this
   cannot measure offline (API Gateway's own overhead; AWS prices it as one
   more Lambda request a request).

Run: ``.venv/bin/python bench/messages_auth.py [--requests N]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e6:8.1f} us   p99 {p99 * 1e6:8.1f} us"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    from devstack.aws_emulator import make_aws_server
    from tests.support import free_port
    port = free_port()
    server = make_aws_server("127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ.update({"AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{port}",
                       "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    from chalicelib.config import Settings
    from chalicelib.dynamo import make_dynamodb_client
    from chalicelib.tenancy.header_auth import KeyCache
    from chalicelib.tenancy.keys import KeyStore, Limits
    from devstack.bootstrap import create_tables
    client = make_dynamodb_client()
    create_tables(client, "dev")
    store = KeyStore(client, Settings().keys_table)
    secret, _ = store.create("bench", now=int(time.time()), limits={})
    headers = {"x-api-key": secret}
    warm, cold = [], []
    cache = KeyCache(30)
    cache.caller(headers, store, time.time(), Limits())
    for _ in range(args.requests):
        started = time.perf_counter()
        cache.caller(headers, store, time.time(), Limits())
        warm.append(time.perf_counter() - started)
    for _ in range(args.requests):
        started = time.perf_counter()
        KeyCache(30).caller(headers, store, time.time(), Limits())
        cold.append(time.perf_counter() - started)
    print(f"key check, cached (within the TTL):   {_figures(warm)}   0 round trips")
    print(f"key check, not cached (two GetItems): {_figures(cold)}   2 round trips")
    print("REQUEST authorizer without caching:   the uncached figure on every request, plus one "
          "authorizer Lambda invocation")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
