"""The coordination store's contract, run against both implementations, and what only Redis can show.

The in-process store runs on a hand-moved clock; the Redis one against a real redis-server of its own
(tests/redis_server.py) with short PX time-to-lives, and waits for expiry on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio
from redis.asyncio.connection import SSLConnection

from bot.coordination import (
    CoordinationUnavailable,
    InProcessStore,
    RedisStore,
    Store,
    coordination_from,
    redact_url,
)
from tests.programs import needs_redis_server
from tests.redis_server import RedisServer

WAIT_SECONDS = 10.0  # the most a test waits for something to expire in Redis
TIMEOUT = 1.0  # the Redis stores' operation deadline in these tests


class ManualMonotonic:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Kit:
    """A store under test, and how time passes for it."""

    store: Store
    ttl: float  # a time-to-live short enough to wait for
    clock: ManualMonotonic | None = None  # the in-process store's clock
    server: RedisServer | None = None
    others: list[Store] = field(default_factory=list)

    async def elapse(self, seconds: float) -> None:
        """Let `seconds` pass: the in-process clock moves; Redis's runs by itself (see `eventually`)."""
        if self.clock is not None:
            self.clock.now += seconds

    async def eventually(self, condition: Callable[[], Awaitable[bool]]) -> None:
        """`condition` holds now (in process) or within `WAIT_SECONDS` (Redis)."""
        deadline = time.monotonic() + (WAIT_SECONDS if self.clock is None else 0)
        while not await condition():
            assert time.monotonic() < deadline, "the condition did not come true in time"
            await asyncio.sleep(0.02)

    def replica(self, prefix: str = "test:") -> Store:
        """Another replica's store (Redis only): the same server, its own connections."""
        assert self.server is not None
        store = RedisStore(self.server.url, prefix=prefix, timeout=TIMEOUT)
        self.others.append(store)
        return store


@pytest.fixture(params=["in_process", pytest.param("redis", marks=needs_redis_server())])
async def kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Kit]:
    if request.param == "in_process":
        clock = ManualMonotonic()
        yield Kit(InProcessStore(clock=clock), ttl=30.0, clock=clock)
        return
    with RedisServer(tmp_path / "redis") as server:
        made = Kit(RedisStore(server.url, prefix="test:", timeout=TIMEOUT), ttl=0.3, server=server)
        yield made
        for store in [made.store, *made.others]:
            await store.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as running:
        yield running


async def raw_client(server: RedisServer) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(server.url, decode_responses=True)


def gone(store: Store, key: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await store.get(key) is None

    return check


# -- the contract, both implementations ---------------------------------------------------------------------------


async def test_a_claim_is_won_once_until_it_expires(kit: Kit) -> None:
    store = kit.store
    assert await store.claim("confirm:a", kit.ttl)
    assert not await store.claim("confirm:a", kit.ttl)
    assert await store.claim("confirm:b", kit.ttl)  # another key is another claim
    assert await store.get("confirm:a") == "1"
    await kit.elapse(kit.ttl)
    await kit.eventually(gone(store, "confirm:a"))
    assert await store.claim("confirm:a", kit.ttl, value="again")
    assert await store.get("confirm:a") == "again"


async def test_put_get_release(kit: Kit) -> None:
    store = kit.store
    assert await store.get("job") is None
    await store.put("job", "8a8a-1", kit.ttl)
    assert await store.get("job") == "8a8a-1"
    await store.put("job", "8a8a-2", kit.ttl)  # put overwrites
    assert await store.get("job") == "8a8a-2"
    assert not await store.claim("job", kit.ttl)  # a value is a claim too
    assert await store.release("job")
    assert not await store.release("job")
    assert await store.get("job") is None
    await store.put("short", "x", kit.ttl)
    await kit.elapse(kit.ttl)
    await kit.eventually(gone(store, "short"))


async def test_release_if_deletes_only_the_value_it_names(kit: Kit) -> None:
    store = kit.store
    assert await store.claim("inflight", kit.ttl, value="replica-a")
    assert not await store.release_if("inflight", "replica-b")
    assert await store.get("inflight") == "replica-a"
    assert await store.release_if("inflight", "replica-a")
    assert await store.get("inflight") is None
    assert not await store.release_if("inflight", "replica-a")  # gone: nothing to release


async def test_the_lease_is_taken_renewed_and_taken_over_after_it_lapses(kit: Kit) -> None:
    store = kit.store
    assert await store.holder("watch") is None
    assert await store.acquire_or_renew("watch", "a", kit.ttl)
    assert not await store.acquire_or_renew("watch", "b", kit.ttl)
    assert await store.acquire_or_renew("watch", "a", kit.ttl)  # renewed
    assert await store.holder("watch") == "a"
    # Leases and claims are separate name spaces.
    assert await store.get("watch") is None
    assert await store.claim("watch", kit.ttl)
    # a stops renewing (it died): b takes the lease once it lapses; a's renewal then fails.
    await kit.elapse(kit.ttl)

    async def b_leads() -> bool:
        return await store.acquire_or_renew("watch", "b", kit.ttl)

    await kit.eventually(b_leads)
    assert await store.holder("watch") == "b"
    assert not await store.acquire_or_renew("watch", "a", kit.ttl)
    assert not await store.release_lease("watch", "a")  # not a's to give up
    assert await store.holder("watch") == "b"
    assert await store.release_lease("watch", "b")
    assert await store.holder("watch") is None
    assert await store.acquire_or_renew("watch", "a", kit.ttl)  # released: free at once


async def test_followed_entries_are_listed_until_unfollowed_or_expired(kit: Kit) -> None:
    store = kit.store
    assert await store.followed() == {}
    long = kit.ttl * 1000
    await store.follow("env1/job1", '{"channel": "C1", "ts": "1.0"}', long)
    await store.follow("env1/job2", '{"channel": "C2"}', kit.ttl)
    assert await store.followed() == {
        "env1/job1": '{"channel": "C1", "ts": "1.0"}',
        "env1/job2": '{"channel": "C2"}',
    }
    await store.follow("env1/job1", '{"channel": "C1", "ts": "2.0"}', long)  # replaced and renewed
    assert (await store.followed())["env1/job1"] == '{"channel": "C1", "ts": "2.0"}'
    await kit.elapse(kit.ttl)

    async def only_job1() -> bool:
        return await store.followed() == {"env1/job1": '{"channel": "C1", "ts": "2.0"}'}

    await kit.eventually(only_job1)
    assert not await store.unfollow("env1/job2")  # expired already
    assert await store.unfollow("env1/job1")
    assert not await store.unfollow("env1/job1")
    assert await store.followed() == {}


async def test_following_again_renews_an_entry(kit: Kit) -> None:
    store = kit.store
    await store.follow("job", "r1", kit.ttl)
    await store.follow("job", "r2", kit.ttl * 1000)
    await kit.elapse(kit.ttl * 2)
    assert await store.followed() == {"job": "r2"}


async def test_many_claims_at_once_make_one_winner(kit: Kit) -> None:
    stores = [kit.store, kit.replica()] if kit.server is not None else [kit.store]
    attempts = [stores[i % len(stores)].claim("double-click", 60) for i in range(50)]
    assert sum(await asyncio.gather(*attempts)) == 1
    owners = [stores[i % len(stores)].acquire_or_renew("leader", f"r{i}", 60) for i in range(50)]
    won = await asyncio.gather(*owners)
    assert sum(won) == 1
    assert await kit.store.holder("leader") == f"r{won.index(True)}"


@pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf])
async def test_a_time_to_live_must_be_positive_and_finite(kit: Kit, ttl: float) -> None:
    store = kit.store
    for call in (
        store.claim("k", ttl),
        store.put("k", "v", ttl),
        store.acquire_or_renew("lease", "a", ttl),
        store.follow("f", "r", ttl),
    ):
        with pytest.raises(ValueError, match="time-to-live"):
            await call
    assert await store.get("k") is None
    assert await store.followed() == {}


async def test_ping_and_close(kit: Kit) -> None:
    assert await kit.store.ping()
    await kit.store.check()
    await kit.store.close()


# -- in process: the boundaries, on its clock ----------------------------------------------------------------------


async def test_in_process_entries_expire_exactly_at_their_time() -> None:
    clock = ManualMonotonic()
    store = InProcessStore(clock=clock)
    assert await store.claim("c", 10)
    await store.follow("f", "r", 10)
    assert await store.acquire_or_renew("l", "a", 10)
    clock.now += 9.999
    assert await store.get("c") == "1"
    assert await store.followed() == {"f": "r"}
    assert await store.holder("l") == "a"
    clock.now += 0.001
    assert await store.get("c") is None
    assert await store.followed() == {}
    assert await store.holder("l") is None


async def test_in_process_store_keeps_only_live_entries() -> None:
    """Renewals and expiries leave nothing behind: the store's size follows the live entries."""
    clock = ManualMonotonic()
    store = InProcessStore(clock=clock)
    for round_ in range(2000):
        assert await store.acquire_or_renew("watch", "a", 30)
        await store.follow(f"job{round_}", "r", 5)
        clock.now += 1
    await store.get("anything")
    assert len(store._entries) <= 7
    assert len(store._expiries) <= 2 * len(store._entries) + 64 + 1


async def test_coordination_from_no_url_is_in_process() -> None:
    assert isinstance(coordination_from(None, "x:"), InProcessStore)
    assert isinstance(coordination_from("", "x:"), InProcessStore)
    assert coordination_from(None, "x:").where == "in process"


# -- Redis only ------------------------------------------------------------------------------------------------------

redis_only = needs_redis_server()


@redis_only
async def test_prefixes_keep_two_bots_apart(server: RedisServer) -> None:
    async with (
        RedisStore(server.url, prefix="prod:") as prod,
        RedisStore(server.url, prefix="staging:") as staging,
    ):
        assert await prod.claim("confirm", 60)
        assert await staging.claim("confirm", 60)
        await prod.put("v", "prod", 60)
        assert await staging.get("v") is None
        assert await prod.acquire_or_renew("watch", "p1", 60)
        assert await staging.acquire_or_renew("watch", "s1", 60)
        await prod.follow("job", "prod-record", 60)
        assert await staging.followed() == {}
        assert await prod.followed() == {"job": "prod-record"}
        assert await staging.release("confirm")
        assert not await prod.claim("confirm", 60)


@redis_only
async def test_every_key_is_under_the_prefix_and_expires(server: RedisServer) -> None:
    async with RedisStore(server.url, prefix="sandbox-bot:") as store:
        assert await store.claim("confirm:x", 60)
        await store.put("job:y", "1", 60)
        assert await store.acquire_or_renew("watch", "a", 60)
        assert await store.acquire_or_renew("watch", "a", 60)
        await store.follow("e/j1", "{}", 60)
        await store.follow("e/j2", "{}", 120)
        assert await store.unfollow("e/j1")
        await store.followed()
    client = await raw_client(server)
    try:
        keys = sorted(await client.keys("*"))
        assert keys == [
            "sandbox-bot:followed:expiries",
            "sandbox-bot:followed:records",
            "sandbox-bot:lease:watch",
            "sandbox-bot:value:confirm:x",
            "sandbox-bot:value:job:y",
        ]
        for key in keys:
            assert 0 < await client.pttl(key) <= 120_000, key
    finally:
        await client.aclose()


@redis_only
async def test_an_abandoned_followed_set_disappears_from_redis(server: RedisServer) -> None:
    async with RedisStore(server.url, prefix="p:") as store:
        await store.follow("job", "{}", 0.2)
        client = await raw_client(server)
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while await client.exists("p:followed:expiries", "p:followed:records"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()
        assert await store.followed() == {}


@redis_only
async def test_a_leader_killed_with_sigkill_is_replaced_within_two_intervals(
    server: RedisServer,
) -> None:
    """Another process holds the lease (renewing every third of the interval) and is SIGKILLed: this one,
    trying every third of the interval as every replica does, leads within two intervals of the kill."""
    interval = 1.0
    child = subprocess.Popen(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", LEADER_PROGRAM, server.url, str(interval)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "leading"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    killed = time.monotonic()
    async with RedisStore(server.url, prefix="test:") as store:
        assert await store.holder("watch") == "child"  # a killed holder releases nothing
        while not await store.acquire_or_renew("watch", "me", interval):
            assert time.monotonic() - killed < 2 * interval
            await asyncio.sleep(interval / 3)
        assert time.monotonic() - killed < 2 * interval
        assert await store.holder("watch") == "me"


LEADER_PROGRAM = """
import asyncio, sys
from bot.coordination import RedisStore

async def lead(url, interval):
    store = RedisStore(url, prefix="test:")
    announced = False
    while True:
        if await store.acquire_or_renew("watch", "child", interval) and not announced:
            print("leading", flush=True)
            announced = True
        await asyncio.sleep(interval / 3)

asyncio.run(lead(sys.argv[1], float(sys.argv[2])))
"""


@redis_only
async def test_redis_stopped_every_operation_is_unavailable_and_started_again_all_recovers(
    server: RedisServer,
) -> None:
    async with RedisStore(server.url, prefix="test:", timeout=TIMEOUT) as store:
        assert await store.claim("before", 60)
        assert await store.acquire_or_renew("watch", "a", 60)
        await store.follow("job", "r", 60)
        assert await store.followed() == {"job": "r"}  # every script loaded, connections pooled
        server.stop()
        operations: list[Callable[[], Awaitable[object]]] = [
            lambda: store.claim("c", 60),
            lambda: store.get("c"),
            lambda: store.put("c", "v", 60),
            lambda: store.release("c"),
            lambda: store.release_if("c", "v"),
            lambda: store.acquire_or_renew("watch", "a", 60),
            lambda: store.release_lease("watch", "a"),
            lambda: store.holder("watch"),
            lambda: store.follow("job", "r", 60),
            lambda: store.unfollow("job"),
            lambda: store.followed(),
            lambda: store.check(),
        ]
        for operation in operations:
            started = time.monotonic()
            with pytest.raises(CoordinationUnavailable, match="is unavailable") as raised:
                await operation()
            assert time.monotonic() - started < TIMEOUT + 0.5
            assert raised.value.__cause__ is None
            assert f"redis://127.0.0.1:{server.port}/0" in str(raised.value)
        assert not await store.ping()

        server.start()  # the same port, empty (no persistence)
        # The first call after Redis is back succeeds: the broken pooled connection is replaced.
        assert await store.claim("before", 60)
        assert await store.acquire_or_renew("watch", "b", 60)  # scripts are loaded again
        await store.follow("job", "r2", 60)
        assert await store.followed() == {"job": "r2"}
        assert await store.ping()


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
@redis_only
async def test_a_quick_restart_is_not_noticed(server: RedisServer, kill: bool) -> None:
    """Redis restarts between two calls: every pooled connection is broken, and the next calls reconnect."""
    async with RedisStore(server.url, prefix="test:", timeout=TIMEOUT) as store:
        assert sum(await asyncio.gather(*(store.claim(f"c{i}", 60) for i in range(20)))) == 20
        server.stop(kill=kill)
        server.start()
        assert all(await asyncio.gather(*(store.claim(f"c{i}", 60) for i in range(20))))
        assert await store.acquire_or_renew("watch", "a", 60)


@redis_only
async def test_a_hung_redis_times_out_and_answers_stay_in_order_after(server: RedisServer) -> None:
    async with RedisStore(server.url, prefix="test:", timeout=0.5) as store:
        await store.put("k", "v1", 60)
        server.freeze()
        try:
            for operation in (store.get("k"), store.followed(), store.check()):
                started = time.monotonic()
                with pytest.raises(CoordinationUnavailable, match=r"no answer within 0\.5 s"):
                    await operation
                assert time.monotonic() - started < 0.5 + 0.5
            assert not await store.ping()
        finally:
            server.thaw()
        # A reply that came late is never read as the answer to a later command.
        await store.put("j", "v2", 60)
        assert await store.get("k") == "v1"
        assert await store.get("j") == "v2"
        assert await store.followed() == {}


@redis_only
async def test_a_redis_that_never_started_is_unavailable_then_found(server: RedisServer) -> None:
    server.stop()
    store = coordination_from(server.url, "test:", timeout=TIMEOUT)
    try:
        with pytest.raises(CoordinationUnavailable):
            await store.claim("c", 60)
        server.start()
        assert await store.claim("c", 60)
    finally:
        await store.close()


PASSWORD = "s3cr3t-p@ss:w0rd"
ENCODED = "s3cr3t-p%40ss%3Aw0rd"


@redis_only
async def test_a_password_in_the_url_works_and_is_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with RedisServer(tmp_path / "redis", password=PASSWORD) as server:
        url = f"redis://:{ENCODED}@{server.host}:{server.port}/0"
        texts: list[str] = []
        async with coordination_from(url, "test:", timeout=TIMEOUT) as store:
            assert await store.claim("c", 60)
            assert await store.get("c") == "1"
            texts += [repr(store), str(store), store.where]
            server.stop()
            with pytest.raises(CoordinationUnavailable) as raised:
                await store.claim("d", 60)
            texts += [
                str(raised.value),
                repr(raised.value),
                *traceback.format_exception(raised.value),
            ]
            server.start()
            assert await store.claim("d", 60)

        # A wrong password: unavailable, and neither password is shown.
        wrong = f"redis://:not-{ENCODED}@{server.host}:{server.port}/0"
        async with coordination_from(wrong, "test:", timeout=TIMEOUT) as refused:
            with pytest.raises(CoordinationUnavailable) as raised:
                await refused.claim("c", 60)
            texts += [str(raised.value), repr(refused), *traceback.format_exception(raised.value)]
            assert not await refused.ping()
        # No password at all.
        bare = f"redis://{server.host}:{server.port}/0"
        async with coordination_from(bare, "test:", timeout=TIMEOUT) as anonymous:
            with pytest.raises(CoordinationUnavailable, match="Authentication"):
                await anonymous.get("c")

    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    assert texts
    for text in texts:
        for secret in (PASSWORD, ENCODED, "s3cr3t"):
            assert secret not in text, text
    assert store.where == f"redis://{server.host}:{server.port}/0"


def test_urls_are_checked_without_showing_the_password() -> None:
    for url, problem in [
        (f"http://:{PASSWORD}@host:6379/0", "redis:// or rediss://"),
        (f"unix://:{PASSWORD}@/tmp/redis.sock", "redis:// or rediss://"),
        (f"redis://:{ENCODED}@host:port/0", "port"),
        (f"redis://:{ENCODED}@:6379/0", "no host"),
        (f"redis://:{ENCODED}@host:6379/zero", "database"),
    ]:
        with pytest.raises(ValueError, match=problem) as raised:
            coordination_from(url, "p:")
        for secret in (PASSWORD, ENCODED, "s3cr3t"):
            assert secret not in str(raised.value)
    with pytest.raises(ValueError, match="prefix"):
        coordination_from("redis://host", "")


def test_redacted_urls_keep_where_and_drop_who() -> None:
    assert redact_url(f"redis://user:{ENCODED}@host:6380/2") == "redis://host:6380/2"
    assert redact_url("redis://host") == "redis://host/0"
    assert redact_url(f"rediss://host:6379/0?password={ENCODED}") == "rediss://host:6379/0"
    assert redact_url("redis://[::1]:6379") == "redis://[::1]:6379/0"


async def test_a_rediss_url_makes_a_tls_client_and_connects_to_nothing_yet() -> None:
    store = coordination_from(f"rediss://:{ENCODED}@redis.example.internal:6380/1", "p:")
    assert isinstance(store, RedisStore)
    assert store._client.connection_pool.connection_class is SSLConnection
    assert store.where == "rediss://redis.example.internal:6380/1"
    assert ENCODED not in repr(store) and PASSWORD not in repr(store)
    assert PASSWORD not in repr(store._client)
    await store.close()
