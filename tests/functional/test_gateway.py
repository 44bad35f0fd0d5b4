"""API Gateway's own answers (issue 11 items 2 and 3), tested on the deployed
behaviour: the authorizer driven as Lambda drives it (a TOKEN event), the
gateway responses that deploy with the stack (infra/gateway-responses.yaml)
checked as API Gateway renders them and put on a REST API (moto) by the
deploy script, and the local gateway answering from the same file."""
from __future__ import annotations

import json
import re
import time
from typing import Any

import botocore.session
import pytest

import app as app_module
from chalicelib.errors import AuthUnavailableError
from chalicelib.tenancy.keys import KeyStore
from devstack.gateway import load_responses, render
from scripts.gateway_responses import apply, responses
from tests.conftest import ApiFactory
from tests.openapi_check import OAS31Validator, _REGISTRY

ERROR = OAS31Validator({"$ref": "urn:openapi#/components/schemas/Error"}, registry=_REGISTRY)
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123defg/prod/GET/v1/models"
# type -> (status, code, retryable) as the OpenAI SDK should see it.
EXPECTED = {
    "UNAUTHORIZED": (401, "missing_api_key", False),
    "ACCESS_DENIED": (401, "invalid_api_key", False),
    "AUTHORIZER_CONFIGURATION_ERROR": (503, "auth_unavailable", True),
    "AUTHORIZER_FAILURE": (503, "auth_unavailable", True),
    "THROTTLED": (429, "endpoint_throttled", True),
    "INTEGRATION_TIMEOUT": (504, "gateway_timeout", False),
    "INTEGRATION_FAILURE": (503, "endpoint_busy", True),
    "MISSING_AUTHENTICATION_TOKEN": (404, "not_found", False),
    "REQUEST_TOO_LARGE": (413, "request_too_large", False),
}


class Context:
    """What Lambda passes as the handler's context (the fields Chalice reads)."""

    aws_request_id = "lambda-request-id"
    function_name = "llm-endpoint-prod-api_key_auth"

    def get_remaining_time_in_millis(self) -> int:
        return 5000


def token_event(token: str) -> dict[str, Any]:
    return {"type": "TOKEN", "authorizationToken": token, "methodArn": METHOD_ARN}


def test_the_authorizer_answers_as_lambda(make_api: ApiFactory, key_store: KeyStore) -> None:
    make_api()  # the runtime on the emulators
    secret, _ = key_store.create("acme", now=int(time.time()))
    allowed = app_module.api_key_auth(token_event(f"Bearer {secret}"), Context())
    (statement,) = allowed["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Resource"]
    assert allowed["context"]["tenant"] == "acme"
    # A bad key: a policy that allows nothing, which API Gateway answers as
    # ACCESS_DENIED (and may cache: the key stays bad).
    refused = app_module.api_key_auth(token_event("Bearer llm_" + "Q" * 43), Context())
    assert refused["policyDocument"]["Statement"][0]["Resource"] == []


def test_a_lookup_failure_raises_instead_of_denying(make_api: ApiFactory) -> None:
    api = make_api()
    api.runtime._built["keys"] = KeyStore(api.runtime.dynamodb, "no-such-table")
    # Lambda reports the exception as a function error; API Gateway answers
    # AUTHORIZER_CONFIGURATION_ERROR (500 by default) and, as it caches only
    # policies an authorizer returned, caches nothing: the key works again as
    # soon as the table does. Never a deny.
    with pytest.raises(AuthUnavailableError):
        app_module.api_key_auth(token_event("Bearer llm_" + "Q" * 43), Context())


@pytest.mark.parametrize("response_type", sorted(EXPECTED))
def test_gateway_responses_use_the_envelope(response_type: str) -> None:
    status, code, retryable = EXPECTED[response_type]
    response = load_responses()[response_type]
    sent_status, headers, body = render(response, {
        "requestId": "r-1", "httpMethod": "GET", "path": "/prod/nope"}, 500)
    assert sent_status == status
    error = json.loads(body)
    ERROR.validate(error)
    assert error["error"]["code"] == code
    assert headers["x-request-id"] == "r-1"
    assert ("Retry-After" in headers) == retryable
    assert "$context" not in body.decode()


def test_every_gateway_default_is_covered() -> None:
    types = set(load_responses())
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} | set(EXPECTED) <= types
    for response in load_responses().values():
        assert json.loads(re.sub(r"\$context\.\w+", "x", response.template))["error"]


def test_the_deploy_script_puts_them_on_the_api(aws_url: str) -> None:
    client = botocore.session.get_session().create_client(
        "apigateway", endpoint_url=aws_url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test")
    api_id = client.create_rest_api(name=f"gw{time.monotonic_ns()}")["id"]
    root = client.get_resources(restApiId=api_id)["items"][0]["id"]
    client.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
    client.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    put = apply(client, api_id, "prod")
    assert sorted(put) == sorted(r["responseType"] for r in responses())
    stored = {r["responseType"]: r for r in client.get_gateway_responses(restApiId=api_id)["items"]}
    for kind, (status, _, _) in EXPECTED.items():
        assert stored[kind]["statusCode"] == str(status)
        assert "application/json" in stored[kind]["responseTemplates"]
    assert client.get_deployments(restApiId=api_id)["items"]  # the stage was redeployed


def test_the_local_gateway_answers_like_api_gateway(make_api: ApiFactory) -> None:
    api = make_api()
    unknown = api.client.http.get("/no/such/path")  # not in openapi.yaml: unchecked
    assert unknown.status_code == 404
    assert json.loads(unknown.body)["error"]["code"] == "not_found"
    api.runtime._built["keys"] = KeyStore(api.runtime.dynamodb, "no-such-table")
    down = api.http.get("/v1/models")
    assert (down.status_code, down.headers["Retry-After"]) == (503, "1")
    assert json.loads(down.body)["error"]["code"] == "auth_unavailable"
