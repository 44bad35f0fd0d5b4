"""API Gateway's own answers, locally: the Gateway Responses of
infra/gateway-responses.yaml, applied where API Gateway would apply them.

``chalice local`` answers a missing key 401 ``{"message": "Unauthorized"}``,
a refused key 403 ``{"Message": ...}``, an unknown path 403 "Missing
Authentication Token", and drops the connection when the authorizer raises
(SPEC.md). Deployed, those are the gateway response types UNAUTHORIZED,
ACCESS_DENIED, MISSING_AUTHENTICATION_TOKEN and AUTHORIZER_CONFIGURATION_ERROR,
which the template turns into OpenAI's error envelope. This module reads the
same template and answers the same way, so ``make run`` and the test client
behave as the deployed stack does. Never deployed.
"""
from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from chalice.app import Chalice
from chalice.config import Config
from chalice.local import (ForbiddenError, InvalidAuthorizerError, LambdaContext,
                           LocalGateway, LocalGatewayAuthorizer, LocalGatewayException,
                           NotAuthorizedError)

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "gateway-responses.yaml"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayResponse:
    """One AWS::ApiGateway::GatewayResponse: status, header mappings, body template."""

    response_type: str
    status: int | None
    parameters: dict[str, str]
    template: str


@lru_cache(maxsize=None)
def load_responses(path: Path = TEMPLATE) -> dict[str, GatewayResponse]:
    resources = yaml.safe_load(path.read_text())["Resources"]
    responses = {}
    for resource in resources.values():
        if resource["Type"] != "AWS::ApiGateway::GatewayResponse":
            continue
        props = resource["Properties"]
        status = props.get("StatusCode")
        responses[props["ResponseType"]] = GatewayResponse(
            props["ResponseType"], int(status) if status else None,
            dict(props.get("ResponseParameters", {})),
            props.get("ResponseTemplates", {}).get("application/json", ""))
    return responses


def render(response: GatewayResponse, context: dict[str, str],
           default_status: int) -> tuple[int, dict[str, str], bytes]:
    """What API Gateway sends: ``$context.x`` in the body and ``context.x``
    header mappings filled in, ``'literal'`` headers as they are."""
    def value(name: str) -> str:
        return context.get(name, "")
    body = re.sub(r"\$context\.(\w+)", lambda m: value(m.group(1)), response.template)
    headers = {"Content-Type": "application/json"}
    for key, mapping in response.parameters.items():
        name = key.removeprefix("gatewayresponse.header.")
        if mapping.startswith("'") and mapping.endswith("'"):
            headers[name] = mapping[1:-1]
        elif mapping.startswith("context."):
            headers[name] = value(mapping.removeprefix("context."))
    return response.status or default_status, headers, body.encode("utf-8")


class GatewayAnswer(LocalGatewayException):
    """A gateway response, raised where Chalice's local gateway raises its own."""

    def __init__(self, response_type: str, default_status: int, context: dict[str, str]) -> None:
        responses = load_responses()
        response = responses.get(response_type) or responses[
            "DEFAULT_5XX" if default_status >= 500 else "DEFAULT_4XX"]
        self.CODE, headers, body = render(response, context, default_status)
        super().__init__(headers, body)


def _context(lambda_event: dict[str, Any], request_id: str) -> dict[str, str]:
    request = lambda_event.get("requestContext", {})
    return {"requestId": request_id, "httpMethod": str(request.get("httpMethod", "")),
            "path": str(request.get("path", ""))}


class EmulatedAuthorizer(LocalGatewayAuthorizer):
    """Chalice's local authorizer, with API Gateway's answers for its outcomes."""

    def authorize(self, raw_path: str, lambda_event: dict[str, Any],
                  lambda_context: LambdaContext) -> Any:
        context = _context(lambda_event, lambda_context.aws_request_id)
        try:
            return super().authorize(raw_path, lambda_event, lambda_context)
        except NotAuthorizedError:
            raise GatewayAnswer("UNAUTHORIZED", 401, context) from None
        except ForbiddenError:
            raise GatewayAnswer("ACCESS_DENIED", 403, context) from None
        except InvalidAuthorizerError:
            raise GatewayAnswer("AUTHORIZER_CONFIGURATION_ERROR", 500, context) from None
        except Exception:
            # A raising authorizer Lambda: API Gateway answers 500 and caches
            # nothing; chalice local would drop the connection.
            log.exception("authorizer failed")
            raise GatewayAnswer("AUTHORIZER_CONFIGURATION_ERROR", 500, context) from None


class EmulatedGateway(LocalGateway):
    """Chalice's LocalGateway answering unknown paths and authorizer outcomes
    with the stage's gateway responses."""

    def __init__(self, app_object: Chalice, config: Config) -> None:
        super().__init__(app_object, config)
        self._authorizer = EmulatedAuthorizer(app_object)

    def handle_request(self, method: str, path: str, headers: dict[str, str],
                       body: bytes | None) -> Any:
        try:
            self.event_converter.create_lambda_event(method=method, path=path,
                                                     headers=headers, body=body)
        except ValueError:
            # No such route: what API Gateway calls a missing authentication
            # token (and chalice local would answer 403, or drop the connection
            # for a non-ASCII Authorization header).
            raise GatewayAnswer("MISSING_AUTHENTICATION_TOKEN", 403, {
                "requestId": str(uuid.uuid4()), "httpMethod": method,
                "path": path.split("?")[0]}) from None
        return super().handle_request(method, path, headers, body)
