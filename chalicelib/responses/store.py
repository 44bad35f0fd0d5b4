"""Stored Responses in DynamoDB, per tenant, expiring through TTL.

One response is one record: its response object and the input items it was
given, as JSON text. DynamoDB caps an item at 400 KB, so that text is cut into
pieces of at most ``PIECE_CHARS`` characters (4 bytes each at worst): the
head item (``pk`` = the response id) holds the tenant, the status, the chain
of earlier responses and the first piece; ``<id>#1``, ``<id>#2``... the rest.
A conversation never sits in one item: each response holds only its own new
input and output, and names its ancestors (``chain``, oldest first), which are
read back with BatchGetItem. Pieces are written before their head and deleted
after it, so a head never names a piece that is missing.

``item#<id>`` items index each stored output item to its response, so an
``item_reference`` finds it. A record of another tenant reads as absent.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.dynamo import decode_item, encode, encode_item
from chalicelib.errors import StoreUnavailableError

PIECE_CHARS = 90_000
BATCH_KEYS = 100
BATCH_TRIES = 5
IN_FLIGHT = ("queued", "in_progress")


@dataclass(frozen=True)
class StoredResponse:
    response_id: str
    tenant: str
    status: str
    response: dict[str, Any]
    input: list[dict[str, Any]]
    chain: tuple[str, ...] = ()
    job_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items(self) -> list[dict[str, Any]]:
        """What this turn adds to a conversation: its input, then its output."""
        return [*self.input, *self.response.get("output", [])]


def _pieces(text: str) -> list[str]:
    return [text[i:i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)] or [""]


class ResponseStore:
    def __init__(self, client: Any, table: str, clock: Callable[[], float], ttl_s: int) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._ttl_s = ttl_s

    def save(self, stored: StoredResponse) -> None:
        """Write (or overwrite) a record and index its output items."""
        body = json.dumps({"response": stored.response, "input": stored.input,
                           "extra": stored.extra}, separators=(",", ":"), ensure_ascii=False)
        pieces = _pieces(body)
        expires = int(self._clock()) + self._ttl_s
        for index, piece in enumerate(pieces[1:], start=1):
            self._client.put_item(TableName=self._table, Item=encode_item(
                {"pk": f"{stored.response_id}#{index}", "body": piece, "expires_at": expires}))
        for item in stored.response.get("output", []):
            self._client.put_item(TableName=self._table, Item=encode_item(
                {"pk": f"item#{item['id']}", "tenant": stored.tenant,
                 "response_id": stored.response_id, "expires_at": expires}))
        self._client.put_item(TableName=self._table, Item=encode_item({
            "pk": stored.response_id, "tenant": stored.tenant, "status": stored.status,
            "chain": json.dumps(stored.chain), "job_id": stored.job_id,
            "pieces": len(pieces), "body": pieces[0], "expires_at": expires}))

    def get(self, response_id: str, tenant: str) -> StoredResponse | None:
        found = self._heads([response_id])
        head = found.get(response_id)
        if head is None or head["tenant"] != tenant:
            return None
        return self._assemble([head])[0]

    def history(self, chain: Iterable[str], tenant: str) -> list[StoredResponse]:
        """The tenant's records among ``chain``, in its order (a deleted or
        expired one is left out)."""
        ids = list(chain)
        heads = self._heads(ids)
        return self._assemble([heads[i] for i in ids if i in heads and heads[i]["tenant"] == tenant])

    def find_item(self, item_id: str, tenant: str) -> dict[str, Any] | None:
        """A stored output item of the tenant's, by its id."""
        index = self._heads([f"item#{item_id}"]).get(f"item#{item_id}")
        if index is None or index["tenant"] != tenant:
            return None
        stored = self.get(str(index["response_id"]), tenant)
        if stored is None:
            return None
        return next((i for i in stored.response.get("output", []) if i.get("id") == item_id), None)

    def delete(self, stored: StoredResponse) -> None:
        head = self._heads([stored.response_id]).get(stored.response_id) or {}
        self._client.delete_item(TableName=self._table, Key={"pk": encode(stored.response_id)})
        for index in range(1, int(head.get("pieces", 1))):
            self._client.delete_item(TableName=self._table,
                                     Key={"pk": encode(f"{stored.response_id}#{index}")})
        for item in stored.response.get("output", []):
            self._client.delete_item(TableName=self._table, Key={"pk": encode(f"item#{item['id']}")})

    def _heads(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Items by pk, read BATCH_KEYS at a time; unprocessed keys retried."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_KEYS):
            request = {self._table: {"Keys": [{"pk": encode(k)}
                                              for k in unique[start:start + BATCH_KEYS]],
                                     "ConsistentRead": True}}
            idle = 0  # rounds in a row that read nothing (throttled)
            while request:
                answer = self._client.batch_get_item(RequestItems=request)
                read = answer.get("Responses", {}).get(self._table, [])
                for raw in read:
                    item = decode_item(raw)
                    found[str(item["pk"])] = item
                # A batch over 16 MB comes back in parts: go on while each
                # round reads something, give up after BATCH_TRIES idle ones.
                idle = 0 if read else idle + 1
                if idle >= BATCH_TRIES:
                    raise StoreUnavailableError("Stored responses could not all be read; "
                                                "retry shortly.")
                request = answer.get("UnprocessedKeys") or {}
        return found

    def _assemble(self, heads: list[dict[str, Any]]) -> list[StoredResponse]:
        wanted = [f"{h['pk']}#{i}" for h in heads for i in range(1, int(h.get("pieces", 1)))]
        rest = self._heads(wanted) if wanted else {}
        records = []
        for head in heads:
            pieces = [str(head["body"])] + [
                str(rest[f"{head['pk']}#{i}"]["body"]) for i in range(1, int(head["pieces"]))]
            body = json.loads("".join(pieces))
            records.append(StoredResponse(
                response_id=str(head["pk"]), tenant=str(head["tenant"]),
                status=str(head["status"]), response=body["response"], input=body["input"],
                chain=tuple(json.loads(head.get("chain") or "[]")), job_id=head.get("job_id"),
                extra=body.get("extra") or {}))
        return records
