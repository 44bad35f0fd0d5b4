"""What a stage costs to run: docs/cost.md, computed from the configuration and the templates.

    python scripts/cost.py                      # print the page (figures and their sources)
    python scripts/cost.py --write docs/cost.md # rewrite the page (make cost)
    python scripts/cost.py --readme             # the README's three lines

Every quantity is read from where it is configured, so the page stays true when they change:
the stages, their allowed models and Lambda memory from ``.chalice/config.json``; the alarms
(and how many metrics each evaluates), the dashboard and the tables with point-in-time recovery
from ``infra/resources.yaml``; the custom metrics from ``chalicelib/observe/telemetry.py``; the
token prices from ``chalicelib.models.pricing`` (with a stage's ``MODEL_PRICES``); the DynamoDB
calls per request from the limiter's design (docs/keys.md). AWS's own list prices, and the few
assumptions no file holds (how long a request runs, how many log bytes it writes), are in
``scripts/aws_prices.json``, each with its source. Nothing here calls AWS.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:  # run as a script: the price configuration lives beside it
    sys.path.insert(0, str(PROJECT_DIR))

from chalicelib.models.catalog import CHAT_MODELS, EMBEDDING_MODELS  # noqa: E402
from chalicelib.models.pricing import DEFAULT_PRICES, base_model  # noqa: E402

CONFIG = PROJECT_DIR / ".chalice" / "config.json"
RESOURCES = PROJECT_DIR / "infra" / "resources.yaml"
TELEMETRY = PROJECT_DIR / "chalicelib" / "observe" / "telemetry.py"
PRICES = PROJECT_DIR / "scripts" / "aws_prices.json"
MILLION = Decimal(1_000_000)
GB = Decimal(1024 ** 3)


def money(value: Decimal, places: str = "0.01") -> str:
    return f"${value.quantize(Decimal(places), rounding=ROUND_HALF_UP)}"


@dataclass(frozen=True)
class Stage:
    name: str
    env: dict[str, str]
    functions: dict[str, dict[str, Any]]

    def memory_gb(self, function: str, default_mb: int) -> Decimal:
        return Decimal(self.functions.get(function, {}).get("lambda_memory_size", default_mb)) / 1024

    @property
    def models(self) -> list[str]:
        return [m.strip() for m in self.env["ALLOWED_MODELS"].split(",") if m.strip()]

    def overrides(self) -> dict[str, tuple[Decimal, Decimal]]:
        extra = self.env.get("MODEL_PRICES")
        return {k: (Decimal(str(v[0])), Decimal(str(v[1])))
                for k, v in (json.loads(extra) if extra else {}).items()}

    def price(self, model_id: str) -> tuple[Decimal, Decimal] | None:
        return {**DEFAULT_PRICES, **self.overrides()}.get(base_model(model_id))

    def price_source(self, model_id: str) -> str:
        base = base_model(model_id)
        if base in self.overrides():
            return f"the {self.name} stage's MODEL_PRICES"
        sources = {row.base_id: row.price_source for row in (*CHAT_MODELS, *EMBEDDING_MODELS)}
        return sources.get(base, "built in (chalicelib/models/pricing.py), unverified"
                           if base in DEFAULT_PRICES else "none: cost_usd is null")


def stages(config: dict[str, Any]) -> list[Stage]:
    out = []
    default_mb = config.get("lambda_memory_size", 128)
    for name, stage in config["stages"].items():
        env = {**config.get("environment_variables", {}), **stage.get("environment_variables", {})}
        functions = {fn: {"lambda_memory_size": default_mb, **spec}
                     for fn, spec in stage.get("lambda_functions", {}).items()}
        out.append(Stage(name, env, functions))
    return out


@dataclass(frozen=True)
class Template:
    alarm_metrics: dict[str, int]  # alarm resource -> metrics it evaluates
    dashboards: int
    pitr_tables: list[str]
    queues: int


def read_template(path: Path = RESOURCES) -> Template:
    resources = yaml.safe_load(path.read_text())["Resources"]
    alarms, dashboards, pitr, queues = {}, 0, [], 0
    for name, resource in resources.items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::CloudWatch::Alarm":
            # A metric-math alarm is billed per metric it evaluates, not per expression;
            # a Metrics Insights query (no MetricStat) per series it reads: one per
            # model the stage serves, counted here as one (most stages serve one).
            alarms[name] = (max(1, sum(1 for m in props["Metrics"] if "MetricStat" in m))
                            if "Metrics" in props else 1)
        elif kind == "AWS::CloudWatch::Dashboard":
            dashboards += 1
        elif kind == "AWS::DynamoDB::Table":
            if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
                pitr.append(name)
        elif kind == "AWS::SQS::Queue" and "RedrivePolicy" in props:
            queues += 1  # the jobs queue, which the worker's event source polls
    return Template(alarms, dashboards, pitr, queues)


def custom_metrics(path: Path = TELEMETRY) -> tuple[list[str], list[str]]:
    """(the per-model metrics, the per-error-code metrics) the app emits."""
    # telemetry.emf() names each metric as a ("Name", "Unit", value) tuple: those
    # before the error-code record carry the model dimension, those after it the code.
    text = path.read_text().split("def emf(", 1)[1]
    by_model, by_error = text.split("if outcome.error_code:", 1)
    metric = r'\("(\w+)", "(?:Count|Milliseconds|None)",'
    return re.findall(metric, by_model), re.findall(metric, by_error)


class Prices:
    def __init__(self, path: Path = PRICES) -> None:
        data = json.loads(path.read_text())
        self.region = data["region"]
        self.entries = data["prices"]
        self.assumptions = data["assumptions"]

    def __getitem__(self, key: str) -> Decimal:
        return Decimal(self.entries[key]["usd"])

    def assumed(self, key: str) -> Any:
        value = self.assumptions[key]["value"]
        return value if isinstance(value, list) else Decimal(value)


@dataclass(frozen=True)
class PerRequest:
    rows: list[tuple[str, str, Decimal]]  # (component, how, USD per million requests)

    @property
    def total(self) -> Decimal:
        return sum((usd for _, _, usd in self.rows), Decimal(0))


def per_million_requests(stage: Stage, p: Prices, limited: bool) -> PerRequest:
    seconds = p.assumed("stream_handler_seconds_per_request")
    auth_seconds = p.assumed("authorizer_seconds_per_run")
    stream_gb = stage.memory_gb("stream_handler", 128)
    auth_gb = stage.memory_gb("api_key_auth", 128)
    writes = 2 if limited else 1
    log_gb = p.assumed("log_bytes_per_request") * MILLION / GB
    rows = [
        ("API Gateway (REST)", "one request", p["apigateway_rest_per_million_requests"]),
        ("Lambda invocations", "the chat function and the authorizer (at most one a request)",
         2 * p["lambda_per_million_requests"]),
        ("Lambda duration, chat function",
         f"{stream_gb * 1024:.0f} MB for {seconds} s",
         stream_gb * seconds * p["lambda_per_gb_second"] * MILLION),
        ("Lambda duration, authorizer",
         f"{auth_gb * 1024:.0f} MB for {auth_seconds} s",
         auth_gb * auth_seconds * p["lambda_per_gb_second"] * MILLION),
        ("DynamoDB writes", f"{writes} write unit{'s' if writes > 1 else ''}: "
         + ("reserve, then settle" if limited else "the usage write"),
         writes * p["dynamodb_per_million_write_request_units"]),
        ("DynamoDB reads", "the authorizer's key lookup, half a read unit",
         p["dynamodb_per_million_read_request_units"] / 2),
        ("CloudWatch Logs", f"{p.assumed('log_bytes_per_request')} bytes ingested",
         log_gb * p["cloudwatch_logs_ingestion_per_gb"]),
    ]
    return PerRequest(rows)


def idle_month(stage: Stage, t: Template, p: Prices) -> list[tuple[str, str, Decimal]]:
    alarm_metrics = sum(t.alarm_metrics.values())
    receives = p.assumed("sqs_idle_receives_per_month") * t.queues
    return [
        ("CloudWatch alarms", f"{len(t.alarm_metrics)} alarms evaluating {alarm_metrics} metrics",
         alarm_metrics * p["cloudwatch_alarm_metric_month"]),
        ("CloudWatch dashboard", f"{t.dashboards} dashboard", t.dashboards * p["cloudwatch_dashboard_month"]),
        ("SQS polling", f"the jobs worker's event source: {receives:,} empty receives",
         receives / MILLION * p["sqs_per_million_requests"]),
        ("Custom metrics", "billed by the hour they are sent: none while idle", Decimal(0)),
        ("Lambda, API Gateway, DynamoDB requests", "pay per use, no provisioned capacity", Decimal(0)),
    ]


def render(config: dict[str, Any] | None = None, template: Template | None = None,
           prices: Prices | None = None) -> str:
    config = config or json.loads(CONFIG.read_text())
    t = template or read_template()
    p = prices or Prices()
    all_stages = stages(config)
    per_model, per_error = custom_metrics()
    out = ["# Cost", "",
           "<!-- Written by scripts/cost.py (make cost) from .chalice/config.json, infra/resources.yaml,",
           "     chalicelib/observe/telemetry.py, chalicelib/models/pricing.py and scripts/aws_prices.json.",
           "     Do not edit: tests/functional/test_cost.py fails when this page and the script",
           "     disagree. -->",
           "",
           f"What the endpoint costs in AWS, at list prices in {p.region}, free tier excluded, in USD.",
           "Every quantity comes from the configuration and the templates (the models and Lambda memory of",
           "each stage, the alarms and dashboard of `infra/resources.yaml`, the prices of",
           "`chalicelib/models/pricing.py`); AWS's prices and the assumptions are in",
           "`scripts/aws_prices.json` with their sources. `make cost` rewrites this page;",
           "`python scripts/cost.py` prints it.",
           "", "## Idle: a month with no traffic, per stage", ""]
    out += ["| stage | item | what | per month |", "|---|---|---|---|"]
    for stage in all_stages:
        rows = idle_month(stage, t, p)
        for item, what, usd in rows:
            out.append(f"| {stage.name} | {item} | {what} | {money(usd)} |")
        out.append(f"| {stage.name} | **total** | | **{money(sum((r[2] for r in rows), Decimal(0)))}** |")
    pitr = ", ".join(t.pitr_tables)
    out += ["",
            f"Stored data adds {money(p['dynamodb_storage_per_gb_month'])} per GB-month, and point-in-time",
            f"recovery {money(p['dynamodb_pitr_per_gb_month'])} per GB-month of the tables that have it",
            f"({pitr}): keys and usage",
            "items are a few hundred bytes each, so a few cents at most for thousands of keys. Stored",
            "Responses (`/v1/responses`) hold prompt and answer text for `RESPONSES_TTL_S` (30 days by",
            "default): a turn is a few KB to hundreds of KB, so 100,000 turns of 10 KB kept 30 days are",
            f"about 1 GB, {money(p['dynamodb_storage_per_gb_month'] + p['dynamodb_pitr_per_gb_month'])}"
            " a month. The deploy state bucket holds a few kilobytes.",
            "",
            f"Once in use, each model a stage serves adds {len(per_model)} custom metrics",
            f"({', '.join(per_model)}) and each error code seen adds one ({', '.join(per_error)}), at",
            f"{money(p['cloudwatch_custom_metric_month'])} a metric for a month of hourly traffic:",
            f"{money(len(per_model) * p['cloudwatch_custom_metric_month'])} a month per model in steady use.",
            "", "## Per million requests: the infrastructure", "",
            "What a chat request costs besides its tokens, once deployed (the chat routes run on the",
            f"streaming function). The duration is assumed: "
            f"{p.assumptions['stream_handler_seconds_per_request']['why']}.",
            ""]
    out += ["| stage | component | how | key without limits | limited key |", "|---|---|---|---|---|"]
    for stage in all_stages:
        free, limited = per_million_requests(stage, p, False), per_million_requests(stage, p, True)
        for (name, how, usd), (_, how_l, usd_l) in zip(free.rows, limited.rows):
            shown = how if how == how_l else f"{how} / {how_l}"
            out.append(f"| {stage.name} | {name} | {shown} | {money(usd)} | {money(usd_l)} |")
        out.append(f"| {stage.name} | **total** | | **{money(free.total)}** | **{money(limited.total)}** |")
    stream_gb = all_stages[0].memory_gb("stream_handler", 128)
    out += ["",
            "Each further second a request runs (a longer answer, a slower model) adds",
            f"{money(stream_gb * p['lambda_per_gb_second'] * MILLION)} per million requests at "
            f"{stream_gb * 1024:.0f} MB. A cache hit (temperature 0)",
            "costs no tokens but a cache read and write; a queued job adds its SQS messages and the",
            "worker's duration.",
            "", "## Per million tokens, by model", ""]
    out += ["| model | stages | input | output | price source |", "|---|---|---|---|---|"]
    served: dict[str, list[str]] = {}
    for stage in all_stages:
        for model in stage.models:
            served.setdefault(model, []).append(stage.name)
    for model, names in served.items():
        first = next(s for s in all_stages if s.name == names[0])
        price = first.price(model)
        cells = (money(price[0], "0.001"), money(price[1], "0.001")) if price else ("unknown", "unknown")
        out.append(f"| `{model}` | {', '.join(names)} | {cells[0]} | {cells[1]} "
                   f"| {first.price_source(model)} |")
    out += ["",
            "Token prices are the endpoint's own configuration (`chalicelib/models/pricing.py`, with each",
            "catalog row's source in `chalicelib/models/catalog.py`; a stage's `MODEL_PRICES` corrects",
            "them), the same that `usage.cost_usd` reports. Embedding models have no output tokens.",
            "On the Messages route, Claude models that cache prompts on Bedrock bill a cached prefix at",
            "their cache prices: writes 1.25x, reads 0.1x the input price (`catalog.catalog_cache_prices`),",
            "reported as `cache_creation_input_tokens` / `cache_read_input_tokens`; see",
            "[messages.md](messages.md#prompt-caching). What a call cut short is billed (at least its",
            "prompt plus the output received): [Keys: billing](keys.md#billing-every-generated-token).",
            "", "## A short request, all in", ""]
    stage = next((s for s in all_stages if s.name == "prod"), all_stages[0])
    tokens_in, tokens_out = p.assumed("short_request_tokens")
    model = stage.env["DEFAULT_MODEL"]
    price = stage.price(model)
    assert price is not None, f"{model} has no price"
    token_cost = (tokens_in * price[0] + tokens_out * price[1])  # per million requests
    infra = per_million_requests(stage, p, False).total
    out += [f"A million requests like the quick start's (`{model}`, {tokens_in} input and",
            f"{tokens_out} output tokens, {stage.name}, a key without limits): {money(token_cost)} of",
            f"tokens and {money(infra)} of",
            "infrastructure. For short Llama prompts the infrastructure costs about as much as the tokens;",
            "for long answers or dearer models the tokens dominate.",
            "", "## Sources", "", "| price | USD | source | read | note |", "|---|---|---|---|---|"]
    for key, entry in p.entries.items():
        out.append(f"| {key} | {entry['usd']} | <{entry['source']}> | {entry['read']} | {entry['note']} |")
    out += ["", "| assumption | value | why |", "|---|---|---|"]
    for key, entry in p.assumptions.items():
        out.append(f"| {key} | {entry['value']} | {entry['why']} |")
    return "\n".join(out) + "\n"


def readme_lines(config: dict[str, Any] | None = None) -> list[str]:
    config = config or json.loads(CONFIG.read_text())
    p, t = Prices(), read_template()
    all_stages = stages(config)
    idle = {s.name: sum((r[2] for r in idle_month(s, t, p)), Decimal(0)) for s in all_stages}
    prod = next(s for s in all_stages if s.name == "prod")
    model = prod.env["DEFAULT_MODEL"]
    price = prod.price(model)
    assert price is not None
    tokens_in, tokens_out = p.assumed("short_request_tokens")
    caveat = " (the configured price, unverified)" if "unverified" in prod.price_source(model) else ""
    return [
        f"- Idle, a stage costs about {money(max(idle.values()))} a month (alarms, dashboard, "
        "queue polling); "
        "requests are pay per use.",
        f"- Llama 3.1 8B's tokens cost {money(price[0])} per million input and {money(price[1])} "
        f"per million output{caveat}.",
        f"- A million short requests ({tokens_in} + {tokens_out} tokens): "
        f"{money(tokens_in * price[0] + tokens_out * price[1])} of tokens plus "
        f"{money(per_million_requests(prod, p, False).total)} of API Gateway, Lambda, DynamoDB and logs "
        "([cost](docs/cost.md)).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, metavar="PAGE", help="write the page there")
    parser.add_argument("--readme", action="store_true", help="print the README's three lines")
    args = parser.parse_args(argv)
    if args.readme:
        print("\n".join(readme_lines()))
        return 0
    page = render()
    if args.write:
        args.write.write_text(page)
        print(f"wrote {args.write}")
    else:
        print(page, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
