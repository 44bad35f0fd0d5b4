"""What a deploy script needs before it calls AWS, and a one-line answer when it is missing.

The deploy scripts (``stream_routes.py``, ``gateway_responses.py``) run after ``chalice deploy``
and act on what it made. A newcomer who runs one too early, without a region or without
credentials, gets one line naming what is missing and what to do, and exit status 2, never a
traceback; AWS refusing a call is one line too (exit status 1). Needs only botocore, like the
scripts.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = PROJECT_DIR / ".chalice" / "deployed"
MISSING, REFUSED = 2, 1


class Missing(Exception):
    """A precondition the script cannot meet by itself; the message says what to do."""


def deployed_record(stage: str, state_dir: Path | None = None) -> dict[str, Any]:
    """Chalice's deployment record of ``stage`` (written by ``chalice deploy``)."""
    path = (state_dir or STATE_DIR) / f"{stage}.json"
    if not path.exists():
        raise Missing(f"no deployed state for stage {stage} ({path}): run "
                      f"`chalice deploy --stage {stage}` first (the GitHub workflow restores it "
                      "from the state bucket)")
    try:
        record = json.loads(path.read_text())
        resources = record["resources"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Missing(f"{path} is not Chalice's deployment record ({exc.__class__.__name__}): "
                      f"run `chalice deploy --stage {stage}` again") from None
    if not isinstance(resources, list):
        raise Missing(f"{path} is not Chalice's deployment record: run "
                      f"`chalice deploy --stage {stage}` again")
    return dict(record)


def deployed_resource(record: dict[str, Any], stage: str, resource_type: str,
                      name: str | None = None) -> dict[str, Any]:
    """The record's resource of that type (and name), or a one-line Missing."""
    for resource in record["resources"]:
        if resource.get("resource_type") == resource_type and name in (None, resource.get("name")):
            return dict(resource)
    what = f"{resource_type} {name}" if name else resource_type
    raise Missing(f"stage {stage}'s deployed state has no {what}: run "
                  f"`chalice deploy --stage {stage}` with this version of the app first")


def session_with_credentials() -> Any:
    """A botocore session that has credentials, or a one-line Missing."""
    import botocore.session

    session = botocore.session.get_session()
    if session.get_credentials() is None:
        raise Missing("no AWS credentials: configure them (aws configure, aws sso login, or "
                      "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and check with "
                      "`aws sts get-caller-identity`")
    return session


def region_of(session: Any) -> str:
    """The session's region (AWS_DEFAULT_REGION or the profile's), or a one-line Missing."""
    region = session.get_config_variable("region")
    if not region:
        raise Missing("no AWS region: set AWS_DEFAULT_REGION (the stage's region, e.g. us-east-1) "
                      "or a profile's region")
    return str(region)


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """``main(argv)``, with every missing precondition and AWS refusal as one line on stderr."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    prog = Path(sys.argv[0]).name if argv is None else "deploy script"
    try:
        return main(argv)
    except Missing as exc:
        message, status = str(exc), MISSING
    except NoCredentialsError:
        message, status = "no AWS credentials: check with `aws sts get-caller-identity`", MISSING
    except NoRegionError:
        message, status = "no AWS region: set AWS_DEFAULT_REGION", MISSING
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = (f"AWS refused {exc.operation_name}: {error.get('Code', 'error')}: "
                   f"{error.get('Message', '')}".rstrip(": "))
        status = REFUSED
    except BotoCoreError as exc:
        message, status = f"cannot call AWS: {exc}", REFUSED
    print(f"{prog}: {message}", file=sys.stderr)
    return status
