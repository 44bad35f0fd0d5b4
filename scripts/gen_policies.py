"""Write each Lambda's least-privilege IAM policy from the stage configuration.

    python scripts/gen_policies.py          # rewrite .chalice/policy-<stage>-<role>.json
    python scripts/gen_policies.py --check  # exit 1 if a committed file is stale

Every resource derives from .chalice/config.json (allowed models, table and
queue names) and the model registry (which base model each inference profile
serves and the regions its geography routes to: ``chalicelib.models.catalog``), so
no ARN is copied by hand. Converse and ConverseStream are authorised by
bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream (AWS API
reference, "This operation requires permission for the bedrock:InvokeModel
action"), so the chat and embedding models share one statement. Account ids are ``*``: the files
are static and one repo deploys to any account; a role can only reach its own
account's resources without resource policies, and every ARN names its
resource exactly. A model called by its base id (the embedding models) is
called in the stack's own region, which the static files cannot name; it is
granted in the stack's possible regions: those of the geography whose
inference profiles the stage serves (a ``us.`` profile is callable only from
a US region, so a stage that serves one deploys there), never ``*``. One
policy per function:

- api (APIHandler) and stream (stream_handler, the streaming routes once
  deployed): Bedrock InvokeModelWithResponseStream (every Llama call reads
  the stream, so that a call cut at its deadline knows its tokens; so does
  ConverseStream), plus InvokeModel only when the stage allows a model that
  needs it (Converse, embeddings),
  usage/jobs/cache tables (BatchGetItem and PutItem on the usage table too: a
  reservation over a tenant's or a month's items reads them back and may start
  a month item; GET /usage), send to the queue, and GetItem on the keys table
  (the Messages routes check the key themselves: tenancy/header_auth.py); the
  API function alone also PutItem, UpdateItem and Scan on the keys table and
  Scan on the usage table, for the /admin routes;
  With ``GUARDRAILS`` set, api, stream and worker may also
  bedrock:ApplyGuardrail on exactly those guardrails, and with
  ``BUDGET_ALERTS_TOPIC`` sns:Publish on that topic (budget alerts);
- auth (api_key_auth): GetItem on the keys table, nothing else;
- worker (process_job): Bedrock InvokeModelWithResponseStream, usage/jobs/
  cache tables, and the queue actions of Lambda's SQS event source plus
  ChangeMessageVisibility.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:  # run as a script: the registry lives beside it
    sys.path.insert(0, str(PROJECT_DIR))

from chalicelib.models.catalog import PROFILE_REGIONS  # noqa: E402
from chalicelib.models.guardrails import parse_guardrail  # noqa: E402
from chalicelib.models.registry import REGISTRY  # noqa: E402

CHALICE_DIR = PROJECT_DIR / ".chalice"
APP = "llm-endpoint"
# Where a us. cross-region inference profile may send a request (SPEC.md).
US_PROFILE_REGIONS = PROFILE_REGIONS["us"]
ROLES = {"api": "api_handler", "auth": "api_key_auth", "worker": "process_job",
         "stream": "stream_handler"}


def stage_env(config: dict[str, Any], stage: str) -> dict[str, str]:
    return {**config.get("environment_variables", {}),
            **config["stages"][stage].get("environment_variables", {})}


def stack_regions(model_ids: list[str]) -> tuple[str, ...]:
    """The regions the stage can be deployed in: those of the geographies of
    its inference profiles (a global profile says nothing of where it runs)."""
    geographies = {REGISTRY[m].profile for m in model_ids} - {None, "global"}
    if len(geographies) != 1:
        raise SystemExit(f"cannot tell the stack's regions from {sorted(map(str, geographies))}: "
                         "a stage serves the inference profiles of one geography")
    return PROFILE_REGIONS[geographies.pop()]


def bedrock_resources(model_ids: list[str],
                      regions: tuple[str, ...] | None = None) -> list[str]:
    """Each profile's ARN in the regions it is called from, and its foundation
    model in every region it routes to; a base id's foundation model in the
    stack's own regions (``regions``, by default ``stack_regions``). A global
    profile routes to every commercial region, which IAM names with an empty
    region (plus the calling region's model)."""
    arns: list[str] = []
    for model_id in model_ids:
        spec = REGISTRY[model_id]
        base = spec.base_id or model_id
        if spec.profile is None:
            own = stack_regions(model_ids) if regions is None else regions
            arns += [f"arn:aws:bedrock:{r}::foundation-model/{model_id}" for r in own]
        elif spec.profile == "global":
            arns += [f"arn:aws:bedrock:*:*:inference-profile/{model_id}",
                     f"arn:aws:bedrock:*::foundation-model/{base}",
                     f"arn:aws:bedrock:::foundation-model/{base}"]
        else:
            regions_of = PROFILE_REGIONS[spec.profile]
            arns += [f"arn:aws:bedrock:{r}:*:inference-profile/{model_id}" for r in regions_of]
            arns += [f"arn:aws:bedrock:{r}::foundation-model/{base}" for r in regions_of]
    return list(dict.fromkeys(arns))


def invoke_actions(model_ids: list[str]) -> list[str]:
    """Llama chat and ConverseStream need InvokeModelWithResponseStream; a
    plain Converse call or an embedding needs InvokeModel. Only what the
    stage's models use is granted."""
    actions = ["bedrock:InvokeModelWithResponseStream"]
    if any(REGISTRY[m].api != "invoke" or REGISTRY[m].kind == "embedding" for m in model_ids):
        actions.append("bedrock:InvokeModel")
    return actions


def guardrail_statements(env: dict[str, str], models: list[str]) -> list[dict[str, Any]]:
    """ApplyGuardrail on exactly the stage's GUARDRAILS (a call that names a
    guardrail needs it on the guardrail, besides the model's own action), in
    the stack's regions: a guardrail lives where the stack calls from."""
    ids = sorted({parse_guardrail(t.strip()).id
                  for t in env.get("GUARDRAILS", "").split(",") if t.strip()})
    if not ids:
        return []
    regions = stack_regions(models)
    return [statement("ApplyGuardrails", ["bedrock:ApplyGuardrail"],
                      [f"arn:aws:bedrock:{r}:*:guardrail/{gid}" for gid in ids for r in regions])]


def alert_statements(env: dict[str, str], models: list[str]) -> list[dict[str, Any]]:
    """Publish to the stack's budget alerts topic (BUDGET_ALERTS_TOPIC), in
    the stack's regions; its ARN's account comes from STS GetCallerIdentity,
    which needs no permission."""
    topic = env.get("BUDGET_ALERTS_TOPIC", "").strip()
    if not topic:
        return []
    return [statement("BudgetAlerts", ["sns:Publish"],
                      [f"arn:aws:sns:{r}:*:{topic}" for r in stack_regions(models)])]


def table(name: str) -> str:
    return f"arn:aws:dynamodb:*:*:table/{name}"


def statement(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}


def logs(stage: str, function: str | None) -> dict[str, Any]:
    name = f"{APP}-{stage}" + (f"-{function}" if function else "")
    group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{name}"
    return statement("OwnLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                     [group, f"{group}:log-stream:*"])


def policies(config: dict[str, Any], stage: str) -> dict[str, dict[str, Any]]:
    env = stage_env(config, stage)
    models = [m.strip() for m in env["ALLOWED_MODELS"].split(",") if m.strip()]
    invoke = invoke_actions(models)
    queue = f"arn:aws:sqs:*:*:{env['JOBS_QUEUE']}"
    shared_tables = [
        statement("CountUsage", ["dynamodb:UpdateItem"], [table(env["USAGE_TABLE"])]),
        statement("ResponseCache", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"],
                  [table(env["CACHE_TABLE"])]),
    ]

    counted = [m for m in models if REGISTRY[m].count_tokens]
    guarded = guardrail_statements(env, models) + alert_statements(env, models)

    def api_role(function: str | None) -> list[dict[str, Any]]:
        return [
            statement("InvokeModels", invoke, bedrock_resources(models)),
            *guarded,
            # POST /v1/messages/count_tokens, on the API function, for the
            # models CountTokens counts (their foundation models, by base id).
            *([statement("CountTokens", ["bedrock:CountTokens"], sorted({
                f"arn:aws:bedrock:*::foundation-model/{REGISTRY[m].base_id or m}"
                for m in counted}))] if function is None and counted else []),
            *shared_tables,
            # A reservation over several usage items (a tenant's limits, a month
            # budget) reads them back and may start a month item; GET /usage
            # (the API function) reads a key's items too. A transaction's
            # updates are authorised as UpdateItem (CountUsage).
            statement("ReserveUsage", ["dynamodb:BatchGetItem", "dynamodb:PutItem"],
                      [table(env["USAGE_TABLE"])]),
            statement("Jobs", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                      [table(env["JOBS_TABLE"])]),
            statement("QueueJobs", ["sqs:GetQueueUrl", "sqs:SendMessage"], [queue]),
            # The Messages routes check the key themselves (x-api-key or Bearer);
            # the /admin routes (API function only) manage keys and tenants and
            # read spend.
            *([statement("ReadKeys", ["dynamodb:GetItem"], [table(env["KEYS_TABLE"])])]
              if function is not None else
              [statement("ManageKeys", ["dynamodb:GetItem", "dynamodb:PutItem",
                                        "dynamodb:Scan", "dynamodb:UpdateItem"],
                         [table(env["KEYS_TABLE"])]),
               statement("ReadSpend", ["dynamodb:Scan"], [table(env["USAGE_TABLE"])])]),
            # POST/GET/DELETE /v1/responses: a record's head, pieces and item index.
            statement("StoredResponses", ["dynamodb:BatchGetItem", "dynamodb:DeleteItem",
                                          "dynamodb:PutItem"], [table(env["RESPONSES_TABLE"])]),
            logs(stage, function),
        ]
    auth = [
        statement("ReadKeys", ["dynamodb:GetItem"], [table(env["KEYS_TABLE"])]),
        logs(stage, "api_key_auth"),
    ]
    worker = [
        statement("InvokeModels", invoke, bedrock_resources(models)),
        *guarded,
        *shared_tables,
        statement("Jobs", ["dynamodb:GetItem", "dynamodb:UpdateItem"], [table(env["JOBS_TABLE"])]),
        # A stage with fallback chains reads its links' cooldowns (usage items).
        *([statement("ReadCooldowns", ["dynamodb:BatchGetItem"], [table(env["USAGE_TABLE"])])]
          if env.get("FALLBACKS", "").strip() else []),
        statement("ConsumeJobs", ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage",
                                  "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
                  [queue]),
        logs(stage, "process_job"),
    ]
    return {role: {"Version": "2012-10-17", "Statement": statements}
            for role, statements in (("api", api_role(None)), ("auth", auth), ("worker", worker),
                                     ("stream", api_role("stream_handler")))}


def rendered(config: dict[str, Any]) -> dict[Path, str]:
    files = {}
    for stage in config["stages"]:
        for role, document in policies(config, stage).items():
            files[CHALICE_DIR / f"policy-{stage}-{role}.json"] = json.dumps(document, indent=2) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    for stage in config["stages"]:
        unknown = [m.strip() for m in stage_env(config, stage)["ALLOWED_MODELS"].split(",")
                   if m.strip() and m.strip() not in REGISTRY]
        if unknown:
            print(f"gen_policies.py: stage {stage}'s ALLOWED_MODELS names a model the registry does not "
                  f"know: {', '.join(unknown)} (chalicelib/models/registry.py, catalog.py; "
                  "docs/models.md#change-or-add-a-model)", file=sys.stderr)
            return 2
    stale = []
    for path, text in rendered(config).items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale policies (run python scripts/gen_policies.py): {', '.join(stale)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
