"""Reading one stored response for a caller: their own, or a 404; and the
store's failures as a retryable 503 (never a traceback)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import NotFoundError, StoreUnavailableError
from chalicelib.responses.store import StoredResponse
from chalicelib.tenancy.auth import Caller

if TYPE_CHECKING:
    from chalicelib.runtime import Runtime

T = TypeVar("T")
MAX_ID_CHARS = 128


def stored(action: Callable[[], T]) -> T:
    """A store call; DynamoDB failing is a retryable 503, never a traceback."""
    try:
        return action()
    except (ClientError, BotoCoreError) as exc:
        raise StoreUnavailableError("Stored responses cannot be reached; retry shortly.") from exc


def _not_found(response_id: str, param: str | None = None) -> NotFoundError:
    return NotFoundError(f"No response with id '{response_id[:MAX_ID_CHARS]}'.", param=param)


def find(runtime: Runtime, caller: Caller, response_id: str,
         param: str | None = None) -> StoredResponse:
    """The caller's own stored response; anyone else's is as absent as none."""
    found = None
    if response_id.startswith("resp_") and len(response_id) <= MAX_ID_CHARS:
        found = stored(lambda: runtime.responses.get(response_id, caller.tenant))
    if found is None:
        raise _not_found(response_id, param)
    return found
