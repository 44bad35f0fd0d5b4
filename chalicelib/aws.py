"""One botocore session per process, shared by every client, reading the app's own data.

A session loads service models and endpoint data on first use; sharing it
means the second client of a cold start (DynamoDB after Bedrock) pays only
for its own model. botocore (not boto3) for the reason given in models/bedrock.py.

The session's loader searches only ``chalicelib/awsdata``, shipped in the
package and written by scripts/botocore_data.py (which says which botocore
each file comes from): the models of the services this app calls, without
their documentation, their endpoint rules, and ``endpoints.json`` with only
their entries. botocore's own data directory
costs a cold start ~35 ms more: its first client lists ~400 service
directories twice and parses 1.2 MB of endpoints (bench/overhead.py). A
client for a service not shipped there fails at once with
``UnknownServiceError``; add the service to the script's SERVICES.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session

DATA_DIR = Path(__file__).resolve().parent / "awsdata"


@functools.cache
def session() -> Any:
    shared = botocore.session.get_session()
    shared.register_component("data_loader", botocore.loaders.Loader(
        extra_search_paths=[str(DATA_DIR)], include_default_search_paths=False))
    return shared


def make_sqs_client() -> Any:
    from botocore.config import Config
    return session().create_client("sqs", config=Config(
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=1, read_timeout=5, tcp_keepalive=True))


def make_sns_client() -> Any:
    """For budget alerts (tenancy/alerts.py): a short timeout, a request waits on it."""
    from botocore.config import Config
    return session().create_client("sns", config=Config(
        retries={"mode": "standard", "total_max_attempts": 2},
        connect_timeout=1, read_timeout=3, tcp_keepalive=True))


def make_sts_client() -> Any:
    """GetCallerIdentity, once, for the account of the alerts topic's ARN."""
    from botocore.config import Config
    return session().create_client("sts", config=Config(
        retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=1, read_timeout=3))
