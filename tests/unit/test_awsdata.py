"""chalicelib/awsdata: the app's trimmed botocore data is current and resolves as botocore's own.

The app's session reads only that directory (chalicelib/aws.py). These
tests hold it to what scripts/botocore_data.py writes (models from the dev
botocore, endpoint rules from the Lambda runtime's), and check under the
runtime's botocore, the one that deploys, that every shipped service
resolves to the same endpoint, partition, signing name and region in every
region of every partition, FIPS included, as with that botocore's own data.
(Under the newer dev botocore the runtime's rules differ from the dev
botocore's own in a few regions it added since, e.g. aws-eusc: deployed, the
runtime's rules are what resolve, with or without this data.)
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import botocore
import botocore.exceptions
import botocore.loaders
import pytest

from chalicelib import aws
from tests.e2e.stack import PROJECT_DIR

LAMBDA_PYTHON = PROJECT_DIR / ".venv-lambda" / "bin" / "python"

# Run by the Lambda runtime's botocore with the repository on its path:
# each (service, region, fips) resolved by botocore's data and by the app's.
COMPARE = r"""
import json, sys
import botocore.session
from botocore.config import Config
from chalicelib import aws
sys.path.insert(0, "scripts")
from botocore_data import SERVICES

full = botocore.session.get_session()
mine = aws.session()
regions = sorted({region for partition in full.get_component("data_loader").load_data(
    "endpoints")["partitions"] for region in partition["regions"]})

def resolve(session, service, region, fips):
    try:
        client = session.create_client(
            service, region_name=region, aws_access_key_id="x", aws_secret_access_key="x",
            config=Config(use_fips_endpoint=fips, ignore_configured_endpoint_urls=True))
    except Exception as exc:
        return type(exc).__name__
    signer = client._request_signer
    return [client.meta.endpoint_url, client.meta.partition, signer.signing_name,
            signer.region_name, signer.signature_version]

differences, checked = [], 0
known = full.get_available_services()  # the runtime's botocore has no signin
for service in (s for s in SERVICES if s in known):
    for region in regions:
        for fips in (False, True):
            checked += 1
            expected, got = resolve(full, service, region, fips), resolve(mine, service, region, fips)
            if expected != got:
                differences.append([service, region, fips, expected, got])
print(json.dumps({"checked": checked, "regions": len(regions), "differences": differences[:5]}))
"""


def lambda_python() -> Path:
    assert LAMBDA_PYTHON.exists(), "make builds .venv-lambda (requirements-lambda-runtime.txt)"
    return LAMBDA_PYTHON


def runtime_data_dir() -> str:
    return subprocess.run([str(lambda_python()), "-c", "import botocore, os; "
                           "print(os.path.join(os.path.dirname(botocore.__file__), 'data'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_data_is_what_the_script_writes_from_both_botocores() -> None:
    result = subprocess.run([sys.executable, "scripts/botocore_data.py",
                             "--rules-from", runtime_data_dir(), "--check"],
                            cwd=PROJECT_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    version = (aws.DATA_DIR / "VERSION").read_text()
    assert f"models: botocore {botocore.__version__}" in version
    assert "rules: botocore 1.34.145" in version


def test_on_the_runtimes_botocore_every_service_resolves_as_with_its_own_data() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_DIR)}
    result = subprocess.run([str(lambda_python()), "-c", COMPARE], cwd=PROJECT_DIR, env=env,
                            capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    assert report["regions"] >= 30 and report["checked"] >= 6 * 2 * 30  # signin aside
    assert report["differences"] == []


def test_models_keep_every_operation_and_lose_only_documentation() -> None:
    sys.path.insert(0, str(PROJECT_DIR / "scripts"))
    try:
        from botocore_data import strip_docs
    finally:
        sys.path.remove(str(PROJECT_DIR / "scripts"))
    model = {"documentation": "text", "shapes": {"S": {"type": "structure", "documentation": "x",
                                                       "members": {"documentation": {"shape": "T"}}}}}
    assert strip_docs(model) == {"shapes": {"S": {"type": "structure",
                                                  "members": {"documentation": {"shape": "T"}}}}}
    loader = botocore.loaders.Loader()
    for path in aws.DATA_DIR.glob("*/*/service-2.json"):
        service, version = path.parent.parent.name, path.parent.name
        shipped = json.loads(path.read_text())
        assert shipped == strip_docs(loader.load_service_model(service, "service-2", version))
        assert '"documentation":"' not in path.read_text()
    # Bedrock's in-stream error the runtime's own model lacks.
    stream = json.loads((aws.DATA_DIR / "bedrock-runtime" / "2023-09-30" / "service-2.json")
                        .read_text())["shapes"]["ResponseStream"]["members"]
    assert "serviceUnavailableException" in stream


def test_the_apps_session_reads_only_its_own_data() -> None:
    loader = aws.session().get_component("data_loader")
    assert loader.search_paths == [str(aws.DATA_DIR)]
    assert set(loader.list_available_services("service-2")) == {
        "bedrock-runtime", "dynamodb", "sns", "sqs", "sts", "sso", "sso-oidc", "signin"}
    # A service nobody shipped fails at once, by name, not with a wrong model.
    with pytest.raises(botocore.exceptions.UnknownServiceError):
        aws.session().create_client("s3", region_name="us-east-1")
