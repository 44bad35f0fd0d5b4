"""The shipped artifact, run as Lambda runs it (issue 11 item 12).

``chalice package`` builds deployment.zip; it is unpacked into a directory of
its own (Lambda's /var/task) and imported by a clean interpreter
(.venv-lambda: only the Lambda runtime's boto3 and botocore, at its versions,
requirements-lambda-runtime.txt), in isolated mode: neither the repository nor
the dev virtualenv is on its path. Each handler named in the packaged template
is invoked as Lambda invokes it, with the function's own environment from the
template, against the local emulators: the API handler with API Gateway
proxy events, the authorizer with a TOKEN event, the worker with an SQS
event. A missing runtime dependency, a file left out of the zip or code that
only works from the repository fails here.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chalicelib.tenancy.keys import KeyStore
from scripts.lock import normalise, read_lock
from tests.e2e.stack import PROJECT_DIR
from tests.support import EmulatorControl

VENV_BIN = Path(sys.executable).parent
LAMBDA_PYTHON = PROJECT_DIR / ".venv-lambda" / "bin" / "python"
MODEL = "us.meta.llama3-1-8b-instruct-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"

# What Lambda's Python bootstrap does for each event: import the handler's
# module from the task root, call handler(event, context), send back the
# result or the error's type. Warm: one process serves the events in turn.
RUNNER = r"""
import importlib, json, os, sys, time, traceback
task_root, handler_name = sys.argv[1], sys.argv[2]
sys.path.insert(0, task_root)
REMAINING_MS = int(os.environ.pop("TEST_REMAINING_MS", "30000"))

class Context:
    function_name = "llm-endpoint-dev"
    memory_limit_in_mb = 256
    aws_request_id = "artifact-test"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:llm-endpoint-dev"
    def get_remaining_time_in_millis(self):
        return REMAINING_MS

module_name, attribute = handler_name.rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), attribute)
answers = []
for event in json.loads(sys.stdin.read()):
    started = time.monotonic()
    try:
        answers.append({"result": handler(event, Context())})
    except Exception as exc:
        traceback.print_exc()
        answers.append({"error": type(exc).__name__})
    answers[-1]["took_s"] = time.monotonic() - started
import boto3, botocore
answers.append({"sdk": [boto3.__version__, botocore.__version__],
                "path": [p for p in sys.path if "site-packages" in p]})
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dev stage as packaged: the unpacked zip and each function's handler and environment."""
    assert LAMBDA_PYTHON.exists(), "make builds .venv-lambda (requirements-lambda-runtime.txt)"
    out = tmp_path_factory.mktemp("package")
    # What deploy.yml runs before chalice deploy: the bytecode ships.
    subprocess.run([sys.executable, "scripts/compile_bytecode.py"], cwd=PROJECT_DIR, check=True)
    subprocess.run([sys.executable, "scripts/llama_tokenizer.py"], cwd=PROJECT_DIR, check=True)
    subprocess.run([str(VENV_BIN / "chalice"), "package", "--stage", "dev", str(out)],
                   cwd=PROJECT_DIR, check=True, capture_output=True,
                   env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})
    task_root = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(out / "deployment.zip") as package:
        package.extractall(task_root)
    resources = json.loads((out / "sam.json").read_text())["Resources"]
    functions = {name: {"handler": r["Properties"]["Handler"],
                        "env": r["Properties"].get("Environment", {}).get("Variables", {})}
                 for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    return {"root": task_root, "functions": functions}


def invoke(artifact: dict[str, Any], function: str, events: list[dict[str, Any]],
           emulator_url: str, aws_url: str, **overrides: str) -> list[dict[str, Any]]:
    spec = artifact["functions"][function]
    env = {"PATH": "/usr/bin:/bin", **{k: str(v) for k, v in spec["env"].items()}, **overrides,
           "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": emulator_url, "AWS_ENDPOINT_URL_DYNAMODB": aws_url,
           "AWS_ENDPOINT_URL_SQS": aws_url, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_LAMBDA_FUNCTION_NAME": f"llm-endpoint-dev-{function}",
           "LAMBDA_TASK_ROOT": str(artifact["root"])}
    done = subprocess.run([str(LAMBDA_PYTHON), "-I", "-c", RUNNER, str(artifact["root"]),
                           spec["handler"]], input=json.dumps(events), capture_output=True,
                          text=True, env=env, cwd=artifact["root"], timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    *answers, runtime = json.loads(done.stdout.strip().splitlines()[-1])
    for answer in answers:  # what the function logged, to read a failure by
        answer["log"] = done.stderr[-4000:]
    # Only the runtime's SDK, from the clean interpreter, never the dev one.
    assert runtime["sdk"] == ["1.34.145", "1.34.145"], runtime
    assert all(".venv-lambda" in p for p in runtime["path"]), runtime
    return answers


def proxy(method: str, path: str, body: Any = None, caller: dict[str, str] | None = None,
          resource: str | None = None, params: dict[str, str] | None = None) -> dict[str, Any]:
    headers = {"Host": "abc123defg.execute-api.us-east-1.amazonaws.com",
               "X-Forwarded-Proto": "https", "Content-Type": "application/json"}
    context: dict[str, Any] = {"resourcePath": resource or path, "httpMethod": method,
                               "path": f"/dev{path}", "stage": "dev",
                               "requestId": f"req-{time.monotonic_ns()}",
                               "identity": {"sourceIp": "203.0.113.1"}}
    if caller:
        context["authorizer"] = {"principalId": caller["tenant"], **caller}
    return {"resource": resource or path, "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": params, "stageVariables": None, "requestContext": context,
            "body": None if body is None else json.dumps(body), "isBase64Encoded": False}


def test_the_zip_holds_no_dev_code(artifact: dict[str, Any]) -> None:
    root = artifact["root"]
    assert (root / "app.py").exists() and (root / "chalicelib").is_dir()
    for absent in ("devstack", "tests", "scripts", "bench", "boto3", "botocore", "moto"):
        assert not (root / absent).exists(), absent
    # Meta's rank file, copied in at build time (scripts/llama_tokenizer.py),
    # and the encoder that reads it: limited keys' prompts are counted exactly.
    assert (root / "chalicelib" / "models" / "llama3_tokenizer.model").stat().st_size > 2_000_000
    assert (root / "tiktoken").is_dir()


def test_the_zip_holds_exactly_the_locked_packages(artifact: dict[str, Any]) -> None:
    # chalice package installs requirements.txt, the hash lock (make lock): pip
    # checks each file against its hashes, and the zip holds those packages at
    # those versions, no more, no fewer.
    locked = {pin.name: pin.version for pin in read_lock((PROJECT_DIR / "requirements.txt").read_text())}
    shipped = {}
    for info in artifact["root"].glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        shipped[normalise(name)] = version
    assert shipped == locked
    assert {"aws-lambda-powertools", "jsonschema", "regex"} <= set(shipped)


@pytest.mark.parametrize("forged", [False, True], ids=["as locked", "forged"])
def test_chalice_package_checks_the_locks_hashes(tmp_path: Path, forged: bool) -> None:
    # Chalice's packager runs pip download -r requirements.txt: with hashes in
    # the file pip checks them, and a mismatch stops the package. A one-function
    # project keeps this quick: jmespath as locked, or with one digit of its hash changed.
    (pin,) = [p for p in read_lock((PROJECT_DIR / "requirements.txt").read_text())
              if p.name == "jmespath"]
    digest = pin.hashes[0]
    if forged:
        digest = digest[:-1] + ("1" if digest.endswith("0") else "0")
    (tmp_path / "requirements.txt").write_text(f"jmespath=={pin.version} --hash={digest}\n")
    (tmp_path / "app.py").write_text("from chalice import Chalice\napp = Chalice(app_name='locked')\n"
                                     "\n\n@app.lambda_function()\ndef handler(event, context):\n"
                                     "    return {}\n")
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(
        {"version": "2.0", "app_name": "locked", "stages": {"dev": {}}}))
    done = subprocess.run([str(VENV_BIN / "chalice"), "package", str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})
    if forged:
        assert done.returncode != 0
        assert "DO NOT MATCH THE HASHES" in done.stdout + done.stderr, done.stdout + done.stderr
        assert not (tmp_path / "out" / "deployment.zip").exists()
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        with zipfile.ZipFile(tmp_path / "out" / "deployment.zip") as package:
            assert f"jmespath-{pin.version}.dist-info/RECORD" in package.namelist()


def test_the_zip_ships_hash_checked_bytecode_for_every_module(artifact: dict[str, Any]) -> None:
    # Lambda cannot write __pycache__ in its task root: without these, every
    # cold start compiles chalicelib again (scripts/compile_bytecode.py).
    chalicelib = artifact["root"] / "chalicelib"
    sources = sorted(chalicelib.rglob("*.py"))
    assert len(sources) > 40
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        assert compiled.exists(), compiled
        # PEP 552 flags: bit 0 hash-based, bit 1 check the source.
        assert int.from_bytes(compiled.read_bytes()[4:8], "little") == 0b11, compiled
    assert not [p for p in chalicelib.rglob("*.pyc") if p.parent.name != "__pycache__"]


def test_the_authorizer_with_a_token_event(artifact: dict[str, Any], key_store: KeyStore,
                                           emulator_url: str, aws_url: str) -> None:
    secret, _ = key_store.create("artifact", now=int(time.time()))
    arn = "arn:aws:execute-api:us-east-1:000000000000:abc123defg/dev/POST/chat"
    good, bad = invoke(artifact, "ApiKeyAuth", [
        {"type": "TOKEN", "authorizationToken": f"Bearer {secret}", "methodArn": arn},
        {"type": "TOKEN", "authorizationToken": "Bearer llm_" + "N" * 43, "methodArn": arn},
    ], emulator_url, aws_url)
    allowed = good["result"]
    assert allowed["principalId"] == "artifact" and allowed["context"]["tenant"] == "artifact"
    assert allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert allowed["policyDocument"]["Statement"][0]["Resource"]
    assert bad["result"]["policyDocument"]["Statement"][0]["Resource"] == []
    # The keys table unreachable: the handler raises (a Lambda function error,
    # which API Gateway answers through the AUTHORIZER_CONFIGURATION_ERROR
    # gateway response and never caches), it does not return a deny.
    (down,) = invoke(artifact, "ApiKeyAuth", [
        {"type": "TOKEN", "authorizationToken": f"Bearer {secret}", "methodArn": arn},
    ], emulator_url, aws_url, KEYS_TABLE="no-such-table")
    assert down["error"] == "AuthUnavailableError"


def test_the_api_and_the_worker(artifact: dict[str, Any], emulator_url: str, aws_url: str,
                                sqs: Any, dynamodb: Any) -> None:
    caller = {"tenant": "artifact", "key_id": f"key_{time.monotonic_ns()}",
              "requests_per_minute": "100", "tokens_per_minute": "", "tokens_per_day": "100000"}
    health, chat, models, job = invoke(artifact, "APIHandler", [
        proxy("GET", "/health"),
        proxy("POST", "/chat", {"prompt": "Hello from the zip", "max_tokens": 30}, caller),
        proxy("GET", "/v1/models", None, caller),
        proxy("POST", "/chat/jobs", {"prompt": "A job from the zip", "max_tokens": 20}, caller),
    ], emulator_url, aws_url)
    assert health["result"]["statusCode"] == 200
    answer = chat["result"]
    assert answer["statusCode"] == 200, chat["log"]
    assert json.loads(answer["body"])["usage"]["total_tokens"] > 0
    assert answer["headers"]["x-ratelimit-remaining-requests"] == "99"
    # The key has a daily token limit, so its prompt was counted with the shipped tokenizer.
    assert "no Llama 3 tokenizer file" not in chat["log"]
    assert json.loads(models["result"]["body"])["data"][0]["id"] == MODEL
    accepted = job["result"]
    assert accepted["statusCode"] == 202, job["log"]
    job_id = json.loads(accepted["body"])["job_id"]
    assert accepted["headers"]["Location"] == (
        f"https://abc123defg.execute-api.us-east-1.amazonaws.com/dev/chat/jobs/{job_id}")

    # The worker, with the message the API queued, in Lambda's SQS event shape.
    queue = artifact["functions"]["ProcessJob"]["env"]["JOBS_QUEUE"]
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    messages = []
    for _ in range(20):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  AttributeNames=["All"]).get("Messages", [])
        messages += got
        if any(json.loads(m["Body"]).get("job_id") == job_id for m in messages):
            break
    message = next(m for m in messages if json.loads(m["Body"]).get("job_id") == job_id)
    event = {"Records": [{
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"], "attributes": message["Attributes"],
        "messageAttributes": {}, "md5OfBody": message["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:000000000000:{queue}",
        "awsRegion": "us-east-1"}]}
    (ran,) = invoke(artifact, "ProcessJob", [event], emulator_url, aws_url)
    assert "error" not in ran, ran["log"]
    read = invoke(artifact, "APIHandler", [
        proxy("GET", f"/chat/jobs/{job_id}", None, caller, resource="/chat/jobs/{job_id}",
              params={"job_id": job_id})], emulator_url, aws_url)[0]["result"]
    done = json.loads(read["body"])
    assert done["status"] == "succeeded" and done["result"]["usage"]["total_tokens"] > 0


def test_an_in_stream_bedrock_error_keeps_its_code_on_the_runtimes_botocore(
        artifact: dict[str, Any], emulator: EmulatorControl, emulator_url: str,
        aws_url: str) -> None:
    # botocore 1.34.145's own model has no serviceUnavailableException in
    # Bedrock's response stream (it raised an error with an empty code, a
    # 502 upstream_error); the package ships its models (chalicelib/awsdata).
    emulator.configure(fault_rate={"ServiceUnavailableException": 1.0}, fail_in_stream=True)
    caller = {"tenant": "artifact", "key_id": f"key_{time.monotonic_ns()}",
              "requests_per_minute": "", "tokens_per_minute": "", "tokens_per_day": ""}
    (streamed,) = invoke(artifact, "StreamHandler", [
        proxy("POST", "/v1/chat/completions",
              {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
              caller)], emulator_url, aws_url)
    events = [json.loads(line[len("data: "):]) for line in streamed["result"]["body"].splitlines()
              if line.startswith("data: {")]
    assert events[-1]["error"]["code"] == "upstream_unavailable", streamed["log"]


def test_a_schema_pattern_searches_with_a_timeout_in_the_zip(
        artifact: dict[str, Any], emulator_url: str, aws_url: str) -> None:
    # regex ships in the zip (requirements.txt) and bounds a client's pattern
    # on the model's strings (chalicelib/models/schemas.py).
    caller = {"tenant": "artifact", "key_id": f"key_{time.monotonic_ns()}",
              "requests_per_minute": "", "tokens_per_minute": "", "tokens_per_day": ""}
    answer = '{"name": "f", "parameters": {"a": "' + "a" * 40 + '!"}}'
    EmulatorControl(emulator_url).respond_next(answer, answer)
    tool = {"type": "function", "function": {"name": "f", "strict": True, "parameters": {
        "type": "object", "properties": {"a": {"type": "string", "pattern": "^(a|aa)+$"}},
        "required": ["a"], "additionalProperties": False}}}
    (reply,) = invoke(artifact, "APIHandler", [proxy(
        "POST", "/v1/chat/completions", {"model": MODEL, "max_tokens": 100, "tools": [tool],
                                         "messages": [{"role": "user", "content": "x"}]},
        caller)], emulator_url, aws_url)
    assert reply["result"]["statusCode"] == 422, reply["log"]
    assert "takes too long" in json.loads(reply["result"]["body"])["error"]["message"]


def test_a_converse_call_never_waits_past_its_deadline_on_the_runtimes_botocore(
        artifact: dict[str, Any], emulator: EmulatorControl, emulator_url: str, aws_url: str,
        dynamodb: Any) -> None:
    # botocore 1.34.145 takes no per-request read timeout: an attempt kept
    # the client's 18 s whatever the deadline left, so a call and its repair
    # outlasted the Lambda. The pool's timeout is cut to the deadline
    # (bedrock._DeadlineTimeout), and the prompt is billed.
    from tests.functional.test_hardening import day_tokens
    emulator.configure(latency_ms=6000)  # Bedrock's answer starts after 6 s
    key_id = f"key_{time.monotonic_ns()}"
    caller = {"tenant": "artifact", "key_id": key_id, "requests_per_minute": "",
              "tokens_per_minute": "", "tokens_per_day": "1000000"}
    (reply,) = invoke(artifact, "APIHandler", [proxy(
        "POST", "/chat", {"model": CLAUDE, "prompt": "x" * 3000, "max_tokens": 100}, caller)],
        emulator_url, aws_url, TEST_REMAINING_MS="5000")  # the deadline: 5 s - 2 s = 3 s
    assert reply["result"]["statusCode"] == 504, reply["log"]
    assert 2.9 < reply["took_s"] < 4.5
    assert [r["operation"] for r in emulator.requests()] == ["ConverseStream"]
    assert day_tokens(dynamodb, key_id) > 1000  # the prompt's 3,000 bytes, estimated
