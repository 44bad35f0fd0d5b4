"""Put a stage's gateway responses (infra/gateway-responses.yaml) on its REST
API and redeploy the stage, so API Gateway's own answers use OpenAI's error
envelope.

Run after ``chalice deploy``: Chalice updates the API with put-rest-api in
overwrite mode, which resets gateway responses, and a changed gateway
response takes effect only with a new deployment of the stage. Every call is
idempotent (a PUT per response type, then one deployment)::

    python scripts/gateway_responses.py --stage prod            # API id from .chalice/deployed/prod.json
    python scripts/gateway_responses.py --stage dev --rest-api-id abc123defg

Needs only botocore and PyYAML (both come with Chalice).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:  # run as a script: scripts/ lives beside it
    sys.path.insert(0, str(PROJECT_DIR))

from scripts.preconditions import (deployed_record, deployed_resource, region_of, run,  # noqa: E402
                                   session_with_credentials)

TEMPLATE = PROJECT_DIR / "infra" / "gateway-responses.yaml"


def responses(path: Path = TEMPLATE) -> list[dict[str, Any]]:
    """Each GatewayResponse resource as put-gateway-response's arguments."""
    calls = []
    for resource in yaml.safe_load(path.read_text())["Resources"].values():
        if resource["Type"] != "AWS::ApiGateway::GatewayResponse":
            continue
        props = resource["Properties"]
        call: dict[str, Any] = {"responseType": props["ResponseType"],
                                "responseParameters": dict(props.get("ResponseParameters", {})),
                                "responseTemplates": dict(props.get("ResponseTemplates", {}))}
        if "StatusCode" in props:
            call["statusCode"] = str(props["StatusCode"])
        calls.append(call)
    return calls


def apply(client: Any, rest_api_id: str, stage: str, path: Path = TEMPLATE) -> list[str]:
    """Put every response, then redeploy ``stage``; returns the types put."""
    done = []
    for call in responses(path):
        client.put_gateway_response(restApiId=rest_api_id, **call)
        done.append(call["responseType"])
    client.create_deployment(restApiId=rest_api_id, stageName=stage,
                             description="gateway responses (scripts/gateway_responses.py)")
    return done


def deployed_api(stage: str) -> tuple[str, str | None]:
    """(REST API id, its region from the API's URL) from Chalice's deployment record."""
    api = deployed_resource(deployed_record(stage), stage, "rest_api")
    # https://<id>.execute-api.<region>.amazonaws.com/<stage>/
    host = str(api.get("rest_api_url", "")).split("/")[2:3]
    parts = host[0].split(".") if host else []
    return str(api["rest_api_id"]), (parts[2] if len(parts) > 3 else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--rest-api-id", help="default: from .chalice/deployed/<stage>.json")
    args = parser.parse_args(argv)
    rest_api_id, api_region = (args.rest_api_id, None) if args.rest_api_id else deployed_api(args.stage)
    session = session_with_credentials()
    # The API's own region (from its URL) wins: the environment may name another.
    client = session.create_client("apigateway", region_name=api_region or region_of(session))
    for kind in apply(client, rest_api_id, args.stage):
        print(f"gateway response {kind} set on {rest_api_id}")
    print(f"stage {args.stage} redeployed")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
