"""The deploy role (infra/bootstrap.yaml) cannot make itself, or any role it
creates, an administrator: roles it creates or edits must carry the
permissions boundary, the boundary grants only the app's own resources, and
only the protected prod environment may assume it. Read as plain YAML (the
templates use the long form of intrinsic functions)."""
from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.e2e.stack import PROJECT_DIR

BOOTSTRAP = yaml.safe_load((PROJECT_DIR / "infra" / "bootstrap.yaml").read_text())
ROLES = yaml.safe_load((PROJECT_DIR / "infra" / "function-roles.yaml").read_text())
CONFIG = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
RESOURCES = BOOTSTRAP["Resources"]
DEPLOY = RESOURCES["DeployRole"]["Properties"]
STATEMENTS = [s for p in DEPLOY["Policies"] for s in p["PolicyDocument"]["Statement"]]
# IAM actions that change what a role may do.
ROLE_WRITES = {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy",
               "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:PutRolePermissionsBoundary",
               "iam:UpdateAssumeRolePolicy", "iam:DeleteRolePermissionsBoundary",
               "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:CreatePolicy",
               "iam:AttachUserPolicy", "iam:PutUserPolicy", "iam:CreateUser",
               "iam:CreateAccessKey", "iam:UpdateRole"}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed(action: str) -> list[dict[str, Any]]:
    """The Allow statements that grant ``action`` (wildcards included)."""
    service = action.split(":")[0]
    return [s for s in STATEMENTS if s["Effect"] == "Allow" and any(
        a in (action, "*", f"{service}:*") for a in as_list(s.get("Action", [])))]


def test_only_the_protected_environment_can_assume_the_role() -> None:
    (statement,) = DEPLOY["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert set(statement["Condition"]) == {"StringEquals"}  # no StringLike wildcards
    claims = statement["Condition"]["StringEquals"]
    assert claims["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert claims["token.actions.githubusercontent.com:sub"] == {
        "Fn::Sub": "repo:${GitHubRepository}:environment:prod"}


def test_the_deploy_workflow_runs_in_that_environment() -> None:
    workflow = yaml.safe_load((PROJECT_DIR / ".github/workflows/deploy.yml").read_text())
    assert workflow["jobs"]["deploy"]["environment"] == "prod"


@pytest.mark.parametrize("action", sorted(ROLE_WRITES))
def test_role_writes_need_the_boundary(action: str) -> None:
    for statement in allowed(action):
        assert statement["Condition"] == {
            "StringEquals": {"iam:PermissionsBoundary": {"Ref": "FunctionBoundary"}}}, statement
        assert not statement.get("NotAction") and not statement.get("NotResource")


def test_creating_roles_is_possible_only_with_the_boundary() -> None:
    assert allowed("iam:CreateRole") and allowed("iam:PutRolePolicy")  # chalice needs them


def test_the_boundary_cannot_be_removed_or_rewritten() -> None:
    denies = [s for s in STATEMENTS if s["Effect"] == "Deny"]
    denied = {a for s in denies for a in as_list(s.get("Action", []))}
    assert {"iam:DeleteRolePermissionsBoundary", "iam:CreatePolicyVersion",
            "iam:SetDefaultPolicyVersion"} <= denied
    itself = [s for s in denies if s.get("Resource") == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AppName}-github-deploy"}]
    assert itself and all(a.startswith(("iam:Get", "iam:List")) for a in itself[0]["NotAction"])
    assert DEPLOY["RoleName"] == {"Fn::Sub": "${AppName}-github-deploy"}


def test_the_boundary_grants_only_the_apps_resources() -> None:
    boundary = RESOURCES["FunctionBoundary"]
    assert boundary["Type"] == "AWS::IAM::ManagedPolicy"
    for statement in boundary["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        for action in as_list(statement["Action"]):
            assert "*" not in action and not action.startswith(("iam:", "sts:")), action
        for resource in as_list(statement["Resource"]):
            assert resource != "*"
    # Everything the functions' own policies grant fits inside it.
    granted = {a for f in (PROJECT_DIR / ".chalice").glob("policy-*.json")
               for s in json.loads(f.read_text())["Statement"] for a in as_list(s["Action"])}
    bounded = {a for s in boundary["Properties"]["PolicyDocument"]["Statement"]
               for a in as_list(s["Action"])}
    assert granted <= bounded


@pytest.mark.parametrize("stage", sorted(CONFIG["stages"]))
def test_function_roles_carry_the_boundary_under_chalices_names(stage: str) -> None:
    functions = CONFIG["stages"][stage]["lambda_functions"]
    names = {f"{CONFIG['app_name']}-{stage}-{name}" for name in functions}
    made = set()
    for role in ROLES["Resources"].values():
        properties = role["Properties"]
        assert properties["PermissionsBoundary"] == {"Fn::Sub": (
            "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${AppName}-function-boundary")}
        made.add(properties["RoleName"]["Fn::Sub"].replace("${AppName}", CONFIG["app_name"])
                 .replace("${Stage}", stage))
    assert made == names
    assert RESOURCES["FunctionBoundary"]["Properties"]["ManagedPolicyName"] == {
        "Fn::Sub": "${AppName}-function-boundary"}


def test_the_deploy_role_can_set_and_clear_reserved_concurrency() -> None:
    """chalice deploy puts the API function's reserved concurrency and
    deletes it on the functions that have none."""
    for action in ("lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency"):
        (statement,) = allowed(action)
        assert statement["Resource"] == {"Fn::Sub": (
            "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AppName}-*")}


def test_api_gateway_rights_name_this_apps_api_once_it_exists() -> None:
    assert BOOTSTRAP["Parameters"]["RestApiId"]["Default"] == ""
    assert BOOTSTRAP["Conditions"]["FirstDeploy"] == {
        "Fn::Equals": [{"Ref": "RestApiId"}, ""]}
    statements = [s for s in STATEMENTS if any(
        str(a).startswith("apigateway:") for a in as_list(s.get("Action", [])))]
    assert statements and all(s["Effect"] == "Allow" for s in statements)
    for statement in statements:
        condition, first, after = statement["Resource"]["Fn::If"]
        assert condition == "FirstDeploy"
        # Before the API exists: create one (POST /restapis), in this region only.
        assert all("${AWS::Region}::/" in r["Fn::Sub"] for r in first)
        # After: that API and its children, nothing else (no create, no other API's tags).
        assert [r["Fn::Sub"] for r in after] == [
            "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RestApiId}",
            "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RestApiId}/*"]
