"""Local AWS services (DynamoDB, SQS) on one port: moto's server, one request at a time.

Two of moto's SQS hot paths are made linear (``speed_up_moto_sqs``) so that a
burst of 10,000 jobs drains in minutes rather than hours.

moto's backends read, check and write an item without a lock, so two
concurrent conditional updates could both pass; real DynamoDB applies each
item update atomically. Serialising requests restores that guarantee, which
the limiter's tests depend on. Run it with
``python -m devstack.aws_emulator --port 8002``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.core.utils import unix_time, unix_time_millis
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sqs.models import Message, Queue, SQSBackend
from werkzeug.serving import BaseWSGIServer, make_server


class Serialised:
    """WSGI middleware: one request inside the app at a time, body included."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


def speed_up_moto_sqs() -> None:
    """Keep moto's SQS linear under a burst.

    moto recomputes its three ApproximateNumberOf* counters, reading the clock
    once per message, on every access to a queue's attributes, and
    send_message and the retention check of every received message access
    them. A 10,000-job burst then turns quadratic: at 5,000 queued messages a
    send took 36 ms and a receive 245 ms. Same semantics, two changes: each
    pass reads the clock once, and the retention check reads the period
    instead of rebuilding every attribute.
    """
    def delayed(queue: Queue) -> int:
        now = unix_time_millis()
        return sum(1 for m in queue._messages if now < m.delayed_until)

    def not_visible(queue: Queue) -> int:
        now = unix_time_millis()
        return sum(1 for m in queue._messages if not now > m.visible_at)

    def messages(queue: Queue) -> list[Message]:
        now = unix_time_millis()
        return [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]

    def retained(backend: SQSBackend, queue_name: str, message: Message) -> bool:
        period = int(backend.get_queue(queue_name).message_retention_period)
        return bool(period + message.sent_timestamp / 1000 > unix_time())

    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment]
    Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[assignment]
    Queue.messages = property(messages)  # type: ignore[assignment]
    SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[assignment]


def make_aws_server(host: str, port: int) -> BaseWSGIServer:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    speed_up_moto_sqs()
    app = Serialised(DomainDispatcherApplication(create_backend_app))
    return make_server(host, port, app, threaded=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args(argv)
    try:
        server = make_aws_server(args.host, args.port)
    except (OSError, SystemExit) as exc:
        print(f"aws emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    print(f"AWS emulator (moto: DynamoDB, SQS) on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
