"""Budget alerts: one SNS notification when a dollar budget passes 80%, and one at 100%.

Each budget (a key's or a tenant's ``usd_per_day`` / ``usd_per_month``) has
one usage item per window (the UTC day's, the month's: ``limits.py``), and
its settled spend in ``spent`` (micro-dollars of what Bedrock's counts cost;
``usd`` holds in-flight reservations too). The alert of a threshold is a
conditional write on that same item::

    SET alert_80 = :now  IF attribute_not_exists(alert_80) AND spent >= :threshold

Whichever request makes it first sends the notification; every other fails
the condition. So a window gets exactly one notification per threshold,
however many Lambdas settle at once, and the next window's item starts
without the marks. The write is tried only by a request that saw the
budget's window near the threshold when it was admitted (its ``usd``, which
counts reservations too, at or above 80%), so requests far from a budget
pay nothing. A settle can never push ``spent`` past the budget (the
reservation held the worst case), so 100% is also sent when a request is
refused ``budget_exceeded``: the budget is spent or held by requests in
flight, and requests are refused until the window ends.

The topic is the stack's (``infra/resources.yaml``, named by
``BUDGET_ALERTS_TOPIC``); its ARN is the topic's name in the function's own
region and account (from STS GetCallerIdentity, once per process, which
needs no permission). Nothing is sent when the setting is empty. A failure to
mark or to send is logged, never the request's failure.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.tenancy.keys import MICROS

log = logging.getLogger(__name__)

THRESHOLDS = (80, 100)


@dataclass(frozen=True)
class Watch:
    """A budget a request counts against: its window's item, whose budget
    (a key's or a tenant's), and what the request saw when it was admitted."""

    pk: str
    whose: str  # "key" | "tenant"
    owner: str  # the key's id or the tenant's name
    budget: str  # "usd_per_day" | "usd_per_month"
    window: str  # the UTC day (YYYY-MM-DD) or month (YYYY-MM)
    budget_micros: int
    seen_micros: int  # the item's usd (spent and reserved) just after admission

    @property
    def near(self) -> bool:
        return self.seen_micros * 100 >= self.budget_micros * THRESHOLDS[0]


def watch_to_json(watch: Watch) -> dict[str, Any]:
    return asdict(watch)


def watch_from_json(data: dict[str, Any]) -> Watch:
    return Watch(**data)


class Notifier(Protocol):
    def publish(self, subject: str, message: str) -> None: ...


class SnsNotifier:
    """Publishes to the stack's topic, named ``topic``, in the client's region
    and the caller's account (clients built lazily by the factories)."""

    def __init__(self, sns: Callable[[], Any], sts: Callable[[], Any], topic: str) -> None:
        self._sns, self._sts, self._topic = sns, sts, topic
        self._arn: str | None = None
        self._lock = threading.Lock()

    def arn(self) -> str:
        with self._lock:
            if self._arn is None:
                client = self._sns()
                account = self._sts().get_caller_identity()["Account"]
                self._arn = f"arn:aws:sns:{client.meta.region_name}:{account}:{self._topic}"
            return self._arn

    def publish(self, subject: str, message: str) -> None:
        self._sns().publish(TopicArn=self.arn(), Subject=subject, Message=message)


def _dollars(micros: int) -> str:
    return format((Decimal(micros) / MICROS).quantize(Decimal("0.000001")), "f")


class BudgetAlerts:
    """Marks and sends the alerts of the budgets a request counted against."""

    def __init__(self, client: Any, table: str, notifier: Notifier, stage: str,
                 clock: Callable[[], float]) -> None:
        self._client, self._table, self._notifier = client, table, notifier
        self._stage, self._clock = stage, clock

    def settled(self, watches: tuple[Watch, ...]) -> None:
        """After a settle: each threshold the settled spend has reached, once."""
        for watch in watches:
            if not watch.near:
                continue
            for threshold in THRESHOLDS:
                self._mark(watch, threshold, spent=True)

    def refused(self, watch: Watch, item: dict[str, Any] | None) -> None:
        """A request refused ``budget_exceeded``: 100%, unless already sent."""
        if item is not None and "alert_100" in item:
            return  # the item as it was says so: no write needed
        self._mark(watch, 100, spent=False)

    def _mark(self, watch: Watch, threshold: int, spent: bool) -> None:
        name = f"alert_{threshold}"
        condition = "attribute_not_exists(#a)"
        values: dict[str, Any] = {":now": {"N": str(int(self._clock()))}}
        if spent:
            condition += " AND spent >= :th"
            values[":th"] = {"N": str(-(-watch.budget_micros * threshold // 100))}
        try:
            item = self._client.update_item(
                TableName=self._table, Key={"pk": {"S": watch.pk}},
                UpdateExpression="SET #a = :now", ConditionExpression=condition,
                ExpressionAttributeNames={"#a": name}, ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW")["Attributes"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                log.error("budget alert: could not mark %s of %s: %s", name, watch.pk, exc)
            return
        except BotoCoreError as exc:
            log.error("budget alert: could not mark %s of %s: %s", name, watch.pk, exc)
            return
        self._send(watch, threshold, int(item.get("spent", {}).get("N", 0)),
                   int(item.get("usd", {}).get("N", 0)))

    def _send(self, watch: Watch, threshold: int, spent: int, held: int) -> None:
        period = "day" if watch.budget == "usd_per_day" else "month"
        subject = (f"LLM endpoint {self._stage}: {watch.whose} {watch.owner} at {threshold}% of "
                   f"its {period} budget")[:100]
        message = json.dumps({
            "kind": "budget_alert", "stage": self._stage, "whose": watch.whose,
            "key_id" if watch.whose == "key" else "tenant": watch.owner,
            "budget": watch.budget, "window": watch.window, "threshold_percent": threshold,
            "budget_usd": _dollars(watch.budget_micros), "spent_usd": _dollars(spent),
            "spent_and_reserved_usd": _dollars(held),
            "meaning": ("requests are refused budget_exceeded until the window ends"
                        if threshold == 100 else "the budget is running out")},
            sort_keys=True)
        try:
            self._notifier.publish(subject, message)
        except (ClientError, BotoCoreError, KeyError) as exc:
            # Marked but not sent: the log says so (and the alarm on errors sees it).
            log.error("budget alert: could not send %s%% of %s: %s", threshold, watch.pk, exc)
        else:
            log.info("budget alert sent: %s", message)
