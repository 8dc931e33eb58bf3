"""The coordination store of several replicas, in Redis (`redis.asyncio`).

Only Redis's own atomic commands: `SET NX PX` for claims, and Lua scripts (`register_script`, run by EVALSHA
and loaded again by redis-py after a Redis restart) for compare-and-renew and compare-and-delete and for the
followed set. Every key is under the prefix and expires:

- `<prefix>value:<key>`: claims and values, with their PX time-to-live;
- `<prefix>lease:<name>`: a lease, its holder as the value, with its time-to-live;
- `<prefix>followed:expiries` (sorted set: entry -> expiry in Redis's clock, ms) and
  `<prefix>followed:records` (hash: entry -> record): an expired entry is dropped by the next follow, unfollow or
  read; both keys expire with the entry that lives longest, so an abandoned set disappears too.

Times in the followed set come from Redis's `TIME`, not the replicas' clocks, so replicas need not agree on the
time. Each operation has one deadline (`timeout`, seconds) for connecting, sending and answering; past it, or
when Redis cannot be reached, it raises `CoordinationUnavailable`. A command whose pooled connection turns out
broken (Redis restarted since) is sent once more on a new one, so the client recovers by itself when Redis is
back; a timeout is not retried. Every command is safe to send twice: a repeated claim reads as taken (never as
won twice), a repeated renewal or deletion changes nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from bot.coordination.redis_url import (
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT,
    check_url,
    redact_url,
    secrets_of,
)
from bot.coordination.store import CoordinationUnavailable, Store, milliseconds

T = TypeVar("T")

# KEYS[1] the lease; ARGV[1] the owner, ARGV[2] the time-to-live in ms. 1: the owner holds it now.
_ACQUIRE_OR_RENEW = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] the key; ARGV[1] the value it must still hold. 1: it did, and is deleted.
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# The followed set. KEYS[1] the sorted set of expiries (ms, Redis's clock), KEYS[2] the hash of records.
_FOLLOWED_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 1, #expired, 500 do
  redis.call('HDEL', KEYS[2], unpack(expired, i, math.min(i + 499, #expired)))
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
"""

# ARGV[1] the entry, ARGV[2] its record, ARGV[3] its time-to-live in ms.
_FOLLOW = (
    _FOLLOWED_PRELUDE
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local keep = math.max(1, tonumber(last[2]) - now)
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return 1
"""
)

# ARGV[1] the entry. 1: it was followed.
_UNFOLLOW = (
    _FOLLOWED_PRELUDE
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('HDEL', KEYS[2], ARGV[1])
"""
)

# Every entry that has not expired, as a flat list: entry, record, entry, record, ...
_FOLLOWED = (
    _FOLLOWED_PRELUDE
    + """
return redis.call('HGETALL', KEYS[2])
"""
)


def _text(found: bytes | str | None) -> str | None:
    """A value as the client gives it (str: the client decodes answers)."""
    return found.decode() if isinstance(found, bytes) else found


class RedisStore(Store):
    """A `Store` in Redis, shared by every replica that uses the same URL and prefix.

    `url`: `redis://[[user]:password@]host[:port][/db]` or `rediss://...` (TLS). `prefix`: put before every key,
    so that two bots (or a staging and a production one) can share a Redis. `timeout`: seconds, the most one
    operation takes. Connections are made when first needed, not here."""

    def __init__(
        self, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        check_url(url)
        if not prefix:
            raise ValueError("the Redis key prefix must not be empty")
        if not timeout > 0:
            raise ValueError(f"the Redis timeout must be positive, not {timeout!r}")
        self._where = redact_url(url)
        self._secrets = secrets_of(url)
        self._prefix = prefix
        self._timeout = timeout
        self._client = redis.asyncio.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One more try on a fresh connection when the pooled one is broken (Redis restarted, a peer
            # reset); a timeout is not tried again: the operation's deadline is spent.
            retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
            client_name="sandbox-bot",
        )
        self._acquire_or_renew = self._client.register_script(_ACQUIRE_OR_RENEW)
        self._delete_if = self._client.register_script(_DELETE_IF)
        self._follow = self._client.register_script(_FOLLOW)
        self._unfollow = self._client.register_script(_UNFOLLOW)
        self._followed = self._client.register_script(_FOLLOWED)
        self._followed_keys = [f"{prefix}followed:expiries", f"{prefix}followed:records"]

    @property
    def where(self) -> str:
        return self._where

    @property
    def prefix(self) -> str:
        return self._prefix

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self._prefix!r})"

    def _value(self, key: str) -> str:
        return f"{self._prefix}value:{key}"

    def _lease(self, name: str) -> str:
        return f"{self._prefix}lease:{name}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` within the deadline; every failure to reach Redis as `CoordinationUnavailable`."""
        try:
            async with asyncio.timeout(self._timeout):
                return await call()
        except TimeoutError:
            reason = f"no answer within {self._timeout:g} s"
        except (RedisError, OSError) as error:
            reason = f"{type(error).__name__}: {error}"
        # Raised outside the handlers, so the message is the whole story: no chained error, no password.
        raise CoordinationUnavailable(
            self._scrub(f"Redis at {self._where} is unavailable: {reason}")
        )

    async def _script(self, script: Any, keys: list[str], args: list[str | int]) -> Any:
        return await self._run(lambda: script(keys=keys, args=args))

    # -- claims and values ---------------------------------------------------------------------------------------

    async def claim(self, key: str, ttl: float, value: str = "1") -> bool:
        px = milliseconds(ttl)
        return bool(
            await self._run(lambda: self._client.set(self._value(key), value, px=px, nx=True))
        )

    async def get(self, key: str) -> str | None:
        return _text(await self._run(lambda: self._client.get(self._value(key))))

    async def put(self, key: str, value: str, ttl: float) -> None:
        px = milliseconds(ttl)
        await self._run(lambda: self._client.set(self._value(key), value, px=px))

    async def release(self, key: str) -> bool:
        return bool(await self._run(lambda: self._client.delete(self._value(key))))

    async def release_if(self, key: str, value: str) -> bool:
        return bool(await self._script(self._delete_if, [self._value(key)], [value]))

    # -- the leader lease ----------------------------------------------------------------------------------------

    async def acquire_or_renew(self, name: str, owner: str, ttl: float) -> bool:
        px = milliseconds(ttl)
        return bool(await self._script(self._acquire_or_renew, [self._lease(name)], [owner, px]))

    async def release_lease(self, name: str, owner: str) -> bool:
        return bool(await self._script(self._delete_if, [self._lease(name)], [owner]))

    async def holder(self, name: str) -> str | None:
        return _text(await self._run(lambda: self._client.get(self._lease(name))))

    # -- followed jobs -------------------------------------------------------------------------------------------

    async def follow(self, key: str, record: str, ttl: float) -> None:
        px = milliseconds(ttl)
        await self._script(self._follow, self._followed_keys, [key, record, px])

    async def unfollow(self, key: str) -> bool:
        return bool(await self._script(self._unfollow, self._followed_keys, [key]))

    async def followed(self) -> dict[str, str]:
        flat: list[str] = await self._script(self._followed, self._followed_keys, [])
        return dict(zip(flat[::2], flat[1::2], strict=True))

    # -- health and life -----------------------------------------------------------------------------------------

    async def check(self) -> None:
        await self._run(lambda: self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()
