"""responses/store.py against an in-memory DynamoDB that answers a batch in
parts, as DynamoDB does past 16 MB or when throttled: every piece is read
back, and a store that reads nothing for a while is a 503, not a hang."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.errors import StoreUnavailableError
from chalicelib.responses.store import PIECE_CHARS, ResponseStore, StoredResponse


class PartialDynamo:
    """put_item, delete_item and a batch_get_item that returns at most
    ``per_batch`` items (the rest as UnprocessedKeys)."""

    def __init__(self, per_batch: int) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.per_batch = per_batch
        self.batches = 0

    def put_item(self, TableName: str, Item: dict[str, Any]) -> None:  # noqa: N803
        self.items[Item["pk"]["S"]] = Item

    def delete_item(self, TableName: str, Key: dict[str, Any]) -> None:  # noqa: N803
        self.items.pop(Key["pk"]["S"], None)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.batches += 1
        (table, spec), = RequestItems.items()
        keys = spec["Keys"]
        now, later = keys[:self.per_batch], keys[self.per_batch:]
        found = [self.items[k["pk"]["S"]] for k in now if k["pk"]["S"] in self.items]
        return {"Responses": {table: found},
                "UnprocessedKeys": {table: {**spec, "Keys": later}} if later else {}}


def record(text: str) -> StoredResponse:
    return StoredResponse("resp_1", "acme", "completed",
                          {"id": "resp_1", "output": [{"type": "message", "id": "msg_1"}]},
                          [{"type": "message", "id": "msg_0", "content": [{"text": text}]}])


def test_a_record_of_many_pieces_is_read_back_whole_through_partial_batches() -> None:
    client = PartialDynamo(per_batch=1)
    store = ResponseStore(client, "t", lambda: 0.0, ttl_s=60)
    text = "y" * (PIECE_CHARS * 3)
    store.save(record(text))
    assert sum(1 for k in client.items if k.startswith("resp_1#")) >= 3
    back = store.get("resp_1", "acme")
    assert back is not None and back.input[0]["content"][0]["text"] == text
    assert client.batches >= 4
    assert store.get("resp_1", "globex") is None  # another tenant's reads as absent
    assert store.find_item("msg_1", "acme") == {"type": "message", "id": "msg_1"}
    store.delete(back)
    assert client.items == {}


def test_a_store_that_reads_nothing_is_unavailable() -> None:
    client = PartialDynamo(per_batch=0)
    with pytest.raises(StoreUnavailableError):
        ResponseStore(client, "t", lambda: 0.0, ttl_s=60).get("resp_1", "acme")
