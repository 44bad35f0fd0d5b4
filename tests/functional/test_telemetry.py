"""One JSON log line and one EMF record per request and job; cost per path."""
from __future__ import annotations

import io
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from chalicelib.observe.callstats import CallStats, Outcome
from chalicelib.tenancy.keys import KeyStore
from chalicelib.models.pricing import cost_usd
from chalicelib.observe.telemetry import Telemetry
from tests.conftest import MODEL, ApiFactory
from tests.functional.test_jobs import drain
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
SECRET_PROMPT = "zebra-quasar-7731 my bank password is hunter2"
LOG_FIELDS = {"request_id", "tenant", "route", "model", "status", "error_code", "latency_ms",
              "bedrock_ms", "input_tokens", "output_tokens", "cost_usd", "cache", "retries",
              "bedrock_throttles", "stage", "kind"}
PRICE = Decimal("0.22") / 1_000_000  # Llama 3.1 8B, per token, input and output

# The EMF specification's required structure (AWS CloudWatch docs,
# "Embedded metric format specification").
EMF_SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {"_aws": {
        "type": "object", "required": ["Timestamp", "CloudWatchMetrics"],
        "properties": {
            "Timestamp": {"type": "integer", "minimum": 0},
            "CloudWatchMetrics": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["Namespace", "Dimensions", "Metrics"],
                "properties": {
                    "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                    "Dimensions": {"type": "array", "items": {
                        "type": "array", "maxItems": 30,
                        "items": {"type": "string", "minLength": 1, "maxLength": 250}}},
                    "Metrics": {"type": "array", "maxItems": 100, "items": {
                        "type": "object", "required": ["Name"],
                        "properties": {
                            "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Unit": {"enum": ["Seconds", "Microseconds", "Milliseconds", "Bytes",
                                              "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
                                              "Bits", "Kilobits", "Megabits", "Gigabits",
                                              "Terabits", "Percent", "Count", "Bytes/Second",
                                              "Kilobytes/Second", "Megabytes/Second",
                                              "Gigabytes/Second", "Terabytes/Second",
                                              "Bits/Second", "Kilobits/Second",
                                              "Megabits/Second", "Gigabits/Second",
                                              "Terabits/Second", "Count/Second", "None"]},
                            "StorageResolution": {"enum": [1, 60]}}}}}}}}}},
}


def check_emf(record: dict[str, Any]) -> None:
    Draft202012Validator(EMF_SCHEMA).validate(record)
    for directive in record["_aws"]["CloudWatchMetrics"]:
        for dimension in (d for dims in directive["Dimensions"] for d in dims):
            assert isinstance(record[dimension], str), dimension  # target members exist
        for metric in directive["Metrics"]:
            value = record[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert values and all(isinstance(v, (int, float)) for v in values), metric


def lines(stream: io.StringIO) -> tuple[list[dict], list[dict]]:
    """(log lines, EMF records) from what telemetry wrote."""
    parsed = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [p for p in parsed if "_aws" not in p], [p for p in parsed if "_aws" in p]


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


def test_one_log_line_and_emf_record_per_request(make_api: ApiFactory, stream: io.StringIO,
                                                 emulator: EmulatorControl) -> None:
    api = make_api(telemetry=Telemetry("dev", stream=stream))
    response = api.http.post("/chat", headers=JSON,
                             body=json.dumps({"prompt": SECRET_PROMPT, "max_tokens": 40}))
    body = json.loads(response.body)
    logs, emf = lines(stream)
    assert len(logs) == 1 and len(emf) == 1
    log = logs[0]
    assert LOG_FIELDS <= set(log)
    assert (log["request_id"], log["route"], log["status"], log["model"]) == (
        response.headers["x-request-id"], "POST /chat", 200, MODEL)
    assert log["tenant"] == "tests" and log["error_code"] is None and log["cache"] is None
    assert (log["input_tokens"], log["output_tokens"]) == (body["usage"]["input_tokens"],
                                                           body["usage"]["output_tokens"])
    assert log["cost_usd"] == body["usage"]["cost_usd"] > 0
    assert log["latency_ms"] >= log["bedrock_ms"] > 0
    assert log["level"] == "INFO" and log["service"] == "llm-endpoint"
    check_emf(emf[0])
    assert emf[0]["model"] == MODEL and emf[0]["stage"] == "dev"
    assert emf[0]["InputTokens"] == [float(body["usage"]["input_tokens"])]
    assert "tenant" not in emf[0]  # never a metric dimension: unbounded


def test_no_prompt_or_answer_in_logs_by_default(make_api: ApiFactory, stream: io.StringIO) -> None:
    api = make_api(telemetry=Telemetry("dev", stream=stream))
    response = api.http.post("/chat", headers=JSON, body=json.dumps({"prompt": SECRET_PROMPT}))
    answer = json.loads(response.body)["text"]
    output = stream.getvalue()
    assert "zebra-quasar-7731" not in output and "hunter2" not in output
    assert answer[:40] not in output


def test_prompts_are_logged_when_a_stage_asks(make_api: ApiFactory, stream: io.StringIO) -> None:
    api = make_api(telemetry=Telemetry("dev", log_prompts=True, stream=stream))
    api.http.post("/chat", headers=JSON, body=json.dumps({"prompt": SECRET_PROMPT}))
    log = lines(stream)[0][0]
    assert log["prompt"] == [{"role": "user", "content": SECRET_PROMPT}] and log["answer"]


def test_errors_are_logged_with_their_code(make_api: ApiFactory, stream: io.StringIO,
                                           emulator: EmulatorControl) -> None:
    api = make_api(telemetry=Telemetry("dev", stream=stream))
    emulator.configure(fault_rate={"ThrottlingException": 1.0})
    api.http.post("/chat", headers=JSON, body=json.dumps({"prompt": "x"}))
    api.http.post("/chat", headers=JSON, body="{broken")
    logs, emf = lines(stream)
    assert [(log["status"], log["error_code"]) for log in logs] == [
        (429, "upstream_throttled"), (400, "invalid_request")]
    assert logs[0]["bedrock_throttles"] == 3 and logs[0]["retries"] == 2
    for record in emf:
        check_emf(record)
    errors = [r for r in emf if "Errors" in r]
    assert [r["error_code"] for r in errors] == ["upstream_throttled", "invalid_request"]
    assert emf[0]["BedrockThrottles"] == [3.0]


def test_cost_is_the_same_on_every_path(make_api: ApiFactory, stream: io.StringIO,
                                        key_store: KeyStore, dynamodb: Any, sqs: Any,
                                        job_queues: dict[str, str]) -> None:
    secret, record = key_store.create("costly", now=int(time.time()))
    api = make_api(key=secret, telemetry=Telemetry("dev", stream=stream),
                   jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)
    prompt = f"cost check {time.monotonic_ns()}"
    messages = [{"role": "user", "content": prompt}]

    def expected(usage_in: int, usage_out: int) -> float:
        return round(float((usage_in + usage_out) * PRICE), 8)
    native = json.loads(api.http.post("/chat", headers=JSON, body=json.dumps(
        {"prompt": prompt, "max_tokens": 60})).body)["usage"]
    assert native["cost_usd"] == expected(native["input_tokens"], native["output_tokens"])
    openai_usage = json.loads(api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(
        {"model": MODEL, "messages": messages, "max_tokens": 60, "temperature": 1})).body)["usage"]
    assert openai_usage["cost_usd"] == native["cost_usd"]  # same request, same tokens
    streamed = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(
        {"model": MODEL, "messages": messages, "max_tokens": 60, "temperature": 1, "stream": True,
         "stream_options": {"include_usage": True}}))
    stream_usage = json.loads(streamed.body.decode().split("\n\n")[-3][len("data: "):])["usage"]
    assert stream_usage["cost_usd"] == native["cost_usd"]
    job = json.loads(api.http.post("/chat/jobs", headers=JSON, body=json.dumps(
        {"prompt": prompt, "max_tokens": 60})).body)
    drain(sqs, job_queues["jobs"])
    job_usage = json.loads(api.http.get(f"/chat/jobs/{job['job_id']}").body)["result"]["usage"]
    assert job_usage["cost_usd"] == native["cost_usd"]
    cached = {"prompt": prompt, "max_tokens": 60, "temperature": 0}
    miss = json.loads(api.http.post("/chat", headers=JSON, body=json.dumps(cached)).body)["usage"]
    hit = json.loads(api.http.post("/chat", headers=JSON, body=json.dumps(cached)).body)["usage"]
    assert miss["cost_usd"] > 0 and hit["cost_usd"] == 0
    # Summed per key (one tenant) and day beside the token budget: five paid calls.
    items = dynamodb.scan(TableName="llm-endpoint-dev-usage")["Items"]
    day = [i for i in items if i["pk"]["S"].startswith(record.key_id + "#d#")]
    total = sum(Decimal(i["cost_usd"]["N"]) for i in day)
    paid = [native, openai_usage, stream_usage, job_usage, miss]
    assert round(float(total), 8) == round(sum(u["cost_usd"] for u in paid), 8)
    job_logs = [log for log in lines(stream)[0] if log["kind"] == "job"]
    assert len(job_logs) == 1 and job_logs[0]["status"] == "succeeded"
    assert job_logs[0]["cost_usd"] == native["cost_usd"] and job_logs[0]["tenant"] == "costly"


@pytest.mark.parametrize("model,tokens,expected", [
    ("us.meta.llama3-1-8b-instruct-v1:0", (1_000_000, 0), Decimal("0.22")),
    ("meta.llama3-1-8b-instruct-v1:0", (500_000, 500_000), Decimal("0.22")),
    ("us.meta.llama3-1-8b-instruct-v1:0", (3, 7), Decimal("0.0000022")),
    ("us.meta.llama3-1-70b-instruct-v1:0", (10, 10), None),  # no configured price
])
def test_cost_arithmetic(model: str, tokens: tuple[int, int], expected: Decimal | None) -> None:
    from chalicelib.chat import Usage
    from chalicelib.models.pricing import DEFAULT_PRICES
    assert cost_usd(DEFAULT_PRICES, model, Usage(*tokens)) == expected
    assert cost_usd(DEFAULT_PRICES, model, Usage(*tokens), cached=True) == 0


def test_alarms_watch_what_the_app_emits() -> None:
    """The alarms' custom metrics use exactly the namespace and dimension
    names telemetry writes, and every alarm the issue names exists."""
    import re

    import yaml

    from chalicelib.observe.telemetry import NAMESPACE, SERVICE
    from tests.e2e.stack import PROJECT_DIR
    template = yaml.safe_load((PROJECT_DIR / "infra" / "resources.yaml").read_text())
    resources = template["Resources"]
    alarms = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"ServerErrorRateAlarm", "BedrockThrottlesAlarm", "LatencyP95Alarm", "DailyCostAlarm",
            "DeadLetterQueueAlarm", "LambdaThrottlesAlarm"} <= set(alarms)
    record = Telemetry("dev").emf(Outcome("request", "r", "POST /chat", "t", 200, None, 1.0),
                                  CallStats(model=MODEL, cost_usd=Decimal("0.1")))[0]
    emitted_dims = set(record["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])
    emitted_metrics = {m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    for name, alarm in alarms.items():
        if alarm.get("Namespace") == NAMESPACE:
            assert {d["Name"] for d in alarm["Dimensions"]} == emitted_dims, name
            assert alarm["MetricName"] in emitted_metrics, name
            assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    # The cost-anomaly alarm sums CostUSD over every model of the stage (Metrics Insights).
    (spend,) = alarms["HourlyCostAlarm"]["Metrics"]
    query = spend["Expression"]["Fn::Sub"]
    assert spend["Period"] == 3600 and f"SUM({'CostUSD'})" in query
    assert f"SCHEMA({NAMESPACE}, {', '.join(sorted(emitted_dims))})" in query
    assert "CostUSD" in emitted_metrics and alarms["HourlyCostAlarm"]["AlarmActions"] == [
        {"Ref": "AlarmTopic"}]
    # One alarm for any link's cooldown opening, on the record Telemetry writes for it.
    stream = io.StringIO()
    Telemetry("dev", stream=stream).cooldown_opened("us.amazon.nova-lite-v1:0@us-west-2", 30)
    opened = next(json.loads(line) for line in stream.getvalue().splitlines()
                  if "CooldownOpened" in line)
    (query,) = alarms["CooldownAlarm"]["Metrics"]
    dims = sorted(opened["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])
    assert f"SELECT SUM(CooldownOpened) FROM SCHEMA({NAMESPACE}, {', '.join(dims)})" in query[
        "Expression"]["Fn::Sub"]
    assert opened["link"] == "us.amazon.nova-lite-v1:0@us-west-2"
    assert alarms["CooldownAlarm"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert template["Parameters"]["AppName"]["Default"] == SERVICE
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    assert json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
