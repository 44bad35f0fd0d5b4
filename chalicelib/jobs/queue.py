"""The jobs queue (SQS): send a job id, push a message's next delivery back."""
from __future__ import annotations

import json
import threading
from typing import Any


class JobQueue:
    def __init__(self, client: Any, queue_name: str) -> None:
        self._client = client
        self._name = queue_name
        self._url: str | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        # Resolved on first use: the URL holds the account id, which no
        # configuration needs to know.
        with self._lock:
            if self._url is None:
                self._url = str(self._client.get_queue_url(QueueName=self._name)["QueueUrl"])
            return self._url

    def send(self, job_id: str, **fields: str) -> None:
        """``fields`` travel with the job id (the reservation, so that a worker
        can release it even when the job's record has expired)."""
        self._client.send_message(QueueUrl=self.url,
                                  MessageBody=json.dumps({"job_id": job_id, **fields}))

    def delay(self, receipt_handle: str, seconds: int) -> None:
        """The message comes back after ``seconds`` (SQS caps it at 12 h)."""
        self._client.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt_handle,
                                               VisibilityTimeout=min(seconds, 43_200))
