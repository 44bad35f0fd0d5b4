"""The deploy scripts answer a missing precondition in one line, never a traceback.

Run as the deploy guide runs them (``python scripts/<name>.py --stage <stage>``), each in a
clean environment: no deployed state yet, a broken or older state, no credentials, no region,
and AWS unreachable. Nothing here reaches AWS: the one call that gets as far as the network is
pointed at a closed loopback port.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import preconditions
from tests.support import free_port

PROJECT_DIR = Path(__file__).resolve().parents[2]
SCRIPTS = ("stream_routes.py", "gateway_responses.py")
ARN = "arn:aws:lambda:us-east-1:123456789012:function:llm-endpoint-x-stream_handler"
FULL_RECORD = {"resources": [
    {"name": "stream_handler", "resource_type": "lambda_function", "lambda_arn": ARN},
    {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "abc123",
     "rest_api_url": "https://abc123.execute-api.us-east-1.amazonaws.com/x/"}]}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No AWS settings at all: no keys, no profile files, no instance metadata."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1", **extra)
    return env


@pytest.fixture
def stage() -> Iterator[str]:
    """A stage name of this test's own; its state file, if the test writes one, is removed."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    (preconditions.STATE_DIR / f"{name}.json").unlink(missing_ok=True)


def write_state(stage: str, content: str) -> None:
    preconditions.STATE_DIR.mkdir(parents=True, exist_ok=True)
    (preconditions.STATE_DIR / f"{stage}.json").write_text(content)


def run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, f"scripts/{script}", *args], cwd=PROJECT_DIR, env=env,
                          capture_output=True, text=True, timeout=60)


def one_line(result: subprocess.CompletedProcess[str], status: int, *words: str) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_deployed_state_yet(script: str, stage: str, tmp_path: Path) -> None:
    line = one_line(run(script, clean_env(tmp_path, **CREDENTIALS), "--stage", stage), 2,
                    f"no deployed state for stage {stage}", f"chalice deploy --stage {stage}")
    assert line.startswith(f"{script}: ")


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_state_file_that_is_not_chalices(script: str, stage: str, tmp_path: Path) -> None:
    write_state(stage, "{not json")
    one_line(run(script, clean_env(tmp_path, **CREDENTIALS), "--stage", stage), 2,
             "is not Chalice's deployment record")


@pytest.mark.parametrize(("script", "missing"), [
    ("stream_routes.py", "lambda_function stream_handler"), ("gateway_responses.py", "rest_api")])
def test_a_state_from_an_older_deploy(script: str, missing: str, stage: str, tmp_path: Path) -> None:
    # Before the stream function existed; for the gateway responses, before the API did.
    kept = [r for r in FULL_RECORD["resources"] if r["name"] not in missing]
    write_state(stage, json.dumps({"resources": kept}))
    one_line(run(script, clean_env(tmp_path, **CREDENTIALS), "--stage", stage), 2, f"has no {missing}")


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_credentials(script: str, stage: str, tmp_path: Path) -> None:
    write_state(stage, json.dumps(FULL_RECORD))
    one_line(run(script, clean_env(tmp_path, AWS_DEFAULT_REGION="us-east-1"), "--stage", stage), 2,
             "no AWS credentials", "aws sts get-caller-identity")


def test_no_region_when_the_api_is_named_by_hand(tmp_path: Path) -> None:
    # With --rest-api-id there is no deployed record to read the region from.
    one_line(run("gateway_responses.py", clean_env(tmp_path, **CREDENTIALS),
                 "--stage", "dev", "--rest-api-id", "abc123"), 2, "no AWS region", "AWS_DEFAULT_REGION")


def test_the_region_comes_from_the_deployed_api_when_the_environment_has_none(
        stage: str, tmp_path: Path) -> None:
    # No AWS_DEFAULT_REGION: the API's URL names us-east-1, so the call is made (and fails to
    # connect, as the endpoint is a closed port), rather than stopping for want of a region.
    write_state(stage, json.dumps(FULL_RECORD))
    env = clean_env(tmp_path, **CREDENTIALS,
                    AWS_ENDPOINT_URL_API_GATEWAY=f"http://127.0.0.1:{free_port()}")
    one_line(run("gateway_responses.py", env, "--stage", stage), 1, "cannot call AWS")


@pytest.mark.parametrize("script", SCRIPTS)
def test_aws_unreachable_is_one_line(script: str, stage: str, tmp_path: Path) -> None:
    write_state(stage, json.dumps(FULL_RECORD))
    env = clean_env(tmp_path, **CREDENTIALS, AWS_DEFAULT_REGION="us-east-1",
                    AWS_ENDPOINT_URL_API_GATEWAY=f"http://127.0.0.1:{free_port()}")
    one_line(run(script, env, "--stage", stage), 1, "cannot call AWS", "127.0.0.1")


def test_aws_refusing_a_call_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from botocore.exceptions import ClientError

    def refused(argv: list[str] | None) -> int:
        raise ClientError({"Error": {"Code": "NotFoundException",
                                     "Message": "Invalid REST API identifier specified"}}, "GetResources")

    assert preconditions.run(refused, []) == 1
    assert capsys.readouterr().err == ("deploy script: AWS refused GetResources: NotFoundException: "
                                       "Invalid REST API identifier specified\n")


def test_gen_policies_names_an_unknown_model_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from scripts import gen_policies

    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["ALLOWED_MODELS"] += ",meta.llama9-typo-v1:0"
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(gen_policies, "CHALICE_DIR", tmp_path)
    assert gen_policies.main(["--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stage dev's ALLOWED_MODELS" in err[0] and "meta.llama9-typo-v1:0" in err[0]
    assert not list(tmp_path.glob("policy-*.json"))  # nothing was written
