#!/bin/sh
# AWS_LAMBDA_EXEC_WRAPPER of the stream_handler function (.chalice/config.json).
# Python's managed runtime cannot stream a response, so instead of starting it
# ("$@"), run this app's own Runtime API loop, which streams, with the managed
# runtime's interpreter and the function's code (chalicelib/streaming/lambda_runtime.py).
cd "${LAMBDA_TASK_ROOT:-/var/task}" || exit 1
PYTHON=/var/lang/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" -m chalicelib.streaming.lambda_runtime app.serve
