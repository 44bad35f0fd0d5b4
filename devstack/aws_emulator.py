"""Local AWS services (DynamoDB, SQS) on one port: moto's server, one request at a time.

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

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server


class Serialised:
    """WSGI middleware: one request inside the app at a time, body included."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


def make_aws_server(host: str, port: int) -> BaseWSGIServer:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
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
