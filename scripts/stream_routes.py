"""Point the streaming routes at the stream_handler function, streamed.

    python scripts/stream_routes.py --stage prod   # after `chalice deploy --stage prod`

Chalice cannot stream a REST API response (aws/chalice#2078) and writes every
route's integration itself, as a buffered proxy to its API handler. So the
deploy runs this right after ``chalice deploy``: for ``POST /chat``,
``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/messages`` and
``POST /v1/responses``
(``app.STREAM_ROUTES``) it puts an ``AWS_PROXY``
integration with ``responseTransferMode: STREAM`` whose URI is Lambda's
InvokeWithResponseStream (``.../2021-11-15/functions/<arn>/response-streaming-invocations``)
of the stream_handler function; it lets API Gateway invoke that function on
those routes; and it deploys the stage. Everything else (the authorizer on
those methods, the other routes) stays as Chalice made it. Ids and ARNs come
from Chalice's deployment record ``.chalice/deployed/<stage>.json``.

Between ``chalice deploy`` and this step the routes answer buffered (the API
handler serves them too), never wrongly.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:  # run as a script: app.py and scripts/ live beside it
    sys.path.insert(0, str(PROJECT_DIR))

from scripts.preconditions import (deployed_record, deployed_resource, run,  # noqa: E402
                                   session_with_credentials)

STREAM_FUNCTION = "stream_handler"
# API Gateway's own limit for a buffered integration; the app's deadline
# (chalicelib/deadline.py) ends every stream before it.
TIMEOUT_MS = 29_000


def streaming_uri(function_arn: str) -> str:
    region = function_arn.split(":")[3]
    return (f"arn:aws:apigateway:{region}:lambda:path/2021-11-15/functions/"
            f"{function_arn}/response-streaming-invocations")


def deployed(record: dict[str, Any], stage: str = "") -> tuple[str, str]:
    """(REST API id, stream function ARN) from Chalice's deployment record."""
    api_id = deployed_resource(record, stage, "rest_api")["rest_api_id"]
    arn = deployed_resource(record, stage, "lambda_function", STREAM_FUNCTION)["lambda_arn"]
    return str(api_id), str(arn)


def wire(apigateway: Any, lambda_client: Any, api_id: str, stage: str, function_arn: str,
         paths: Iterable[str]) -> list[str]:
    """Stream ``paths``' POST integrations from the function; returns them."""
    ids = {}
    for page in apigateway.get_paginator("get_resources").paginate(restApiId=api_id):
        ids.update({item["path"]: item["id"] for item in page["items"]})
    region, account = function_arn.split(":")[3], function_arn.split(":")[4]
    wired = []
    for path in paths:
        apigateway.put_integration(
            restApiId=api_id, resourceId=ids[path], httpMethod="POST", type="AWS_PROXY",
            integrationHttpMethod="POST", uri=streaming_uri(function_arn),
            responseTransferMode="STREAM", timeoutInMillis=TIMEOUT_MS)
        statement = "stream" + path.replace("/", "-")
        try:
            lambda_client.add_permission(
                FunctionName=function_arn, StatementId=statement, Action="lambda:InvokeFunction",
                Principal="apigateway.amazonaws.com",
                SourceArn=f"arn:aws:execute-api:{region}:{account}:{api_id}/*/POST{path}")
        except lambda_client.exceptions.ResourceConflictException:
            pass  # granted by an earlier deploy
        wired.append(f"POST {path}")
    apigateway.create_deployment(restApiId=api_id, stageName=stage,
                                 description="stream routes from stream_handler")
    return wired


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True)
    args = parser.parse_args(argv)
    from app import STREAM_ROUTES

    api_id, arn = deployed(deployed_record(args.stage), args.stage)
    session = session_with_credentials()
    region = arn.split(":")[3]  # the function's own region, whatever the environment says
    wired = wire(session.create_client("apigateway", region_name=region),
                 session.create_client("lambda", region_name=region),
                 api_id, args.stage, arn, STREAM_ROUTES)
    print(f"streaming from {arn}: {', '.join(wired)}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
