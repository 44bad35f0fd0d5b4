"""Asynchronous chat jobs: the job store (DynamoDB), the SQS queue, the worker
that answers queued jobs with bounded concurrency, and the API helpers behind
``POST /chat/jobs`` and ``GET /chat/jobs/{id}``. Deliberately imports nothing."""
