"""The Responses API's orchestration: join stored history, run, store, read back.

The routes call these; the model call itself is the routes' (the one limiter
and ChatService path, as on ``/v1/chat/completions``). What is stored per
tenant is a response's own input items and its response object
(``ResponseStore``); ``previous_response_id`` replays the chain of earlier
turns (their input and output items, not their ``instructions``). Another
tenant's response, its items included, reads as absent: a 404.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.chat import ChatRequest, Completion, StreamEvent
from chalicelib.errors import InvalidRequestError, NotFoundError
from chalicelib.responses.background import refresh
from chalicelib.responses.records import MAX_ID_CHARS, find, stored
from chalicelib.responses.store import IN_FLIGHT, StoredResponse
from chalicelib.streaming.responses import render_response_events
from chalicelib.tenancy.access import settings_for
from chalicelib.tenancy.auth import Caller
from chalicelib.wire.response_object import completed, item_list
from chalicelib.wire.responses import ParsedCall, chat_request, new_id, parse_responses_body

if TYPE_CHECKING:
    from chalicelib.runtime import Runtime


@dataclass(frozen=True)
class Prepared:
    """A request ready to run: the ChatRequest and what its response needs."""

    call: ParsedCall
    request: ChatRequest
    response_id: str
    created_at: int
    input: tuple[dict[str, Any], ...]  # this turn's items, references resolved
    chain: tuple[str, ...]  # the earlier responses it continues, oldest first


def _resolve(items: Iterable[Mapping[str, Any]], known: list[Mapping[str, Any]],
             runtime: Runtime, caller: Caller) -> tuple[dict[str, Any], ...]:
    """``item_reference`` items replaced by the items they name: in this
    conversation first, else among the caller's stored output items."""
    by_id = {str(i.get("id")): i for i in known}
    resolved = []
    for index, item in enumerate(items):
        if item["type"] != "item_reference":
            by_id[item["id"]] = item
            resolved.append(dict(item))
            continue
        ref = str(item["id"])
        found = by_id.get(ref) or (stored(lambda: runtime.responses.find_item(ref, caller.tenant))
                                   if len(ref) <= MAX_ID_CHARS else None)
        if found is None:
            raise NotFoundError(f"No item with id '{ref[:MAX_ID_CHARS]}'.",
                                param=f"input[{index}].id")
        resolved.append(dict(found))
    return tuple(resolved)


def prepare(runtime: Runtime, caller: Caller, payload: Mapping[str, Any]) -> Prepared:
    settings = settings_for(runtime.settings, caller)
    call = parse_responses_body(payload, settings)
    chain: tuple[str, ...] = ()
    history: list[Mapping[str, Any]] = []
    if call.previous_response_id is not None:
        previous = refresh(runtime, find(runtime, caller, call.previous_response_id,
                                         "previous_response_id"))
        if previous.status in IN_FLIGHT:
            raise InvalidRequestError(
                f"Response '{previous.response_id}' is still {previous.status}: continue from "
                "it once it is done.", param="previous_response_id")
        chain = (*previous.chain, previous.response_id)
        for turn in stored(lambda: runtime.responses.history(chain[:-1], caller.tenant)):
            history += turn.items
        history += previous.items
    items = _resolve(call.items, history, runtime, caller)
    request = chat_request(call, (*history, *items), settings)
    return Prepared(call, request, new_id("resp"), int(runtime.clock()), items, chain)


def _keep(runtime: Runtime, caller: Caller, prepared: Prepared, response: dict[str, Any],
          job_id: str | None = None) -> None:
    if prepared.call.store:
        record = StoredResponse(prepared.response_id, caller.tenant, response["status"],
                                response, list(prepared.input), prepared.chain, job_id,
                                {"custom_tools": sorted(prepared.call.custom_tools)})
        stored(lambda: runtime.responses.save(record))


def answered(runtime: Runtime, caller: Caller, prepared: Prepared,
             completion: Completion) -> dict[str, Any]:
    """The response object of a finished answer, stored unless ``store: false``."""
    response = completed(prepared.call, prepared.response_id, prepared.created_at, completion)
    _keep(runtime, caller, prepared, response)
    return response


def streamed(runtime: Runtime, caller: Caller, prepared: Prepared,
             events: Iterable[StreamEvent]) -> Iterator[str]:
    """The stream's SSE text; the response is stored as its last event is sent."""
    return render_response_events(events, prepared.call, prepared.response_id,
                                  prepared.created_at,
                                  lambda response: _keep(runtime, caller, prepared, response))


def delete(runtime: Runtime, caller: Caller, response_id: str) -> dict[str, Any]:
    record = find(runtime, caller, response_id)
    stored(lambda: runtime.responses.delete(record))
    return {"id": record.response_id, "object": "response.deleted", "deleted": True}


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise InvalidRequestError("'limit' must be an integer between 1 and 100.", param="limit")
    return int(value)


def input_items(runtime: Runtime, caller: Caller, response_id: str,
                query: Mapping[str, str]) -> dict[str, Any]:
    """The items this response was given (``order`` desc by default, as
    OpenAI lists them; ``after`` an item id; ``limit`` 1..100)."""
    record = find(runtime, caller, response_id)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("'order' must be asc or desc.", param="order")
    items = list(record.input) if order == "asc" else list(reversed(record.input))
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequestError(f"'after' names no item of response '{response_id}'.",
                                      param="after")
        items = items[ids.index(after) + 1:]
    limit = _limit(query.get("limit"))
    return item_list(items[:limit], len(items) > limit)
