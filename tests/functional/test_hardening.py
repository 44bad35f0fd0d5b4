"""Issue 11: Prefer counting, job URLs, metrics on failure, job sizes and the
worker's error paths, each against the emulators (moto and the Bedrock one)."""
from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

import app as app_module
from chalicelib.jobs.store import JobStore
from chalicelib.jobs.api import base_url
from chalicelib.tenancy.keys import KeyStore
from chalicelib.jobs.queue import JobQueue
from chalicelib.observe.telemetry import Telemetry
from chalicelib.wire.native import parse_chat_request
from chalicelib.jobs.worker import RetryLater, handle_message
from devstack.prompt_tokens import count_prompt_tokens
from tests.conftest import MODEL, Api, ApiFactory
from tests.functional.test_jobs import drain, queue_depth, status, submit
from tests.functional.test_telemetry import lines
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}


def day_tokens(dynamodb: Any, key_id: str) -> int:
    items = dynamodb.scan(TableName="llm-endpoint-dev-usage")["Items"]
    return sum(int(i["tokens"]["N"]) for i in items if i["pk"]["S"].startswith(key_id + "#d#"))


# 9. Prefer: respond-async counts a request once.

def test_prefer_respond_async_counts_the_request_once(make_api: ApiFactory, key_store: KeyStore,
                                                      job_queues: dict[str, str],
                                                      emulator: EmulatorControl,
                                                      dynamodb: Any) -> None:
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"requests_per_minute": 2, "tokens_per_day": 100_000})
    api = make_api(key=secret, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)
    emulator.configure(fail_next=["ThrottlingException"] * 3)
    deferred = api.http.post("/chat", headers={**JSON, "Prefer": "respond-async"},
                             body=json.dumps({"prompt": "x", "max_tokens": 50}))
    assert deferred.status_code == 202
    reserved = day_tokens(dynamodb, record.key_id)
    assert reserved > 0  # the job holds one reservation: the request's own
    second = api.http.post("/chat", headers=JSON, body=json.dumps({"prompt": "y"}))
    assert second.status_code == 200, second.body  # rpm 2: the deferred one counted once


# 8. Location and status_url: absolute, with the stage, from the request.

@pytest.mark.parametrize("headers,context,path,expected", [
    ({"host": "abc.execute-api.us-east-1.amazonaws.com", "x-forwarded-proto": "https"},
     {"path": "/prod/chat/jobs", "stage": "prod"}, "/chat/jobs",
     "https://abc.execute-api.us-east-1.amazonaws.com/prod"),
    ({"host": "api.example.com", "x-forwarded-proto": "https"},
     {"path": "/llm/chat", "stage": "prod"}, "/chat", "https://api.example.com/llm"),
    ({"host": "api.example.com", "x-forwarded-proto": "https"},
     {"path": "/chat", "stage": "prod"}, "/chat", "https://api.example.com"),
    ({"host": "127.0.0.1:8000"}, {"path": "/chat/jobs"}, None, "http://127.0.0.1:8000"),
    ({}, {"path": "/chat/jobs"}, None, ""),
])
def test_base_url(headers: dict[str, str], context: dict[str, Any], path: str | None,
                  expected: str) -> None:
    assert base_url(headers, context, path) == expected


def proxy_event(method: str, path: str, body: str | None, caller_context: dict[str, str],
                stage: str = "prod", resource: str | None = None,
                params: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway REST proxy event, as Lambda hands it to the handler."""
    host = "abc123.execute-api.us-east-1.amazonaws.com"
    return {
        "resource": resource or path, "path": path, "httpMethod": method,
        "headers": {"Host": host, "X-Forwarded-Proto": "https", "Content-Type": "application/json"},
        "multiValueHeaders": None, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": params,
        "stageVariables": None, "body": body, "isBase64Encoded": False,
        "requestContext": {"resourcePath": resource or path, "httpMethod": method,
                           "path": f"/{stage}{path}", "stage": stage, "domainName": host,
                           "requestId": f"req-{time.monotonic_ns()}",
                           "authorizer": {"principalId": caller_context["tenant"],
                                          **caller_context}},
    }


def test_location_is_absolute_with_the_stage(jobs_api: Api) -> None:
    from chalicelib.tenancy.auth import caller_to_context
    from chalicelib.tenancy.auth import Caller
    from chalicelib.tenancy.keys import Limits
    context = caller_to_context(Caller("tests", "key_x", Limits()))
    event = proxy_event("POST", "/chat/jobs", json.dumps({"prompt": "x"}), context)
    answer = app_module.app(event, None)
    assert answer["statusCode"] == 202, answer
    job = json.loads(answer["body"])
    url = f"https://abc123.execute-api.us-east-1.amazonaws.com/prod/chat/jobs/{job['job_id']}"
    assert answer["headers"]["Location"] == job["status_url"] == url
    read = app_module.app(proxy_event("GET", f"/chat/jobs/{job['job_id']}", None, context,
                                      resource="/chat/jobs/{job_id}",
                                      params={"job_id": job["job_id"]}), None)
    assert json.loads(read["body"])["status_url"] == url


@pytest.fixture
def jobs_api(make_api: ApiFactory, job_queues: dict[str, str]) -> Api:
    return make_api(jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)


# 6. Metrics name the requested model even when the request fails.

def test_a_failed_request_is_counted_under_its_model(make_api: ApiFactory,
                                                     emulator: EmulatorControl) -> None:
    stream = io.StringIO()
    api = make_api(telemetry=Telemetry("dev", stream=stream))
    emulator.configure(fault_rate={"ThrottlingException": 1.0})
    for path, body in (("/chat", {"prompt": "x"}),
                       ("/v1/chat/completions", {"model": MODEL, "stream": True,
                                                 "messages": [{"role": "user", "content": "x"}]})):
        assert api.http.post(path, headers=JSON, body=json.dumps(body)).status_code == 429
    logs, emf = lines(stream)
    main = [r for r in emf if "Requests" in r]
    assert [r["model"] for r in main] == [MODEL, MODEL]
    assert [r["BedrockThrottles"] for r in main] == [[3.0], [3.0]]
    assert [log["model"] for log in logs] == [MODEL, MODEL]


# 4. Jobs too large for one DynamoDB item.

def test_a_job_too_large_for_its_item_is_refused_with_413(jobs_api: Api, dynamodb: Any) -> None:
    tenant_jobs = len(dynamodb.scan(TableName="llm-endpoint-dev-jobs")["Items"])
    body = json.dumps({"prompt": "x" * 300_000})
    for _ in range(2):  # the same answer every time, never 503 "retry shortly"
        response = jobs_api.http.post("/chat/jobs", headers=JSON, body=body)
        assert response.status_code == 413
        assert json.loads(response.body)["error"]["code"] == "request_too_large"
    assert len(dynamodb.scan(TableName="llm-endpoint-dev-jobs")["Items"]) == tenant_jobs
    assert jobs_api.http.post("/chat", headers=JSON, body=body).status_code == 200


def test_an_answer_too_large_for_its_item_settles_once(make_api: ApiFactory, key_store: KeyStore,
                                                       sqs: Any, job_queues: dict[str, str],
                                                       emulator: EmulatorControl,
                                                       dynamodb: Any) -> None:
    secret, record = key_store.create("big", now=int(time.time()),
                                      limits={"tokens_per_day": 1_000_000})
    # Let a request through that leaves the answer no room (the default
    # limit keeps ample room), to reach the worker's overflow path: a probe
    # record measures the item's size as moto counts it (its limit: 405,000).
    api = make_api(key=secret, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0,
                   jobs_max_request_bytes=410_000)
    probe = api.runtime.jobs.create("big", parse_chat_request({"prompt": "w" * 390_000},
                                                              api.runtime.settings), None)
    size = item_size(dynamodb.get_item(TableName="llm-endpoint-dev-jobs",
                                       Key={"job_id": {"S": probe.job_id}})["Item"])
    dynamodb.delete_item(TableName="llm-endpoint-dev-jobs", Key={"job_id": {"S": probe.job_id}})
    # Room for the claim's fields (~70 bytes) and the failure's error, not the answer.
    # Words, about 79k tokens (one letter repeated would pass the 128k window).
    prompt = ("word " * 160_000)[:390_000 + 405_000 - size - 600]
    accepted = submit(api, {"prompt": prompt, "max_tokens": 2048})
    drain(sqs, job_queues["jobs"])
    failed = json.loads(status(api, accepted["job_id"]).body)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert failed["error"]["code"] == "result_too_large"
    sent = emulator.requests()
    assert len(sent) == 1  # never called again
    assert queue_depth(sqs, job_queues["jobs"]) == 0 and queue_depth(sqs, job_queues["dlq"]) == 0
    # Charged what Bedrock generated (the prompt's tokens and the answer),
    # not the reservation's worst case, and not nothing.
    charged = day_tokens(dynamodb, record.key_id)
    prompt_tokens = count_prompt_tokens(sent[0]["body"]["prompt"])
    assert prompt_tokens < charged <= prompt_tokens + 2048


def item_size(item: dict[str, Any]) -> int:
    """An item's size as moto counts it: names plus values as text."""
    return sum(len(name) + len(str(next(iter(value.values())))) for name, value in item.items())


# 10. The worker's error paths.

class RecordingQueue(JobQueue):
    """The real queue, remembering the visibility delays the worker asked for."""

    def __init__(self, queue: JobQueue) -> None:
        super().__init__(queue._client, queue._name)
        self.delays: list[int] = []

    def delay(self, receipt_handle: str, seconds: int) -> None:
        self.delays.append(seconds)


def message(job_id: str, sqs: Any, queue: str) -> str:
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)["Messages"]
    body = got[0]["Body"]
    assert json.loads(body)["job_id"] == job_id
    return str(body)


def test_dynamodb_errors_get_the_jobs_backoff(jobs_api: Api, sqs: Any,
                                              job_queues: dict[str, str]) -> None:
    accepted = submit(jobs_api)
    body = message(accepted["job_id"], sqs, job_queues["jobs"])
    runtime = jobs_api.runtime
    queue = RecordingQueue(runtime.queue)
    runtime._built["queue"] = queue
    runtime._built["jobs"] = JobStore(runtime.dynamodb, "no-such-table", runtime.clock, 60)
    runtime._built["settings"] = dataclass_replace(runtime.settings, jobs_retry_base_s=8)
    for receive in (1, 3):
        with pytest.raises(RetryLater):
            handle_message(body, receive, "receipt", runtime)
    assert 6 <= queue.delays[0] <= 8 and 24 <= queue.delays[1] <= 32  # not 1800 s


def dataclass_replace(obj: Any, **changes: Any) -> Any:
    import dataclasses
    return dataclasses.replace(obj, **changes)


def test_a_duplicate_of_a_running_job_never_reaches_the_dlq(jobs_api: Api, sqs: Any,
                                                            job_queues: dict[str, str],
                                                            emulator: EmulatorControl) -> None:
    accepted = submit(jobs_api)
    body = message(accepted["job_id"], sqs, job_queues["jobs"])
    runtime = jobs_api.runtime
    queue = RecordingQueue(runtime.queue)
    runtime._built["queue"] = queue
    owner = runtime.jobs.claim(accepted["job_id"], lease_s=60)  # another, live worker
    assert owner is not None
    with pytest.raises(RetryLater):
        handle_message(body, 1, "receipt", runtime)
    assert 60 <= queue.delays[0] <= 62  # back when that worker's lease ends
    handle_message(body, runtime.settings.jobs_max_receives, "receipt", runtime)  # no raise: deleted
    assert runtime.jobs.succeed(owner, {"text": "done"})
    handle_message(body, 2, "receipt", runtime)
    assert emulator.requests() == []
    assert runtime.jobs.get(accepted["job_id"]).status == "succeeded"


def test_an_expired_job_releases_its_reservation(make_api: ApiFactory, key_store: KeyStore,
                                                 sqs: Any, job_queues: dict[str, str],
                                                 dynamodb: Any,
                                                 emulator: EmulatorControl) -> None:
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 100_000})
    api = make_api(key=secret, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)
    accepted = submit(api, {"prompt": "x", "max_tokens": 500})
    assert day_tokens(dynamodb, record.key_id) > 500
    dynamodb.delete_item(TableName="llm-endpoint-dev-jobs",  # as DynamoDB's TTL does
                         Key={"job_id": {"S": accepted["job_id"]}})
    assert drain(sqs, job_queues["jobs"]) == 1
    assert day_tokens(dynamodb, record.key_id) == 0
    assert emulator.requests() == [] and queue_depth(sqs, job_queues["dlq"]) == 0


def test_a_job_read_after_it_expired_is_gone(make_api: ApiFactory, key_store: KeyStore,
                                             job_queues: dict[str, str], sqs: Any,
                                             dynamodb: Any, emulator: EmulatorControl) -> None:
    # DynamoDB's TTL deletes an expired item only eventually; until then a
    # read still returns it, and the worker would still run it.
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 100_000})
    api = make_api(key=secret, jobs_queue=job_queues["jobs"], job_ttl_s=60)
    accepted = submit(api, {"prompt": "x", "max_tokens": 500})
    assert status(api, accepted["job_id"]).status_code == 200
    later = make_api(key=secret, jobs_queue=job_queues["jobs"], job_ttl_s=60,
                     clock=lambda: time.time() + 61)
    response = status(later, accepted["job_id"])
    assert response.status_code == 404 and json.loads(response.body)["error"]["code"] == "not_found"
    assert drain(sqs, job_queues["jobs"]) == 1  # the worker, at that later time
    assert emulator.requests() == [] and day_tokens(dynamodb, record.key_id) == 0
    assert queue_depth(sqs, job_queues["dlq"]) == 0


class AbandonFails(JobStore):
    def abandon(self, job: Any, error: dict[str, Any]) -> bool:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                     "Message": "slow down"}}, "UpdateItem")


def test_a_failing_abandon_still_releases(make_api: ApiFactory, key_store: KeyStore) -> None:
    secret, _ = key_store.create("acme", now=int(time.time()), limits={"tokens_per_day": 1000})
    api = make_api(key=secret, jobs_queue="no-such-queue")
    runtime = api.runtime
    runtime._built["jobs"] = AbandonFails(runtime.dynamodb, runtime.settings.jobs_table,
                                          runtime.clock, 60)
    body = json.dumps({"prompt": "x", "max_tokens": 900})
    for _ in range(2):  # the second fits only if the first gave its tokens back
        response = api.http.post("/chat/jobs", headers=JSON, body=body)
        assert response.status_code == 503, response.body
        assert json.loads(response.body)["error"]["code"] == "queue_unavailable"


# 5. Single flight covers the leader's whole deadline; followers keep theirs.

def flight_request(prompt: str) -> Any:
    from chalicelib.chat import ChatRequest, Message
    return ChatRequest(messages=(Message("user", f"{prompt} {time.monotonic_ns()}"),), model=MODEL,
                       max_tokens=20, temperature=0.0, top_p=0.9)


def test_identical_requests_make_one_slow_call(make_api: ApiFactory,
                                               emulator: EmulatorControl) -> None:
    import threading
    api = make_api()
    emulator.configure(latency_ms=11_000)  # longer than the old 10 s follower wait
    req = flight_request("slow")
    answers: list[Any] = []

    def ask() -> None:
        answers.append(api.runtime.service.complete(req, "tests"))
    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.2)  # the first one leads
    for t in threads:
        t.join(60)
    assert len(emulator.requests()) == 1
    assert len({a.text for a in answers}) == 1 and sum(not a.cached for a in answers) == 1


def test_the_lease_covers_the_leaders_deadline(dynamodb: Any) -> None:
    from chalicelib.cache import ResponseCache, cache_key
    from chalicelib.chat import Completion, Usage
    from chalicelib.config import Settings, call_deadline_s
    assert call_deadline_s(Settings()) == 24  # 3 x 1 s connect + 1 + 2 s backoff + 18 s read
    cache = ResponseCache(dynamodb, "llm-endpoint-dev-cache", time.time, ttl_s=60)
    req = flight_request("lease")
    seen: list[int] = []

    def compute() -> Completion:
        item = dynamodb.get_item(TableName="llm-endpoint-dev-cache",
                                 Key={"pk": {"S": cache_key(req, "t1")}})["Item"]
        seen.append(int(item["lease_until"]["N"]) - int(time.time()))
        return Completion(MODEL, "x", "stop", Usage(1, 1))
    cache.get_or_compute(req, "t1", compute, lease_s=126)
    assert 126 <= seen[0] <= 128


def test_a_follower_never_waits_past_its_own_deadline(dynamodb: Any) -> None:
    import threading
    from chalicelib.cache import ResponseCache
    from chalicelib.chat import Completion, Usage
    cache = ResponseCache(dynamodb, "llm-endpoint-dev-cache", time.time, ttl_s=60, poll_s=0.02)
    req = flight_request("deadline")
    release = threading.Event()

    def slow() -> Completion:
        release.wait(10)
        return Completion(MODEL, "leader", "stop", Usage(1, 1))
    leader = threading.Thread(target=lambda: cache.get_or_compute(req, "t1", slow, lease_s=30))
    leader.start()
    time.sleep(0.3)
    started = time.monotonic()
    answer = cache.get_or_compute(req, "t1", lambda: Completion(MODEL, "own", "stop", Usage(1, 1)),
                                  lease_s=30, wait_s=0.5)
    waited = time.monotonic() - started
    release.set()
    leader.join(10)
    assert answer.text == "own" and 0.45 <= waited < 1.5
