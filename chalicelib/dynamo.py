"""DynamoDB plumbing: a lazily built low-level client and a small attribute codec.

The client comes from a botocore session, not boto3, for the same cold-start
reason as Bedrock's (see models/bedrock.py); so the typed-attribute codec is the few
lines this project needs instead of boto3's TypeSerializer.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from botocore.config import Config

from chalicelib.aws import session

Item = dict[str, Any]


def make_dynamodb_client() -> Any:
    """Endpoint, region and credentials from the environment
    (``AWS_ENDPOINT_URL_DYNAMODB`` points it at the local emulator)."""
    return session().create_client("dynamodb", config=Config(
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=1, read_timeout=3, tcp_keepalive=True))


def encode(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, Decimal)):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Mapping):
        return {"M": {k: encode(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [encode(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def decode(attribute: Mapping[str, Any]) -> Any:
    (kind, value), = attribute.items()
    if kind == "NULL":
        return None
    if kind == "BOOL":
        return bool(value)
    if kind == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else number
    if kind == "S":
        return value
    if kind == "M":
        return {k: decode(v) for k, v in value.items()}
    if kind == "L":
        return [decode(v) for v in value]
    raise TypeError(f"unexpected DynamoDB type {kind}")


def encode_item(item: Mapping[str, Any]) -> Item:
    return {k: encode(v) for k, v in item.items()}


def decode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: decode(v) for k, v in item.items()}
