"""Write (or, with --check, verify) chalicelib/awsdata: the botocore data the app's clients load.

botocore's first client in a process lists all ~400 service directories
twice (once for service models, once for endpoint rule sets) and parses the
1.2 MB ``endpoints.json``; each model it loads carries its documentation.
In a cold start that is ~35 ms of the ~130 ms a bare boto3 call costs
(bench/overhead.py). The app's botocore session (``chalicelib/aws.py``)
searches only this directory instead, which holds, for the services the app
and botocore's credential providers create clients for:

- each service model with its documentation strings removed (nothing else
  changes: every operation and shape is kept), its endpoint rule set and
  paginators, as botocore ships them;
- ``endpoints.json`` with every partition and region but only these
  services' entries; ``partitions.json``, ``_retry.json`` and
  ``sdk-default-configuration.json`` as they are.

Two botocores are involved, and each file comes from the one that reads it:

- service models and paginators from this interpreter's botocore (the dev
  pin, requirements-run.in, which every test runs): a deployed function
  then speaks the API the tests spoke, whatever botocore the Lambda runtime
  has. That is also a fix: the runtime's own model (1.34.145,
  requirements-lambda-runtime.in) lacks Bedrock's in-stream
  ``serviceUnavailableException``, which it reported with no error code;
- endpoint rule sets, ``endpoints.json``, ``partitions.json``, retry and
  defaults configuration from the runtime's botocore (``--rules-from``,
  its data directory in .venv-lambda): botocore's own code interprets
  them, and the runtime's cannot read newer ones (DynamoDB's current rule
  set has a ``stringArray`` parameter it rejects). The dev botocore reads
  these older files as it reads its own.

tests/unit/test_awsdata.py runs ``--check`` and, under both botocores,
resolves every service in every region with this data as with botocore's
own; tests/functional/test_artifact.py runs the package on the runtime's.

    make botocore-data        # rewrite, after raising either pin
    .venv/bin/python scripts/botocore_data.py --rules-from DIR --check
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import botocore
import botocore.exceptions
import botocore.loaders

OUT = Path(__file__).resolve().parent.parent / "chalicelib" / "awsdata"
# What chalicelib creates clients for (Bedrock, usage and keys, jobs), and
# what botocore's own credential providers create on the same session when a
# profile (say, for `chalice local` against real Bedrock) assumes a role,
# signs in with SSO or with `aws login` (signin).
SERVICES = ("bedrock-runtime", "dynamodb", "sns", "sqs", "sts", "sso", "sso-oidc", "signin")
SHARED = ("partitions", "_retry", "sdk-default-configuration")
DOC_KEYS = ("documentation", "documentationUrl")


def strip_docs(node: Any) -> Any:
    """The model without its documentation strings. Only string values are
    dropped: a member *named* "documentation" maps to a dict and stays."""
    if isinstance(node, dict):
        return {key: strip_docs(value) for key, value in node.items()
                if not (key in DOC_KEYS and isinstance(value, str))}
    if isinstance(node, list):
        return [strip_docs(value) for value in node]
    return node


def dump(data: Any) -> str:
    # Key order kept as botocore ships it (members serialise in model order).
    return json.dumps(data, separators=(",", ":")) + "\n"


def version_of(data_dir: Path) -> str:
    """The version of the botocore whose data directory this is."""
    init = (data_dir.parent / "__init__.py").read_text()
    match = re.search(r"^__version__ = ['\"]([^'\"]+)", init, re.MULTILINE)
    if not match:
        raise SystemExit(f"{data_dir} is not a botocore data directory")
    return match.group(1)


def build(rules_from: Path) -> dict[str, str]:
    """Relative path -> file text."""
    models = botocore.loaders.Loader()
    rules = botocore.loaders.Loader(extra_search_paths=[str(rules_from)],
                                    include_default_search_paths=False)
    files: dict[str, str] = {}
    prefixes = set()
    for service in SERVICES:
        version = models.determine_latest_version(service, "service-2")
        model = models.load_service_model(service, "service-2", version)
        prefixes.add(model["metadata"]["endpointPrefix"])
        files[f"{service}/{version}/service-2.json"] = dump(strip_docs(model))
        files[f"{service}/{version}/paginators-1.json"] = dump(
            models.load_service_model(service, "paginators-1", version))
        try:
            ruleset = rules.load_service_model(service, "endpoint-rule-set-1", version)
        except botocore.exceptions.UnknownServiceError:
            # Newer than the runtime's botocore (signin), which therefore
            # never creates it: the dev botocore's rules.
            ruleset = models.load_service_model(service, "endpoint-rule-set-1", version)
        files[f"{service}/{version}/endpoint-rule-set-1.json"] = dump(ruleset)
    endpoints = rules.load_data("endpoints")
    for partition in endpoints["partitions"]:
        partition["services"] = {name: entry for name, entry in partition["services"].items()
                                 if name in prefixes}
    files["endpoints.json"] = dump(endpoints)
    for name in SHARED:
        files[f"{name}.json"] = dump(rules.load_data(name))
    files["VERSION"] = (f"models: botocore {botocore.__version__}\n"
                        f"rules: botocore {version_of(rules_from)}\n")
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules-from", type=Path, required=True,
                        help="the Lambda runtime botocore's data directory")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    args = parser.parse_args()
    files = build(args.rules_from)
    present = {str(p.relative_to(OUT)) for p in OUT.rglob("*") if p.is_file()} if OUT.exists() else set()
    if args.check:
        stale = sorted(path for path, text in files.items()
                       if not (OUT / path).exists() or (OUT / path).read_text() != text)
        extra = sorted(present - set(files))
        if stale or extra:
            print(f"chalicelib/awsdata is stale for botocore {botocore.__version__}: "
                  f"differs {stale}, unexpected {extra}; rerun scripts/botocore_data.py",
                  file=sys.stderr)
            return 1
        return 0
    for path in present - set(files):
        (OUT / path).unlink()
    for path, text in files.items():
        (OUT / path).parent.mkdir(parents=True, exist_ok=True)
        (OUT / path).write_text(text)
    print(f"wrote {len(files)} files to {OUT} from botocore {botocore.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
