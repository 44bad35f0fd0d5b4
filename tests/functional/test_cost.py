"""docs/cost.md and the README's cost lines are what scripts/cost.py computes today.

The page is computed from the configuration and the templates; these tests fail when one of them
changed and `make cost` was not run, and show that the figures follow the files they come from.
"""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from scripts import cost

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_the_cost_page_is_what_the_script_computes() -> None:
    assert (PROJECT_DIR / "docs" / "cost.md").read_text() == cost.render(), "run make cost"


def test_the_readme_carries_the_scripts_three_lines() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    lines = cost.readme_lines()
    assert len(lines) == 3
    for line in lines:
        assert line in readme, "run python scripts/cost.py --readme and paste its lines"


def test_the_script_prints_the_page_and_its_sources() -> None:
    result = subprocess.run([sys.executable, "scripts/cost.py"], cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == cost.render()
    for entry in json.loads(cost.PRICES.read_text())["prices"].values():
        assert entry["source"].startswith("https://aws.amazon.com/") and entry["read"]
        assert entry["source"] in result.stdout


def test_the_template_is_read_not_assumed() -> None:
    template = cost.read_template()
    # The lambda-throttles alarm is metric math over three functions: three billed metrics.
    assert template.alarm_metrics["LambdaThrottlesAlarm"] == 3
    assert sum(template.alarm_metrics.values()) == len(template.alarm_metrics) + 2
    assert template.dashboards == 1 and "UsageTable" in template.pitr_tables


@pytest.mark.parametrize(("memory_mb", "seconds", "usd"), [
    (256, "1.0", Decimal("4.166675")), (512, "1.0", Decimal("8.33335")), (256, "2.0", Decimal("8.33335"))])
def test_lambda_duration_follows_the_configured_memory(memory_mb: int, seconds: str, usd: Decimal) -> None:
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    config["stages"]["prod"]["lambda_functions"]["stream_handler"]["lambda_memory_size"] = memory_mb
    prices = cost.Prices()
    prices.assumptions["stream_handler_seconds_per_request"]["value"] = seconds
    stage = next(s for s in cost.stages(config) if s.name == "prod")
    rows = dict((name, value) for name, _, value in cost.per_million_requests(stage, prices, False).rows)
    assert rows["Lambda duration, chat function"] == usd


@pytest.mark.parametrize(("limited", "writes"), [(False, 1), (True, 2)])
def test_dynamodb_writes_per_request(limited: bool, writes: int) -> None:
    prices = cost.Prices()
    stage = cost.stages(json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text()))[0]
    rows = {name: value for name, _, value in cost.per_million_requests(stage, prices, limited).rows}
    assert rows["DynamoDB writes"] == writes * prices["dynamodb_per_million_write_request_units"]


def test_a_stage_price_override_is_used() -> None:
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    config["stages"]["prod"]["environment_variables"]["MODEL_PRICES"] = json.dumps(
        {"meta.llama3-1-8b-instruct-v1:0": [0.3, 0.6]})
    page = cost.render(config=config)
    assert "| `us.meta.llama3-1-8b-instruct-v1:0` | dev, prod | $0.220 | $0.220 |" in page
    stage = next(s for s in cost.stages(config) if s.name == "prod")
    assert stage.price("us.meta.llama3-1-8b-instruct-v1:0") == (Decimal("0.3"), Decimal("0.6"))
    assert "MODEL_PRICES" in stage.price_source("us.meta.llama3-1-8b-instruct-v1:0")
