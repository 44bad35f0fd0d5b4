"""One botocore session per process, shared by every client.

A session loads service models and endpoint data on first use; sharing it
means the second client of a cold start (DynamoDB after Bedrock) pays only
for its own model. botocore (not boto3) for the reason given in bedrock.py.
"""
from __future__ import annotations

import functools
from typing import Any

import botocore.session


@functools.cache
def session() -> Any:
    return botocore.session.get_session()
