"""Budget alerts: one SNS notification per window at 80% and at 100% of a key's
or tenant's dollar budget, against moto's DynamoDB and SNS (the test reads what
was published from an SQS queue subscribed to the topic, as an operator's
subscription would receive it)."""
from __future__ import annotations

import json
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.aws import make_sns_client, make_sqs_client, make_sts_client
from chalicelib.jobs.store import reservation_from_json, reservation_to_json
from chalicelib.tenancy.alerts import BudgetAlerts, SnsNotifier
from chalicelib.tenancy.auth import Caller
from chalicelib.tenancy.keys import KeyStore, Limits
from chalicelib.tenancy.limits import Limiter, Need
from devstack.bootstrap import create_topics, subscribe_inbox
from tests.conftest import MODEL, ApiFactory
from tests.functional.test_budgets import T0, Clock
from tests.functional.test_limits import USAGE, CountingDynamoDB
from tests.support import EmulatorControl

JSON = {"Content-Type": "application/json"}
NEED = Need(MODEL, 4000, 1000)  # worst case 1,100 µ$ at Llama's price


@pytest.fixture
def topic() -> tuple[str, str]:
    """A budget alerts topic of this test's own, from infra/resources.yaml,
    and the URL of a queue subscribed to it."""
    sns = make_sns_client()
    arns = create_topics(sns, "dev", app_name=f"t{uuid.uuid4().hex[:12]}")
    arn = next(a for n, a in arns.items() if n.endswith("-budget-alerts"))
    return arn.rsplit(":", 1)[1], subscribe_inbox(sns, make_sqs_client(), arn)


def received(queue_url: str, at_least: int = 0, wait_s: float = 5.0) -> list[dict[str, Any]]:
    """Every notification delivered so far (SNS's envelope unwrapped)."""
    sqs, messages = make_sqs_client(), []
    deadline = time.monotonic() + wait_s
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                  WaitTimeSeconds=0).get("Messages", [])
        for message in got:
            envelope = json.loads(message["Body"])
            messages.append({"subject": envelope["Subject"], **json.loads(envelope["Message"])})
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not got and (len(messages) >= at_least or time.monotonic() > deadline):
            return messages
        if not got:
            time.sleep(0.1)


def alerts_to(topic_name: str, dynamodb: Any, clock: Any) -> BudgetAlerts:
    return BudgetAlerts(dynamodb, USAGE, SnsNotifier(make_sns_client, make_sts_client, topic_name),
                        "dev", clock)


def caller(tenant: str = "acme", tenant_limits: Limits = Limits(), **limits: Any) -> Caller:
    return Caller(tenant, f"key_{uuid.uuid4().hex[:16]}", Limits(**limits),
                  tenant_limits=tenant_limits)


def test_80_then_100_percent_once_each_per_window(dynamodb: Any, topic: tuple[str, str]) -> None:
    name, inbox = topic
    clock = Clock()
    limiter = Limiter(dynamodb, USAGE, clock, alerts=alerts_to(name, dynamodb, clock))
    who = caller(usd_per_day=Decimal("0.0055"))  # 5,500 µ$; each request costs 1,000
    for _ in range(3):  # 3,000 µ$: 55%, nothing yet
        limiter.settle(limiter.admit(who, NEED), 4500, Decimal("0.001"))
    assert received(inbox) == []
    limiter.settle(limiter.admit(who, NEED), 4500, Decimal("0.001"))  # 4,000: 73%
    limiter.settle(limiter.admit(who, NEED), 4500, Decimal("0.001"))  # 5,000: 91%
    [eighty] = received(inbox, 1)
    assert eighty["threshold_percent"] == 80 and eighty["key_id"] == who.key_id
    assert eighty["budget"] == "usd_per_day" and eighty["window"] == "2027-01-31"
    assert eighty["budget_usd"] == "0.005500" and eighty["spent_usd"] == "0.005000"
    assert eighty["whose"] == "key" and eighty["stage"] == "dev"
    assert "80%" in eighty["subject"] and who.key_id in eighty["subject"]
    for _ in range(3):  # refused: the budget is spent; 100% once, however often refused
        with pytest.raises(Exception, match="budget"):
            limiter.admit(who, NEED)
    [hundred] = received(inbox, 1)
    assert hundred["threshold_percent"] == 100 and "refused" in hundred["meaning"]
    clock.now = T0 + 3600  # the next UTC day: a new window, its own alerts
    for _ in range(5):
        limiter.settle(limiter.admit(who, NEED), 4500, Decimal("0.001"))
    [next_day] = received(inbox, 1)
    assert next_day["window"] == "2027-02-01" and next_day["threshold_percent"] == 80


def test_concurrent_settles_send_one_notification(dynamodb: Any, topic: tuple[str, str]) -> None:
    """Twenty requests settle at once across 80%: exactly one notification."""
    name, inbox = topic
    clock = Clock()
    who = caller(usd_per_month=Decimal("0.025"))  # 25,000 µ$: 20 x 1,000 is 80%
    start, settled = threading.Barrier(20), threading.Barrier(20)

    def one() -> None:
        limiter = Limiter(dynamodb, USAGE, clock, alerts=alerts_to(name, dynamodb, clock))
        start.wait()
        reservation = limiter.admit(who, NEED)
        settled.wait()
        limiter.settle(reservation, 4500, Decimal("0.001"))
    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    alerts = received(inbox, 1)
    assert [(a["threshold_percent"], a["budget"], a["window"]) for a in alerts] == [
        (80, "usd_per_month", "2027-01")]
    assert alerts[0]["spent_usd"] == "0.020000"


def test_a_tenants_budget_alerts_name_the_tenant(dynamodb: Any, topic: tuple[str, str]) -> None:
    name, inbox = topic
    clock = Clock()
    limiter = Limiter(dynamodb, USAGE, clock, alerts=alerts_to(name, dynamodb, clock))
    team = f"team-{uuid.uuid4().hex[:8]}"
    shared = Limits(usd_per_day=Decimal("0.005"))
    for _ in range(4):  # two keys of the tenant, 4,000 µ$ of 5,000: 80%
        for who in (caller(team, shared), caller(team, shared)):
            reservation = limiter.admit(who, Need(MODEL, 2000, 500))
            limiter.settle(reservation, 2200, Decimal("0.0005"))
    [alert] = received(inbox, 1)
    assert alert["whose"] == "tenant" and alert["tenant"] == team and "key_id" not in alert
    assert alert["threshold_percent"] == 80 and alert["spent_usd"] == "0.004000"


def test_a_key_far_from_its_budget_pays_no_extra_round_trip(
        dynamodb: Any, topic: tuple[str, str]) -> None:
    name, _ = topic
    counting = CountingDynamoDB(dynamodb)
    clock = Clock()
    limiter = Limiter(counting, USAGE, clock, alerts=alerts_to(name, counting, clock))
    who = caller(usd_per_day=Decimal("1"))
    reservation = limiter.admit(who, NEED)
    limiter.settle(reservation, 4500, Decimal("0.001"))
    assert counting.calls == ["update_item", "update_item"]  # reserve, settle: no alert write


def test_without_a_topic_nothing_is_sent_and_a_send_failure_never_fails_a_request(
        dynamodb: Any, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    missing = alerts_to(f"no-such-topic-{uuid.uuid4().hex[:6]}", dynamodb, clock)
    limiter = Limiter(dynamodb, USAGE, clock, alerts=missing)
    who = caller(usd_per_day=Decimal("0.0011"))
    limiter.settle(limiter.admit(who, NEED), 4500, Decimal("0.001"))  # 91%: tries to send
    assert "budget alert: could not send 80%" in caplog.text


def test_a_jobs_reservation_keeps_its_watches(dynamodb: Any) -> None:
    limiter = Limiter(dynamodb, USAGE, Clock())
    reservation = limiter.admit(caller(usd_per_day=Decimal("1"), usd_per_month=Decimal("9")),
                                NEED)
    assert {w.budget for w in reservation.watches} == {"usd_per_day", "usd_per_month"}
    assert reservation_from_json(reservation_to_json(reservation)).watches == reservation.watches


def test_through_the_app(make_api: ApiFactory, key_store: KeyStore, emulator: EmulatorControl,
                         topic: tuple[str, str]) -> None:
    name, inbox = topic
    secret, record = key_store.create("acme", now=int(time.time()),
                                      limits={"usd_per_day": Decimal("0.000018")})
    api = make_api(key=secret, budget_alerts_topic=name)
    body = {"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]}
    statuses = []
    for _ in range(40):
        emulator.respond_next("Hello there, how can I help you today?")
        response = api.http.post("/v1/chat/completions", headers=JSON, body=json.dumps(body))
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429 and set(statuses) == {200, 429}
    alerts = received(inbox, 2)
    assert sorted(a["threshold_percent"] for a in alerts) == [80, 100]
    assert {a["key_id"] for a in alerts} == {record.key_id}
    assert secret not in json.dumps(alerts)
