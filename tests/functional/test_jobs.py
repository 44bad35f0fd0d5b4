"""Jobs end to end on the real DynamoDB and SQS APIs (moto): submit through the
app, deliver with the local poller (Lambda's event-source semantics), read back."""
from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

import app as app_module
from chalicelib.tenancy.keys import KeyStore
from chalicelib.jobs.worker import _charge_killed as charge_killed
from devstack.sqs_poller import Poller, Source
from tests.conftest import MODEL, Api, ApiFactory
from tests.openapi_check import OAS31Validator, _REGISTRY
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
CHAT_RESPONSE = OAS31Validator({"$ref": "urn:openapi#/components/schemas/ChatResponse"},
                               registry=_REGISTRY)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jobs_api(make_api: ApiFactory, job_queues: dict[str, str]) -> Api:
    return make_api(jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)


def submit(api: Api, body: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
    response = api.http.post("/chat/jobs", headers={**JSON, **headers},
                             body=json.dumps(body or {"prompt": "Hello, job"}))
    assert response.status_code == 202, response.body
    accepted = json.loads(response.body)
    assert response.headers["Location"] == accepted["status_url"]
    return accepted


def status(api: Api, job_id: str, **headers: str) -> Any:
    return api.http.get(f"/chat/jobs/{job_id}", headers=headers)


def poller(sqs: Any, queue: str, concurrency: int = 1) -> Poller:
    source = Source("process_job", queue, 1, concurrency, app_module.process_job)
    return Poller(sqs, source, threading.Event())


def drain(sqs: Any, queue: str, rounds: int = 20) -> int:
    """Deliver until the queue is idle; returns how many deliveries ran."""
    runs, p = 0, poller(sqs, queue)
    for _ in range(rounds):
        if not p.run_one():
            break
        runs += 1
    return runs


def queue_depth(sqs: Any, name: str) -> int:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_job_lifecycle(jobs_api: Api, sqs: Any, job_queues: dict[str, str],
                       emulator: EmulatorControl) -> None:
    accepted = submit(jobs_api, {"prompt": "Hello, job", "max_tokens": 40})
    assert accepted["status"] == "queued" and accepted["job_id"].startswith("job_")
    assert accepted["status_url"] == f"/chat/jobs/{accepted['job_id']}"  # no Host header here
    queued = json.loads(status(jobs_api, accepted["job_id"]).body)
    assert queued["status"] == "queued" and "result" not in queued
    assert drain(sqs, job_queues["jobs"]) == 1
    done = json.loads(status(jobs_api, accepted["job_id"]).body)
    assert done["status"] == "succeeded" and done["attempts"] == 1
    CHAT_RESPONSE.validate(done["result"])
    sent = emulator.requests()
    assert len(sent) == 1 and "Hello, job" in sent[0]["body"]["prompt"]
    assert sent[0]["body"]["max_gen_len"] == 40
    assert queue_depth(sqs, job_queues["jobs"]) == 0  # deleted on success


def test_tenants_see_only_their_own_jobs(jobs_api: Api, key_store: KeyStore) -> None:
    accepted = submit(jobs_api)
    other, _ = key_store.create("someone-else", now=int(time.time()))
    for job_id in (accepted["job_id"], "job_0000", "nonsense", "job_" + "x" * 200):
        response = status(jobs_api, job_id, Authorization=f"Bearer {other}")
        assert response.status_code == 404
        assert json.loads(response.body)["error"]["code"] == "not_found"
    assert status(jobs_api, accepted["job_id"]).status_code == 200


def usage_tokens(dynamodb: Any, key_id: str) -> int:
    items = dynamodb.scan(TableName="llm-endpoint-dev-usage")["Items"]
    return sum(int(i["tokens"]["N"]) for i in items if i["pk"]["S"].startswith(key_id + "#d#"))


def limited_jobs_api(make_api: ApiFactory, key_store: KeyStore, job_queues: dict[str, str],
                     **overrides: Any) -> tuple[Api, str]:
    """A jobs app whose key has a daily budget (its reservations are held),
    retrying at once; and the key's id."""
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"tokens_per_day": 100_000})
    return make_api(key=secret, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0,
                    **overrides), record.key_id


def test_redelivery_never_runs_a_finished_job_again(make_api: ApiFactory, key_store: KeyStore,
                                                    sqs: Any, job_queues: dict[str, str],
                                                    emulator: EmulatorControl,
                                                    dynamodb: Any) -> None:
    api, key_id = limited_jobs_api(make_api, key_store, job_queues)
    accepted = submit(api)
    drain(sqs, job_queues["jobs"])
    first = json.loads(status(api, accepted["job_id"]).body)

    def day_tokens() -> int:
        return usage_tokens(dynamodb, key_id)
    charged = day_tokens()
    assert charged == first["result"]["usage"]["total_tokens"]  # settled to what was used
    url = sqs.get_queue_url(QueueName=job_queues["jobs"])["QueueUrl"]
    for _ in range(2):  # SQS may deliver a message again
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"job_id": accepted["job_id"]}))
    assert drain(sqs, job_queues["jobs"]) == 2
    assert len(emulator.requests()) == 1
    assert json.loads(status(api, accepted["job_id"]).body) == first
    assert day_tokens() == charged  # never charged twice


def test_a_job_leased_to_a_live_worker_waits_then_is_taken_over(make_api: ApiFactory, sqs: Any,
                                                                job_queues: dict[str, str],
                                                                emulator: EmulatorControl) -> None:
    clock = Clock()
    api = make_api(jobs_queue=job_queues["jobs"], jobs_retry_base_s=0, clock=clock)
    accepted = submit(api)
    assert api.runtime.jobs.claim(accepted["job_id"], lease_s=60) is not None  # another worker
    assert drain(sqs, job_queues["jobs"], rounds=1) == 1
    assert json.loads(status(api, accepted["job_id"]).body)["status"] == "running"
    assert emulator.requests() == []  # it did not run it too
    clock.now += 61  # that worker died: its lease ran out
    # The message comes back when the lease ends (61 s of SQS's own time):
    # its copy stands in for it.
    url = sqs.get_queue_url(QueueName=job_queues["jobs"])["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"job_id": accepted["job_id"]}))
    drain(sqs, job_queues["jobs"])
    done = json.loads(status(api, accepted["job_id"]).body)
    assert done["status"] == "succeeded" and done["attempts"] == 2


@pytest.mark.parametrize("killed", [1, 2])
def test_an_attempt_killed_in_flight_is_charged_before_the_retry(
        make_api: ApiFactory, key_store: KeyStore, sqs: Any, job_queues: dict[str, str],
        emulator: EmulatorControl, dynamodb: Any, killed: int) -> None:
    # Lambda kills a worker at its timeout: nothing settles, and SQS hands
    # the message on. Bedrock may have generated all the attempt reserved.
    clock = Clock()
    api, key_id = limited_jobs_api(make_api, key_store, job_queues, clock=clock)
    accepted = submit(api)
    reserved = usage_tokens(dynamodb, key_id)
    assert reserved > 0
    for _ in range(killed):  # each: claimed, what the worker does before Bedrock, killed
        attempt = api.runtime.jobs.claim(accepted["job_id"], lease_s=60)
        assert attempt is not None
        charge_killed(api.runtime, attempt)
        clock.now += 61  # its lease runs out; the message comes back
    assert drain(sqs, job_queues["jobs"]) == 1
    done = json.loads(status(api, accepted["job_id"]).body)
    assert done["status"] == "succeeded" and done["attempts"] == killed + 1
    assert len(emulator.requests()) == 1
    # The killed attempts' reservations, then the answer's own usage.
    assert usage_tokens(dynamodb, key_id) == (
        killed * reserved + done["result"]["usage"]["total_tokens"])
    url = sqs.get_queue_url(QueueName=job_queues["jobs"])["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"job_id": accepted["job_id"]}))
    drain(sqs, job_queues["jobs"])  # a duplicate delivery charges nothing more
    assert usage_tokens(dynamodb, key_id) == (
        killed * reserved + done["result"]["usage"]["total_tokens"])


def test_a_settled_attempt_leaves_nothing_to_charge(make_api: ApiFactory, key_store: KeyStore,
                                                    sqs: Any, job_queues: dict[str, str],
                                                    emulator: EmulatorControl,
                                                    dynamodb: Any) -> None:
    # A transient failure requeues the job and settles its attempt: the
    # retry must not take it for a killed one.
    api, key_id = limited_jobs_api(make_api, key_store, job_queues)
    emulator.configure(fail_next=["ThrottlingException"] * 3)
    accepted = submit(api)
    assert drain(sqs, job_queues["jobs"]) >= 2
    done = json.loads(status(api, accepted["job_id"]).body)
    assert done["status"] == "succeeded" and done["attempts"] >= 2
    assert usage_tokens(dynamodb, key_id) == done["result"]["usage"]["total_tokens"]
    item = dynamodb.get_item(TableName="llm-endpoint-dev-jobs",
                             Key={"job_id": {"S": accepted["job_id"]}})["Item"]
    assert "unsettled" not in item


def test_transient_failures_are_retried(jobs_api: Api, sqs: Any, job_queues: dict[str, str],
                                        emulator: EmulatorControl) -> None:
    accepted = submit(jobs_api)
    emulator.configure(fail_next=["ThrottlingException"] * 3)  # one whole delivery's attempts
    drain(sqs, job_queues["jobs"])
    done = json.loads(status(jobs_api, accepted["job_id"]).body)
    assert done["status"] == "succeeded" and done["attempts"] == 2


def test_a_job_that_keeps_failing_lands_in_the_dlq_as_failed(jobs_api: Api, sqs: Any,
                                                             job_queues: dict[str, str],
                                                             emulator: EmulatorControl) -> None:
    accepted = submit(jobs_api)
    emulator.configure(fault_rate={"ModelErrorException": 1.0})
    drain(sqs, job_queues["jobs"])
    failed = json.loads(status(jobs_api, accepted["job_id"]).body)
    assert failed["status"] == "failed" and failed["attempts"] == 5
    assert failed["error"]["code"] == "upstream_error"
    assert failed["error"]["message"].startswith("Gave up after 5 attempts")
    assert queue_depth(sqs, job_queues["jobs"]) == 0
    assert queue_depth(sqs, job_queues["dlq"]) == 1


def test_a_poison_message_goes_to_the_dlq(jobs_api: Api, sqs: Any,
                                          job_queues: dict[str, str]) -> None:
    url = sqs.get_queue_url(QueueName=job_queues["jobs"])["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{not json")
    drain(sqs, job_queues["jobs"])
    assert queue_depth(sqs, job_queues["dlq"]) == 1


def test_unexpected_errors_are_retried_then_failed(jobs_api: Api, sqs: Any,
                                                   job_queues: dict[str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    accepted = submit(jobs_api)

    def explode(*_: Any) -> None:
        raise RuntimeError("bug with secret internals")
    monkeypatch.setattr(jobs_api.runtime.job_service, "complete", explode)
    drain(sqs, job_queues["jobs"])
    failed = json.loads(status(jobs_api, accepted["job_id"]).body)
    assert failed["status"] == "failed" and failed["error"]["code"] == "internal_error"
    assert "secret" not in json.dumps(failed)


def test_permanent_failures_fail_at_once_and_release_tokens(make_api: ApiFactory,
                                                            key_store: KeyStore, sqs: Any,
                                                            job_queues: dict[str, str],
                                                            emulator: EmulatorControl) -> None:
    secret, _ = key_store.create("acme", now=int(time.time()), limits={"tokens_per_day": 1000})
    api = make_api(key=secret, jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)
    body = {"prompt": "x", "max_tokens": 900}
    accepted = submit(api, body)
    rejected = api.http.post("/chat/jobs", headers=JSON, body=json.dumps(body))
    assert rejected.status_code == 429  # the first job holds the budget
    emulator.configure(fail_next=["ValidationException"])
    assert drain(sqs, job_queues["jobs"]) == 1
    failed = json.loads(status(api, accepted["job_id"]).body)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert failed["error"]["code"] == "upstream_validation_error"
    assert queue_depth(sqs, job_queues["jobs"]) == 0
    submit(api, body)  # its tokens came back


def test_prefer_respond_async_turns_overload_into_a_job(jobs_api: Api, sqs: Any,
                                                        job_queues: dict[str, str],
                                                        emulator: EmulatorControl) -> None:
    emulator.configure(fail_next=["ThrottlingException"] * 3)
    plain = jobs_api.http.post("/chat", headers=JSON, body=json.dumps({"prompt": "x"}))
    assert plain.status_code == 429
    emulator.configure(fail_next=["ThrottlingException"] * 3)
    deferred = jobs_api.http.post("/chat", headers={**JSON, "Prefer": "wait=5, respond-async"},
                                  body=json.dumps({"prompt": "x"}))
    assert deferred.status_code == 202
    assert deferred.headers["Preference-Applied"] == "respond-async"
    job_id = json.loads(deferred.body)["job_id"]
    drain(sqs, job_queues["jobs"])
    assert json.loads(status(jobs_api, job_id).body)["status"] == "succeeded"
    fine = jobs_api.http.post("/chat", headers={**JSON, "Prefer": "respond-async"},
                              body=json.dumps({"prompt": "x"}))
    assert fine.status_code == 200  # not overloaded: answered at once


def test_worker_concurrency_is_capped(make_api: ApiFactory, sqs: Any, job_queues: dict[str, str],
                                      emulator: EmulatorControl) -> None:
    api = make_api(jobs_queue=job_queues["jobs"], jobs_retry_base_s=0)
    ids = [submit(api, {"prompt": f"job {i}", "max_tokens": 20})["job_id"] for i in range(30)]
    emulator.configure(latency_ms=50, max_concurrency=3)
    p = poller(sqs, job_queues["jobs"], concurrency=3)
    threads = [threading.Thread(target=p.loop, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and queue_depth(sqs, job_queues["jobs"]):
        time.sleep(0.1)
    p._stop.set()
    for t in threads:
        t.join(5)
    statuses = [json.loads(status(api, job_id).body)["status"] for job_id in ids]
    stats = emulator.stats()
    assert statuses == ["succeeded"] * 30
    assert stats["max_in_flight"] <= 3 and stats["throttled"] == 0


def test_job_bodies_are_validated_like_chat(jobs_api: Api) -> None:
    for body in ({}, {"prompt": ""}, {"prompt": "x", "temperature": 3}, {"prompt": "x", "model": "m"}):
        response = jobs_api.http.post("/chat/jobs", headers=JSON, body=json.dumps(body))
        assert 400 <= response.status_code < 500


def test_model_is_recorded_with_the_job(jobs_api: Api, sqs: Any, job_queues: dict[str, str]) -> None:
    accepted = submit(jobs_api, {"prompt": "x", "model": MODEL})
    drain(sqs, job_queues["jobs"])
    assert json.loads(status(jobs_api, accepted["job_id"]).body)["result"]["model"] == MODEL


def test_an_unreachable_queue_refuses_the_job_and_frees_its_tokens(
        make_api: ApiFactory, key_store: KeyStore, dynamodb: Any) -> None:
    tenant = f"noqueue{time.monotonic_ns()}"
    secret, _ = key_store.create(tenant, now=int(time.time()), limits={"tokens_per_day": 1000})
    api = make_api(key=secret, jobs_queue="no-such-queue")
    body = json.dumps({"prompt": "x", "max_tokens": 900})
    for _ in range(2):  # the second fits only if the first gave its tokens back
        response = api.http.post("/chat/jobs", headers=JSON, body=body)
        assert response.status_code == 503
        assert json.loads(response.body)["error"]["code"] == "queue_unavailable"
    states = {item["status"]["S"] for item in dynamodb.scan(TableName="llm-endpoint-dev-jobs")["Items"]
              if item["tenant"]["S"] == tenant}
    assert states == {"failed"}  # nothing left waiting for a message that never came
