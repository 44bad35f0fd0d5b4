"""Create the local stack's AWS resources (tables, queues) from
infra/resources.yaml, the file the deployment uses."""
from __future__ import annotations

import json
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


def _template() -> dict[str, Any]:
    return yaml.safe_load(TEMPLATE.read_text())  # type: ignore[no-any-return]


def parameter_default(name: str) -> Any:
    return _template()["Parameters"][name]["Default"]


def table_definitions(stage: str, app_name: str = "llm-endpoint") -> list[dict[str, Any]]:
    """CreateTable arguments (plus TTL) for every table of the template."""
    template = _template()
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


def create_queues(client: Any, stage: str, app_name: str = "llm-endpoint") -> dict[str, str]:
    """Every queue of the template, dead-letter targets first; name -> URL."""
    template = _template()
    params = {"AppName": app_name, "Stage": stage}
    queues = {k: r["Properties"] for k, r in template["Resources"].items()
              if r["Type"] == "AWS::SQS::Queue"}
    arns: dict[str, str] = {}
    urls: dict[str, str] = {}
    for logical_id in sorted(queues, key=lambda k: "RedrivePolicy" in queues[k]):
        props = queues[logical_id]
        attributes = {name: str(props[name]) for name in
                      ("VisibilityTimeout", "MessageRetentionPeriod") if name in props}
        if "RedrivePolicy" in props:
            policy = props["RedrivePolicy"]
            target = policy["deadLetterTargetArn"]["Fn::GetAtt"][0]
            receives = policy["maxReceiveCount"]
            if isinstance(receives, dict):
                receives = parameter_default(receives["Ref"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arns[target], "maxReceiveCount": int(receives)})
        name = _sub(props["QueueName"], params)
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arns[logical_id] = client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        urls[name] = url
    return urls


def create_topics(client: Any, stage: str, app_name: str = "llm-endpoint") -> dict[str, str]:
    """Every SNS topic of the template (alarms, budget alerts); name -> ARN."""
    params = {"AppName": app_name, "Stage": stage}
    arns = {}
    for resource in _template()["Resources"].values():
        if resource["Type"] == "AWS::SNS::Topic":
            name = _sub(resource["Properties"]["TopicName"], params)
            arns[name] = client.create_topic(Name=name)["TopicArn"]
    return arns


def subscribe_inbox(sns: Any, sqs: Any, topic_arn: str) -> str:
    """A queue ``<topic>-inbox`` subscribed to the topic (raw messages), so
    that what the stack publishes can be read locally; its URL."""
    name = topic_arn.rsplit(":", 1)[1] + "-inbox"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "false"})
    return str(url)
