"""Create the local stack's AWS resources from infra/resources.yaml, the file
the deployment uses, and the local API key."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "resources.yaml"


def _sub(value: Any, params: dict[str, str]) -> str:
    if isinstance(value, str):
        return value
    text = value["Fn::Sub"]
    for name, param in params.items():
        text = text.replace("${" + name + "}", param)
    return str(text)


def table_definitions(stage: str, app_name: str = "llm-endpoint") -> list[dict[str, Any]]:
    """CreateTable arguments (plus TTL) for every table of the template."""
    template = yaml.safe_load(TEMPLATE.read_text())
    params = {"AppName": app_name, "Stage": stage}
    tables = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        tables.append({
            "TableName": _sub(props["TableName"], params),
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props["BillingMode"],
            "ttl": props.get("TimeToLiveSpecification"),
        })
    return tables


def create_tables(client: Any, stage: str) -> list[str]:
    names = []
    for definition in table_definitions(stage):
        ttl = definition.pop("ttl")
        client.create_table(**definition)
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(TableName=definition["TableName"],
                                       TimeToLiveSpecification=ttl)
        names.append(definition["TableName"])
    return names
