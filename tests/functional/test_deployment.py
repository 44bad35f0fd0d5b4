"""Deployment as code, checked offline: what `chalice package` makes for each
stage, the infra templates, the IAM policies and the GitHub workflows."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.bootstrap import parameter_default, table_definitions
from chalicelib.models.catalog import PROFILE_REGIONS
from chalicelib.models.registry import REGISTRY
from scripts.gen_policies import bedrock_resources, stage_env
from tests.e2e.stack import PROJECT_DIR

VENV_BIN = Path(sys.executable).parent
CHECKOV = PROJECT_DIR / ".venv-checkov" / "bin" / "checkov"
CONFIG = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
# The pages (playground, admin) and their files carry no data; each asks for a key.
PUBLIC_ROUTES = {"/health", "/", "/admin", "/static/{name}"}
# Anthropic's clients send the key as x-api-key or as Bearer: these routes
# check it in the function (chalicelib/tenancy/header_auth.py says why).
KEY_CHECKED_IN_APP = {"/v1/messages", "/v1/messages/count_tokens"}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for stage in STAGES:
        target = tmp_path_factory.mktemp(stage)
        subprocess.run([str(VENV_BIN / "chalice"), "package", "--stage", stage, str(target)],
                       cwd=PROJECT_DIR, check=True, capture_output=True,
                       env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})
        out[stage] = target / "sam.json"
    return out


def template(packaged: dict[str, Path], stage: str) -> dict[str, Any]:
    return json.loads(packaged[stage].read_text())


def statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for policy in resources[role]["Properties"]["Policies"]
            for s in policy["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("stage", STAGES)
def test_each_role_grants_only_what_its_function_calls(packaged: dict[str, Path], stage: str) -> None:
    resources = template(packaged, stage)["Resources"]
    env = stage_env(CONFIG, stage)
    models = env["ALLOWED_MODELS"].split(",")
    own = {env[name] for name in ("KEYS_TABLE", "USAGE_TABLE", "JOBS_TABLE", "CACHE_TABLE",
                                  "RESPONSES_TABLE", "JOBS_QUEUE")}
    actions_by_role: dict[str, set[str]] = {}
    grants: dict[str, set[tuple[str, str]]] = {}  # (action, resource), logs aside
    for role in ("ApiHandlerRole", "ApiKeyAuthRole", "ProcessJobRole", "StreamHandlerRole"):
        actions_by_role[role] = set()
        grants[role] = set()
        for statement in statements(resources, role):
            assert statement["Effect"] == "Allow"
            actions = as_list(statement["Action"])
            targets = as_list(statement["Resource"])
            actions_by_role[role] |= set(actions)
            grants[role] |= {(a, str(t)) for a in actions for t in targets
                             if not a.startswith("logs:")}
            assert all("*" not in a for a in actions), statement  # no wildcard actions
            assert "*" not in targets, statement  # no Resource "*"
            service = actions[0].split(":")[0]
            for arn in targets:
                if service == "bedrock":
                    # An allowed model or the foundation model an allowed profile serves.
                    assert any(arn.endswith(f"/{m}") or arn.endswith(f"/{REGISTRY[m].base_id}")
                               for m in models), arn
                    assert arn.split(":")[3] in {r for rs in PROFILE_REGIONS.values() for r in rs} \
                        | {"*"}, arn
                elif service in ("dynamodb", "sqs"):
                    assert arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1] in own, arn
                elif service == "logs":
                    assert f"/aws/lambda/llm-endpoint-{stage}" in arn
                elif service == "sns":  # budget alerts, to the stack's own topic
                    assert arn.endswith(f":{env['BUDGET_ALERTS_TOPIC']}"), arn
                    assert actions == ["sns:Publish"], statement
                else:
                    raise AssertionError(f"unexpected service {service}")
    assert actions_by_role["ApiKeyAuthRole"] == {"dynamodb:GetItem", "logs:CreateLogGroup",
                                                 "logs:CreateLogStream", "logs:PutLogEvents"}
    # Llama calls and ConverseStream read Bedrock's stream (completion.py);
    # InvokeModel only where the stage serves Converse or embedding models.
    expected = {"bedrock:InvokeModelWithResponseStream"}
    if any(REGISTRY[m].api == "converse" or REGISTRY[m].kind == "embedding" for m in models):
        expected.add("bedrock:InvokeModel")
    for role in ("ApiHandlerRole", "ProcessJobRole", "StreamHandlerRole"):
        assert {a for a in actions_by_role[role] if a.startswith("bedrock:")} == expected
    # The stream function's role is the API's: both reserve over several usage
    # items (read back, a month item started); the worker only settles.
    usage_read = {g for g in grants["ApiHandlerRole"]
                  if g[0] in ("dynamodb:BatchGetItem", "dynamodb:PutItem")
                  and g[1].endswith(f"/{env['USAGE_TABLE']}")}
    assert len(usage_read) == 2 and usage_read <= grants["StreamHandlerRole"]
    # The /admin routes are the API function's alone: key management and the spend scan.
    usage_scan = ("dynamodb:Scan", f"arn:aws:dynamodb:*:*:table/{env['USAGE_TABLE']}")
    admin = {g for g in grants["ApiHandlerRole"]
             if g == usage_scan or (g[0] in ("dynamodb:Scan", "dynamodb:PutItem",
                                             "dynamodb:UpdateItem")
                                    and g[1].endswith(f"/{env['KEYS_TABLE']}"))}
    assert len(admin) == 4
    assert grants["StreamHandlerRole"] == grants["ApiHandlerRole"] - admin
    assert not admin & grants["ProcessJobRole"]
    assert "sqs:ReceiveMessage" in actions_by_role["ProcessJobRole"]
    assert "sqs:ReceiveMessage" not in actions_by_role["ApiHandlerRole"]
    assert "dynamodb:BatchGetItem" in actions_by_role["ApiHandlerRole"]  # GET /usage
    assert not usage_read & grants["ProcessJobRole"]


@pytest.mark.parametrize("stage", STAGES)
def test_profile_and_destination_models_are_granted(packaged: dict[str, Path], stage: str) -> None:
    resources = template(packaged, stage)["Resources"]
    arns = {arn for s in statements(resources, "ApiHandlerRole") if s["Sid"] == "InvokeModels"
            for arn in as_list(s["Resource"])}
    for model in stage_env(CONFIG, stage)["ALLOWED_MODELS"].split(","):
        spec = REGISTRY[model]
        if spec.profile is None:  # called in the stack's own region: a US one here
            assert {f"arn:aws:bedrock:{r}::foundation-model/{model}"
                    for r in PROFILE_REGIONS["us"]} <= arns
            assert f"arn:aws:bedrock:*::foundation-model/{model}" not in arns
            continue
        for region in PROFILE_REGIONS[spec.profile]:
            assert f"arn:aws:bedrock:{region}:*:inference-profile/{model}" in arns
            assert f"arn:aws:bedrock:{region}::foundation-model/{spec.base_id}" in arns


def test_the_dev_stage_serves_several_families_and_grants_exactly_them() -> None:
    """Issue 14's "done when": Llama 3.1 8B, a Claude, a Nova and the embedding
    models, and the policy names those and nothing else."""
    models = stage_env(CONFIG, "dev")["ALLOWED_MODELS"].split(",")
    families = {REGISTRY[m].family for m in models}
    assert {"llama3", "claude", "nova", "titan-embed", "cohere-embed"} <= families
    policy = json.loads((PROJECT_DIR / ".chalice" / "policy-dev-api.json").read_text())
    granted = [s for s in policy["Statement"] if s["Sid"] == "InvokeModels"]
    assert len(granted) == 1
    assert granted[0]["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    assert set(granted[0]["Resource"]) == set(bedrock_resources(models))
    named = {arn.rsplit("/", 1)[1] for arn in granted[0]["Resource"]}
    assert named == set(models) | {REGISTRY[m].base_id for m in models}
    assert not any("*" in name for name in named)


@pytest.mark.parametrize("model_id, expected", [
    ("eu.amazon.nova-lite-v1:0", {
        *(f"arn:aws:bedrock:{r}:*:inference-profile/eu.amazon.nova-lite-v1:0"
          for r in PROFILE_REGIONS["eu"]),
        *(f"arn:aws:bedrock:{r}::foundation-model/amazon.nova-lite-v1:0"
          for r in PROFILE_REGIONS["eu"])}),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", {
        "arn:aws:bedrock:*:*:inference-profile/global.anthropic.claude-haiku-4-5-20251001-v1:0",
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
        "arn:aws:bedrock:::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"}),
])
def test_policy_resources_per_profile_geography(model_id: str, expected: set[str]) -> None:
    assert set(bedrock_resources([model_id])) == expected


@pytest.mark.parametrize("stage_models, geography", [
    (["us.meta.llama3-1-8b-instruct-v1:0", "cohere.embed-english-v3"], "us"),
    (["eu.amazon.nova-lite-v1:0", "amazon.titan-embed-text-v2:0"], "eu"),
])
def test_base_models_are_granted_in_the_stacks_own_regions(stage_models: list[str],
                                                           geography: str) -> None:
    base = stage_models[1]
    granted = {arn for arn in bedrock_resources(stage_models) if arn.endswith(f"/{base}")}
    assert granted == {f"arn:aws:bedrock:{r}::foundation-model/{base}"
                       for r in PROFILE_REGIONS[geography]}


def test_a_stage_whose_regions_cannot_be_told_is_refused() -> None:
    with pytest.raises(SystemExit):
        bedrock_resources(["cohere.embed-english-v3"])
    with pytest.raises(SystemExit):
        bedrock_resources(["us.meta.llama3-1-8b-instruct-v1:0", "eu.amazon.nova-lite-v1:0",
                           "cohere.embed-english-v3"])


@pytest.mark.parametrize("stage", STAGES)
def test_every_route_but_health_carries_the_authorizer(packaged: dict[str, Path],
                                                       stage: str) -> None:
    paths = template(packaged, stage)["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert {"/chat", "/chat/jobs", "/chat/jobs/{job_id}", "/v1/chat/completions", "/v1/models",
            "/v1/models/{model_id}", "/health", "/usage", "/", "/static/{name}"} <= set(paths)
    for path, methods in paths.items():
        for method, spec in methods.items():
            if method == "options":
                continue
            secured = spec.get("security") == [{"api_key_auth": []}]
            assert secured == (path not in PUBLIC_ROUTES | KEY_CHECKED_IN_APP), \
                f"{method.upper()} {path}"


@pytest.mark.parametrize("stage", STAGES)
def test_the_package_carries_the_playground_files(packaged: dict[str, Path], stage: str) -> None:
    import zipfile
    from chalicelib.web.playground import ASSETS
    with zipfile.ZipFile(packaged[stage].parent / "deployment.zip") as archive:
        names = set(archive.namelist())
    assert {f"chalicelib/web/static/{name}" for name in ASSETS} <= names


@pytest.mark.parametrize("stage", STAGES)
def test_memory_timeouts_and_worker_source(packaged: dict[str, Path], stage: str) -> None:
    resources = template(packaged, stage)["Resources"]
    api, auth, worker = (resources[name]["Properties"]
                         for name in ("APIHandler", "ApiKeyAuth", "ProcessJob"))
    assert (api["MemorySize"], auth["MemorySize"], worker["MemorySize"]) == (256, 128, 256)
    # The API handler outlives the Bedrock client's worst case (~24 s) and
    # API Gateway's 29 s; the worker outlives the jobs read timeout.
    assert (api["Timeout"], auth["Timeout"], worker["Timeout"]) == (30, 5, 300)
    stream = resources["StreamHandler"]["Properties"]
    assert (stream["MemorySize"], stream["Timeout"]) == (256, 30)
    source = worker["Events"]["ProcessJobSqsEventSource"]["Properties"]
    env = stage_env(CONFIG, stage)
    assert source["Queue"]["Fn::Sub"].endswith(f":{env['JOBS_QUEUE']}")
    assert source["BatchSize"] == 1
    assert source["ScalingConfig"]["MaximumConcurrency"] == int(env["JOBS_MAX_CONCURRENCY"])


@pytest.mark.parametrize("stage", STAGES)
def test_configuration_names_derive_from_the_template(stage: str) -> None:
    env = stage_env(CONFIG, stage)
    tables = {t["TableName"] for t in table_definitions(stage)}
    assert {env["KEYS_TABLE"], env["USAGE_TABLE"], env["JOBS_TABLE"], env["CACHE_TABLE"],
            env["RESPONSES_TABLE"]} == tables
    assert env["JOBS_QUEUE"] == f"llm-endpoint-{stage}-jobs"
    assert int(env["JOBS_MAX_RECEIVES"]) == parameter_default("JobsMaxReceives")
    assert CONFIG["autogen_policy"] is False


def test_committed_policies_match_their_source() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_policies.py", "--check"],
                            cwd=PROJECT_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_templates_pass_cfn_lint(packaged: dict[str, Path]) -> None:
    files = [*map(str, PROJECT_DIR.glob("infra/*.yaml")), *map(str, packaged.values())]
    result = subprocess.run([str(VENV_BIN / "cfn-lint"), *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_templates_pass_checkov(packaged: dict[str, Path], tmp_path: Path) -> None:
    assert CHECKOV.exists(), "make builds .venv-checkov"
    files = [*PROJECT_DIR.glob("infra/*.yaml"), *packaged.values()]
    args = [arg for f in files for arg in ("-f", str(f))]
    result = subprocess.run([str(CHECKOV), "--config-file", ".checkov.yaml", *args, "-o", "json"],
                            cwd=PROJECT_DIR, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "BC_SKIP_MAPPING": "TRUE",
                                 "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert sum(r["summary"]["passed"] for r in reports) > 50
    assert all(r["summary"]["failed"] == 0 for r in reports)


def test_every_checkov_skip_gives_its_reason() -> None:
    for line in (PROJECT_DIR / ".checkov.yaml").read_text().splitlines():
        if line.strip().startswith("- CKV"):
            assert re.search(r"#\s+\S.{20,}", line), line
    for path in PROJECT_DIR.glob("infra/*.yaml"):
        for resource in yaml.safe_load(path.read_text())["Resources"].values():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip.get("comment", "")) > 20, skip


def test_workflows_pass_the_schema_and_zizmor() -> None:
    workflows = sorted(map(str, PROJECT_DIR.glob(".github/workflows/*.yml")))
    schema = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema",
                             "vendor.github-workflows", *workflows], capture_output=True, text=True)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    zizmor = subprocess.run([str(VENV_BIN / "zizmor"), "--offline", ".github/workflows/"],
                            cwd=PROJECT_DIR, capture_output=True, text=True)
    assert zizmor.returncode == 0 and "No findings to report" in zizmor.stdout + zizmor.stderr, (
        zizmor.stdout + zizmor.stderr)


def test_workflows_pin_actions_and_use_oidc() -> None:
    for path in PROJECT_DIR.glob(".github/workflows/*.yml"):
        text = path.read_text()
        for use in re.findall(r"uses:\s*(\S+)", text):
            if not use.startswith("$/"):
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", use), use
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    deploy = yaml.safe_load((PROJECT_DIR / ".github/workflows/deploy.yml").read_text())
    job = deploy["jobs"]["deploy"]
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    steps = " ".join(json.dumps(s) for s in job["steps"])
    assert "secrets.AWS_ROLE_ARN" in steps and "chalice deploy --stage" in steps
    assert "s3 sync" in steps and "/health" in steps
    ci = yaml.safe_load((PROJECT_DIR / ".github/workflows/ci.yml").read_text())
    assert ci["jobs"]["deploy"]["needs"] == "test"


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_functions_have_a_reserved_concurrency(packaged: dict[str, Path], stage: str) -> None:
    """A burst on /chat cannot take the account's whole Lambda pool from the
    authorizer and the worker: the API function and the streaming function
    (which serves /chat and /v1/chat/completions once deployed) each have a
    ceiling of their own."""
    resources = template(packaged, stage)["Resources"]
    functions = CONFIG["stages"][stage]["lambda_functions"]
    ceilings = []
    for name, resource in (("api_handler", "APIHandler"), ("stream_handler", "StreamHandler")):
        ceiling = functions[name]["reserved_concurrency"]
        assert resources[resource]["Properties"]["ReservedConcurrentExecutions"] == ceiling
        ceilings.append(ceiling)
    # AWS keeps 100 of the default 1,000 unreserved; the worker's own cap fits beside them.
    jobs = int(stage_env(CONFIG, stage)["JOBS_MAX_CONCURRENCY"])
    assert all(c > 0 for c in ceilings) and sum(ceilings) + jobs <= 900


@pytest.mark.parametrize("stage", STAGES)
def test_the_stream_function_runs_the_streaming_runtime_loop(packaged: dict[str, Path],
                                                             stage: str) -> None:
    """Its exec wrapper is in the package, executable, and starts the
    Runtime API loop on app.serve with the runtime's interpreter."""
    stream = template(packaged, stage)["Resources"]["StreamHandler"]["Properties"]
    wrapper = stream["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"]
    assert wrapper.startswith("/var/task/")
    with zipfile.ZipFile(packaged[stage].parent / "deployment.zip") as package:
        info = package.getinfo(wrapper.removeprefix("/var/task/"))
        script = package.read(info).decode()
        assert info.external_attr >> 16 & 0o111 == 0o111
        assert "chalicelib/streaming/lambda_runtime.py" in package.namelist()
    assert script.startswith("#!/bin/sh\n")
    assert 'exec "$PYTHON" -m chalicelib.streaming.lambda_runtime app.serve' in script


def test_the_deploy_streams_the_routes_after_chalice_deploy() -> None:
    steps = yaml.safe_load((PROJECT_DIR / ".github/workflows/deploy.yml").read_text())[
        "jobs"]["deploy"]["steps"]
    runs = [step.get("run", "") for step in steps]
    deploy = next(i for i, run in enumerate(runs) if run.startswith("chalice deploy"))
    wire = next(i for i, run in enumerate(runs) if "scripts/stream_routes.py" in run)
    assert wire > deploy
    # The package ships chalicelib's bytecode (scripts/compile_bytecode.py).
    compile_step = next(i for i, run in enumerate(runs) if "scripts/compile_bytecode.py" in run)
    assert compile_step < deploy
    # and Meta's tokenizer file, which chalicelib.models.tokens counts Llama prompts with.
    tokenizer = next(i for i, run in enumerate(runs) if "scripts/llama_tokenizer.py" in run)
    assert tokenizer < deploy


def test_stream_routes_puts_streaming_integrations() -> None:
    """What the deploy step sends, checked against botocore's own API models
    (the Stubber refuses parameters the service does not define)."""
    import botocore.session
    from botocore.stub import Stubber

    from app import STREAM_ROUTES
    from scripts.stream_routes import deployed, wire

    arn = "arn:aws:lambda:us-east-1:123456789012:function:llm-endpoint-prod-stream_handler"
    record = {"resources": [
        {"name": "api_handler", "resource_type": "lambda_function", "lambda_arn": "x"},
        {"name": "stream_handler", "resource_type": "lambda_function", "lambda_arn": arn},
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "abc123"}]}
    assert deployed(record) == ("abc123", arn)
    session = botocore.session.get_session()
    apigateway = session.create_client("apigateway", region_name="us-east-1",
                                       aws_access_key_id="x", aws_secret_access_key="x")
    lambda_client = session.create_client("lambda", region_name="us-east-1",
                                          aws_access_key_id="x", aws_secret_access_key="x")
    uri = ("arn:aws:apigateway:us-east-1:lambda:path/2021-11-15/functions/"
           f"{arn}/response-streaming-invocations")
    with Stubber(apigateway) as api_stub, Stubber(lambda_client) as lambda_stub:
        api_stub.add_response("get_resources", {"items": [
            {"id": "r1", "path": "/chat"}, {"id": "r2", "path": "/v1/chat/completions"},
            {"id": "r3", "path": "/health"}, {"id": "r4", "path": "/v1/completions"},
            {"id": "r5", "path": "/v1/messages"}, {"id": "r6", "path": "/v1/responses"}]},
            {"restApiId": "abc123"})
        for resource, path in (("r1", "/chat"), ("r2", "/v1/chat/completions"),
                               ("r4", "/v1/completions"), ("r5", "/v1/messages"),
                               ("r6", "/v1/responses")):
            api_stub.add_response("put_integration", {}, {
                "restApiId": "abc123", "resourceId": resource, "httpMethod": "POST",
                "type": "AWS_PROXY", "integrationHttpMethod": "POST", "uri": uri,
                "responseTransferMode": "STREAM", "timeoutInMillis": 29000})
            if path == "/chat":
                lambda_stub.add_response("add_permission", {}, {
                    "FunctionName": arn, "StatementId": "stream-chat",
                    "Action": "lambda:InvokeFunction", "Principal": "apigateway.amazonaws.com",
                    "SourceArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/*/POST/chat"})
            else:  # already granted by an earlier deploy
                lambda_stub.add_client_error("add_permission", "ResourceConflictException")
        api_stub.add_response("create_deployment", {}, {
            "restApiId": "abc123", "stageName": "prod",
            "description": "stream routes from stream_handler"})
        assert wire(apigateway, lambda_client, "abc123", "prod", arn, STREAM_ROUTES) == [
            "POST /chat", "POST /v1/chat/completions", "POST /v1/completions",
            "POST /v1/messages", "POST /v1/responses"]
        api_stub.assert_no_pending_responses()
        lambda_stub.assert_no_pending_responses()
