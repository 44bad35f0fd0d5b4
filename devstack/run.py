"""``make run``: the local stack in the foreground, stopped whole by Ctrl-C or SIGTERM.

Starts the Bedrock emulator, the AWS emulator (moto: DynamoDB, SQS), the app
(Chalice's local server) and the SQS poller that runs the jobs worker as
Lambda's event source would, as child processes, each in its own session so that a
terminal's Ctrl-C reaches only this supervisor, which then stops them in order.
Should the supervisor itself be killed outright, Linux's parent-death signal
still ends each child. Before the app starts, the tables and queues are
created from infra/resources.yaml and a local API key with no limits is stored
(the value of ``LOCAL_API_KEY`` when set, else a random one) and printed.
``JOBS_MAX_CONCURRENCY`` caps the worker's concurrency.
Ports come from ``PORT``, ``BEDROCK_EMULATOR_PORT`` and ``AWS_EMULATOR_PORT``;
once all answer they are written to .devstack/stack.json (devstack/stack_state.py)
for ``scripts/keys.py --local``, and the file is removed on the way out.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import stack_state

HOST = "127.0.0.1"
STAGE = "dev"
PROJECT_DIR = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 30.0


class StackError(Exception):
    """A one-line reason the stack cannot start."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int | None  # None: serves no HTTP (the poller)
    argv: tuple[str, ...]
    ready_path: str = ""


def port_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError(f"{name}={raw!r} is not a port number")
    return int(raw)


def check_port_free(port: int) -> None:
    # SO_REUSEADDR as the servers use it: a port in TIME_WAIT counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            raise StackError(f"port {port} is already in use on {HOST}") from None


def local_environment(env: Mapping[str, str], emulator_port: int, aws_port: int) -> dict[str, str]:
    """The app's environment: boto3 pointed at local services, dummy credentials,
    so that nothing started here can reach a real AWS account."""
    child = {k: v for k, v in env.items()
             if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE")}
    child.update({
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": f"http://{HOST}:{emulator_port}",
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://{HOST}:{aws_port}",
        "AWS_ENDPOINT_URL_SQS": f"http://{HOST}:{aws_port}",
        "AWS_ENDPOINT_URL_SNS": f"http://{HOST}:{aws_port}",
        "AWS_ENDPOINT_URL_STS": f"http://{HOST}:{aws_port}",
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    })
    return child


def services(app_port: int, emulator_port: int, aws_port: int) -> list[Service]:
    py = sys.executable
    return [
        Service("bedrock emulator", emulator_port,
                (py, "-m", "devstack.bedrock_emulator", "--port", str(emulator_port)),
                "/_emulator/stats"),
        Service("aws emulator", aws_port,
                (py, "-m", "devstack.aws_emulator", "--port", str(aws_port)), "/moto-api/"),
        Service("app", app_port,
                (py, "-m", "devstack.app_server", "--port", str(app_port), "--stage", STAGE),
                "/health"),
        Service("jobs worker (SQS poller)", None, (py, "-m", "devstack.sqs_poller", "--stage", STAGE)),
    ]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: Ctrl-C and SIGTERM still stop everything


def start(service: Service, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(service.argv, cwd=PROJECT_DIR, env=dict(env),
                            start_new_session=True, preexec_fn=_die_with_parent)


def wait_ready(service: Service, proc: subprocess.Popen[bytes]) -> None:
    if service.port is None:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise StackError(f"{service.name} exited with status {proc.returncode}")
        return
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://{HOST}:{service.port}{service.ready_path}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{service.name} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers HTTP: up
        except OSError:
            time.sleep(0.1)
    raise StackError(f"{service.name} did not answer on {url} within {READY_TIMEOUT_S:.0f} s")


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bootstrap(env: Mapping[str, str], aws_port: int) -> str:
    """Tables from the deployment's template, then the local key; returns it."""
    import botocore.session

    from chalicelib.tenancy.keys import KeyStore, well_formed
    from devstack.bootstrap import create_queues, create_tables, create_topics, subscribe_inbox

    secret = env.get("LOCAL_API_KEY") or None
    if secret is not None and not well_formed(secret):
        raise StackError("LOCAL_API_KEY must be 20-200 characters of A-Z a-z 0-9 _ - . ~ + / =")
    client: Any = botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=f"http://{HOST}:{aws_port}", region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local")
    tables = create_tables(client, STAGE)
    sqs: Any = botocore.session.get_session().create_client(
        "sqs", endpoint_url=f"http://{HOST}:{aws_port}", region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local")
    create_queues(sqs, STAGE)
    sns: Any = botocore.session.get_session().create_client(
        "sns", endpoint_url=f"http://{HOST}:{aws_port}", region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local")
    for arn in create_topics(sns, STAGE).values():
        subscribe_inbox(sns, sqs, arn)  # read what the stack publishes (docs/keys.md)
    keys_table = next(t for t in tables if t.endswith("-api-keys"))
    limits = {"requests_per_minute": None, "tokens_per_minute": None, "tokens_per_day": None}
    store = KeyStore(client, keys_table)
    secret, _ = store.create("local", now=int(time.time()), limits=limits, secret=secret)
    return secret


def banner(app_port: int, emulator_port: int, aws_port: int, key: str) -> str:
    base = f"http://{HOST}:{app_port}"
    return "\n".join([
        "",
        "Local stack is up (Bedrock is the local emulator; no AWS account is used):",
        f"  API               {base}  (Chalice local server, stage {STAGE})",
        f"  Playground        {base}/  (open it in a browser and paste the key below)",
        f"  Admin page        {base}/admin  (paste a key from scripts/keys.py --local create-admin)",
        f"  Bedrock emulator  http://{HOST}:{emulator_port}  (control API: /_emulator/stats)",
        f"  AWS emulator      http://{HOST}:{aws_port}  (moto: DynamoDB, SQS, SNS)",
        "  Jobs worker       SQS poller running the app's process_job handler",
        "",
        f"API key (local, no limits): {key}",
        f"  export LLM_API_KEY={key}",
        "",
        "Try:",
        f"  curl -s {base}/chat -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' -d '{\"prompt\": \"Hello, how are you?\"}'",
        "",
        "Ctrl-C stops everything.",
        "",
    ])


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    procs: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        app_port = port_from_env(os.environ, "PORT", 8000)
        emulator_port = port_from_env(os.environ, "BEDROCK_EMULATOR_PORT", 8001)
        aws_port = port_from_env(os.environ, "AWS_EMULATOR_PORT", 8002)
        if len({app_port, emulator_port, aws_port}) < 3:
            raise StackError("PORT, BEDROCK_EMULATOR_PORT and AWS_EMULATOR_PORT must differ")
        stack = services(app_port, emulator_port, aws_port)
        for service in stack:
            if service.port is not None:
                check_port_free(service.port)
        env = local_environment(os.environ, emulator_port, aws_port)
        key = ""
        for service in stack:
            if service.name == "app":
                key = bootstrap(os.environ, aws_port)
            procs.append(start(service, env))
            wait_ready(service, procs[-1])
        stack_state.write(stack_state.StackPorts(os.getpid(), STAGE, app_port, emulator_port,
                                                 aws_port))
        print(banner(app_port, emulator_port, aws_port, key), flush=True)
        while True:
            for service, proc in zip(stack, procs):
                if proc.poll() is not None:
                    raise StackError(f"{service.name} stopped with status {proc.returncode}")
            time.sleep(0.5)
    except StackError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the local stack...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack_state.clear(os.getpid())
        stop_all(procs)


if __name__ == "__main__":
    sys.exit(main())
