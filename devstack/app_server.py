"""Serve app.py as ``chalice local`` does, with a listen backlog fit for bursts.

``chalice local`` builds a ``LocalDevServer`` on socketserver's default backlog
of 5, so a burst of concurrent connections is reset (see SPEC.md). This builds
the same server through Chalice's own factory (stage config and environment
variables applied, routes validated), with a larger ``request_queue_size``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from chalice.cli.factory import CLIFactory
from chalice.deploy.validate import validate_routes
from chalice.local import (ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer,
                           ThreadedHTTPServer)

from devstack.gateway import EmulatedGateway

PROJECT_DIR = Path(__file__).resolve().parent.parent


class AnyMethodHandler(ChaliceRequestHandler):
    """Every HTTP method reaches Chalice's routing, which refuses an unknown
    one with a 405 in the app's error envelope; the standard library would
    answer TRACE or any other method it does not know with a 501 HTML page.
    API Gateway's own answers (missing or refused key, a failing authorizer,
    unknown path) are the stage's gateway responses (devstack/gateway.py)."""

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any,
                 config: Any) -> None:
        # What ChaliceRequestHandler.__init__ does, with the emulated gateway
        # (the base class serves the request inside __init__).
        self.local_gateway = EmulatedGateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)


class BurstReadyServer(ThreadedHTTPServer):
    request_queue_size = 1024
    allow_reuse_address = True  # a port in TIME_WAIT is not "in use"


def build_server(host: str, port: int, stage: str) -> LocalDevServer:
    factory = CLIFactory(str(PROJECT_DIR), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)
    app_obj = config.chalice_app
    validate_routes(app_obj.routes)
    # What chalice.local.create_local_server does, minus its fixed server class.
    CustomLocalChalice.__bases__ = (LocalChalice, app_obj.__class__)
    app_obj.__class__ = CustomLocalChalice
    return LocalDevServer(app_obj, config, host, port, handler_cls=AnyMethodHandler,
                          server_cls=BurstReadyServer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # no credential chatter
    try:
        server = build_server(args.host, args.port, args.stage)
    except OSError as exc:
        print(f"app server: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
