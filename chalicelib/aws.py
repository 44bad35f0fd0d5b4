"""One botocore session per process, shared by every client.

A session loads service models and endpoint data on first use; sharing it
means the second client of a cold start (DynamoDB after Bedrock) pays only
for its own model. botocore (not boto3) for the reason given in models/bedrock.py.
"""
from __future__ import annotations

import functools
from typing import Any

import botocore.session


@functools.cache
def session() -> Any:
    return botocore.session.get_session()


def make_sqs_client() -> Any:
    from botocore.config import Config
    return session().create_client("sqs", config=Config(
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=1, read_timeout=5, tcp_keepalive=True))
