"""Cold-start guards: importing the app does no AWS work and skips boto3."""
from __future__ import annotations

import subprocess
import sys

from tests.e2e.stack import PROJECT_DIR


def test_import_builds_no_client_and_skips_boto3_and_powertools() -> None:
    script = ("import sys, app; "
              "assert app._runtime is None; "
              "assert 'boto3' not in sys.modules and 's3transfer' not in sys.modules, 'slow import'; "
              # the authorizer's Lambda imports app.py and writes no telemetry
              "assert 'aws_lambda_powertools' not in sys.modules, 'telemetry loaded at import'; "
              # JSON Schema checks load on the first request that needs them
              "assert 'jsonschema' not in sys.modules, 'jsonschema loaded at import'; "
              # what import built is out of the collector's sight (app.py's end)
              "import gc; assert gc.get_freeze_count() > 10000, gc.get_freeze_count()")
    # No credentials or region at all: an AWS call at import would fail here.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_DIR)}
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, check=True)
