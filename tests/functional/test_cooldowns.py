"""Cooldowns shared through DynamoDB (moto's server): the threshold, the
steps, Retry-After, one opening among racing processes, the per-process
cache, and an unreadable table taken as healthy."""
from __future__ import annotations

import threading
import uuid
from typing import Any

import botocore.session
from botocore.config import Config

from chalicelib.config import Settings
from chalicelib.resilience.cooldowns import Cooldowns

USAGE = Settings().usage_table


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(dynamodb: Any, clock: Clock, opened: list[tuple[str, int]] | None = None,
         **options: Any) -> Cooldowns:
    return Cooldowns(dynamodb, USAGE, clock,
                     opened=(lambda k, s: opened.append((k, s))) if opened is not None else None,
                     **options)


def link() -> str:
    return f"us.test.model-{uuid.uuid4().hex[:8]}@us-west-2"


def item(dynamodb: Any, name: str) -> dict[str, Any]:
    return dynamodb.get_item(TableName=USAGE, Key={"pk": {"S": f"cooldown#{name}"}},
                             ConsistentRead=True).get("Item", {})


def test_the_threshold_opens_a_cooldown_with_a_ttl(dynamodb: Any) -> None:
    clock, opened, name = Clock(), [], link()
    cooldowns = make(dynamodb, clock, opened)
    for _ in range(2):
        cooldowns.failed(name)
    assert cooldowns.cooling([name]) == set() and opened == []
    cooldowns.failed(name)
    assert opened == [(name, 30)]
    assert cooldowns.cooling([name, "other"]) == {name}
    stored = item(dynamodb, name)
    assert float(stored["until"]["N"]) == clock.now + 30
    # The item goes by itself (TTL) ten minutes after the cooldown ends.
    assert int(stored["expires_at"]["N"]) == int(clock.now) + 30 + 600
    clock.now += 31
    assert cooldowns.cooling([name]) == set()


def test_failures_spread_over_windows_do_not_open_one(dynamodb: Any) -> None:
    clock, opened, name = Clock(), [], link()
    cooldowns = make(dynamodb, clock, opened)
    for _ in range(6):
        cooldowns.failed(name)
        clock.now += 40  # two in any two adjacent 30 s windows, at most
    assert opened == []


def test_a_burst_across_a_window_boundary_counts_whole(dynamodb: Any) -> None:
    clock, opened, name = Clock(1_800_000_000.0 + 28), [], link()
    cooldowns = make(dynamodb, clock, opened)
    for _ in range(3):  # at 28 s, 30 s and 32 s: two windows
        cooldowns.failed(name)
        clock.now += 2
    assert opened == [(name, 30)]


def test_the_steps_start_over_once_the_item_has_expired(dynamodb: Any) -> None:
    # DynamoDB deletes expired items lazily: one past its TTL still reads.
    clock, opened, name = Clock(), [], link()
    cooldowns = make(dynamodb, clock, opened, threshold=1)
    cooldowns.failed(name)
    clock.now += 400
    cooldowns.failed(name)
    clock.now += 60 + 600 + 1  # past the second cooldown and its item's TTL
    cooldowns.failed(name)
    assert [s for _, s in opened] == [30, 60, 30]


def test_steps_grow_and_retry_after_wins_when_longer(dynamodb: Any) -> None:
    clock, opened, name = Clock(), [], link()
    cooldowns = make(dynamodb, clock, opened, threshold=1, steps_s=(30, 60, 300))
    for _ in range(4):
        cooldowns.failed(name)
        clock.now += 400
    assert [s for _, s in opened] == [30, 60, 300, 300]
    other = link()
    cooldowns.failed(other, retry_after=90)
    assert opened[-1] == (other, 90)


def test_failures_while_open_do_not_step_or_reopen(dynamodb: Any) -> None:
    clock, opened, name = Clock(), [], link()
    cooldowns = make(dynamodb, clock, opened, threshold=1)
    for _ in range(5):
        cooldowns.failed(name)
        clock.now += 1
    assert opened == [(name, 30)]


def test_racing_processes_open_one_cooldown(dynamodb: Any) -> None:
    clock, opened, name = Clock(), [], link()
    # Eight "Lambdas", each its own Cooldowns (own cache), one table.
    processes = [make(dynamodb, clock, opened) for _ in range(8)]
    barrier = threading.Barrier(len(processes))

    def fail(cooldowns: Cooldowns) -> None:
        barrier.wait()
        cooldowns.failed(name)
    threads = [threading.Thread(target=fail, args=(p,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened == [(name, 30)]
    assert int(item(dynamodb, name)["level"]["N"]) == 1


def test_other_processes_see_it_within_the_cache_time(dynamodb: Any) -> None:
    clock, name = Clock(), link()
    opener, reader = make(dynamodb, clock, threshold=1), make(dynamodb, clock)
    assert reader.cooling([name]) == set()  # read once: healthy, cached
    opener.failed(name)
    clock.now += 1.0
    assert reader.cooling([name]) == set()  # its cache is 2 s old at most
    clock.now += 1.5
    assert reader.cooling([name]) == {name}


class Counting:
    """A DynamoDB client that counts the calls it passes on."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.client, name)


def test_a_healthy_request_reads_at_most_once_per_cache_time(dynamodb: Any) -> None:
    clock, counting = Clock(), Counting(dynamodb)
    cooldowns = make(counting, clock)
    links = [link(), link(), link()]
    for _ in range(50):
        cooldowns.cooling(links)
        clock.now += 0.01
    assert counting.calls == ["batch_get_item"]
    clock.now += 2
    cooldowns.cooling(links)
    assert counting.calls == ["batch_get_item"] * 2


def test_an_unreadable_table_means_healthy_and_failures_are_dropped() -> None:
    broken = botocore.session.get_session().create_client(
        "dynamodb", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.2))
    clock, opened = Clock(), []
    cooldowns = make(broken, clock, opened, threshold=1)
    cooldowns.failed("m")
    assert opened == [] and cooldowns.cooling(["m"]) == set()
