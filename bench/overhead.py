"""What the endpoint adds on top of the Bedrock call, per request and at cold start.

With the Bedrock emulator at zero latency (in its own process), prints:

1. the Lambda handler's time per ``POST /chat``, invoked with an API Gateway
   proxy event as Lambda invokes it, authorizer context included (p50, p99,
   requests/s): once with the per-request usage write going to the local
   DynamoDB (moto), once with DynamoDB stubbed out, which isolates what the
   endpoint's own code costs;
2. the floors: a bare boto3 ``invoke_model`` with the same body and client
   configuration against the same emulator, and a bare
   ``invoke_model_with_response_stream`` read to its end, which is the call
   the endpoint makes (every call reads the stream, so that a call cut at its
   deadline knows its tokens);
3. cold start: a fresh process that imports the app and serves its first
   request, against a fresh process that imports boto3, creates the client
   and makes one call.

Targets: handler p50 within 0.5 ms of the floor; cold start within 1.25x.
Run: ``make bench`` or ``.venv/bin/python bench/overhead.py [--requests N]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from tests.support import free_port  # noqa: E402

MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
CHAT_BODY = json.dumps({"prompt": "Hello, how are you?", "max_tokens": 64})


# What the authorizer hands the route for a key with no limits.
AUTHORIZER = {"principalId": "bench", "tenant": "bench", "key_id": "key_bench",
              "requests_per_minute": "", "tokens_per_minute": "", "tokens_per_day": ""}


def proxy_event(body: str, request_id: str = "bench") -> dict[str, Any]:
    """A REST API (v1) proxy event, as API Gateway hands it to Lambda."""
    headers = {"Content-Type": "application/json", "Host": "abc.execute-api.us-east-1.amazonaws.com"}
    return {
        "resource": "/chat", "path": "/chat", "httpMethod": "POST",
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": "/chat", "httpMethod": "POST", "requestId": request_id,
                           "stage": "api", "path": "/api/chat", "authorizer": AUTHORIZER,
                           "identity": {"sourceIp": "203.0.113.1"}},
        "body": body, "isBase64Encoded": False,
    }


class LambdaContext:
    function_name = "llm-endpoint-dev"
    memory_limit_in_mb = 256
    aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:llm-endpoint-dev"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def summarise(name: str, samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    p50 = statistics.median(samples) * 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
    rps = len(samples) / sum(samples)
    print(f"  {name:<40} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   {rps:8.0f} req/s")
    return {"p50_ms": p50, "p99_ms": p99, "rps": rps}


def time_calls(call: Any, n: int, warmup: int = 50) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


class StubDynamoDB:
    """Answers the usage write at once: the handler's cost without DynamoDB I/O."""

    def update_item(self, **_: Any) -> dict[str, Any]:
        return {"Attributes": {}}


def start(module: str, port: int, ready: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)],
                            cwd=PROJECT_DIR, stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=1)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{module} did not start")


COLD_APP = """
import json, time, sys
event = json.loads(sys.argv[1])

class LambdaContext:
    aws_request_id = "cold"

started = time.perf_counter()
import app
response = app.app(event, LambdaContext())
assert response["statusCode"] == 200, response
print(time.perf_counter() - started)
"""
COLD_FLOOR = """
import json, time, sys
started = time.perf_counter()
import boto3
from botocore.config import Config
client = boto3.client("bedrock-runtime", config=Config(
    retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=1, read_timeout=18))
body = json.loads(client.invoke_model(modelId=sys.argv[2], body=sys.argv[1])["body"].read())
assert body["generation"]
print(time.perf_counter() - started)
"""


def cold_start(script: str, args: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median whole-process wall time and median in-process time, in ms."""
    walls, inner = [], []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", script, *args], cwd=PROJECT_DIR, env=env,
                             capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - started)
        inner.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(walls) * 1000, statistics.median(inner) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description="endpoint overhead against the boto3 floor")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--cold-runs", type=int, default=9)
    args = parser.parse_args()

    port, aws_port = free_port(), free_port()
    emulator = start("devstack.bedrock_emulator", port, "/_emulator/stats")
    aws = start("devstack.aws_emulator", aws_port, "/moto-api/data.json")
    env = {**os.environ, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": f"http://127.0.0.1:{port}",
           "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{aws_port}",
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "PYTHONPATH": str(PROJECT_DIR)}
    os.environ.update(env)
    try:
        import app
        from chalicelib.bedrock import make_client
        from chalicelib.config import Settings
        from chalicelib.dynamo import make_dynamodb_client
        from chalicelib.models import build_llama_body
        from chalicelib.runtime import Runtime
        from chalicelib.native_api import parse_chat_request
        from devstack.bootstrap import create_tables

        from chalicelib.telemetry import Telemetry

        create_tables(make_dynamodb_client(), "dev")
        context = LambdaContext()
        event = proxy_event(CHAT_BODY)
        # Telemetry runs as in production (one log line and EMF record a
        # request), written to /dev/null instead of this report.
        quiet = open(os.devnull, "w")
        with_dynamodb = Runtime(telemetry=Telemetry("bench", stream=quiet))
        stubbed = Runtime(dynamodb_client=StubDynamoDB(), telemetry=Telemetry("bench", stream=quiet))
        app.set_runtime(with_dynamodb)
        assert app.app(event, context)["statusCode"] == 200
        floor_client = make_client(Settings())
        floor_body = json.dumps(build_llama_body(parse_chat_request(json.loads(CHAT_BODY), Settings())))

        def bare() -> None:
            json.loads(floor_client.invoke_model(modelId=MODEL, body=floor_body)["body"].read())

        def bare_stream() -> None:
            response = floor_client.invoke_model_with_response_stream(modelId=MODEL,
                                                                      body=floor_body)
            for event in response["body"]:
                json.loads(event["chunk"]["bytes"])

        def handler_with_dynamodb() -> None:
            app.set_runtime(with_dynamodb)
            app.app(event, context)

        def handler_stubbed() -> None:
            app.set_runtime(stubbed)
            app.app(event, context)

        print(f"Per request ({args.requests} sequential calls, emulator at zero latency):")
        # Interleave in rounds so that machine noise hits all alike.
        floor_s, stream_s, stubbed_s, dynamo_s = [], [], [], []
        for _ in range(4):
            floor_s += time_calls(bare, args.requests // 4)
            stream_s += time_calls(bare_stream, args.requests // 4)
            stubbed_s += time_calls(handler_stubbed, args.requests // 4)
            dynamo_s += time_calls(handler_with_dynamodb, args.requests // 8)
        floor = summarise("bare boto3 invoke_model (floor)", floor_s)
        stream_floor = summarise("bare boto3 invoke_model_with_response_stream", stream_s)
        ours = summarise("handler, DynamoDB stubbed", stubbed_s)
        summarise("handler, usage write to local DynamoDB", dynamo_s)
        print(f"  handler overhead at p50: {ours['p50_ms'] - floor['p50_ms']:+.3f} ms over "
              f"invoke_model (target <= 0.5 ms), {ours['p50_ms'] - stream_floor['p50_ms']:+.3f} ms "
              "over the same streamed call")

        print(f"Cold start (median of {args.cold_runs} fresh processes):")
        floor_wall, floor_inner = cold_start(COLD_FLOOR, [floor_body, MODEL], env, args.cold_runs)
        app_wall, app_inner = cold_start(COLD_APP, [json.dumps(proxy_event(CHAT_BODY))], env,
                                         args.cold_runs)
        print(f"  {'import boto3 + client + 1 call':<40} {floor_inner:7.1f} ms in process, "
              f"{floor_wall:7.1f} ms whole process")
        print(f"  {'import app + first /chat':<40} {app_inner:7.1f} ms in process, "
              f"{app_wall:7.1f} ms whole process")
        print(f"  cold start ratio: {app_inner / floor_inner:.2f}x in process, "
              f"{app_wall / floor_wall:.2f}x whole process (target <= 1.25x)")
    finally:
        for proc in (emulator, aws):
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
