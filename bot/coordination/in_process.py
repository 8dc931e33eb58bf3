"""The coordination store of one replica: dicts with expiry, in this process (no Redis, nothing to run).

Every operation runs to its end without awaiting, so on one event loop each is atomic, as Redis's are.
Expired entries are dropped as their time passes (a heap of expiry times), so nothing grows without bound.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from bot.coordination.store import Store, checked_ttl

# The name spaces of one store, as the Redis store keeps them apart with key prefixes.
_VALUE = "value"
_LEASE = "lease"
_FOLLOWED = "followed"


class InProcessStore(Store):
    """A `Store` for one replica. `clock` is monotonic seconds (tests pass a hand-moved one)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # (space, key) -> (value, expires at)
        self._entries: dict[tuple[str, str], tuple[str, float]] = {}
        # (expires at, space, key); an entry renewed or deleted since leaves a stale item, skipped when popped.
        self._expiries: list[tuple[float, str, str]] = []

    @property
    def where(self) -> str:
        return "in process"

    def __repr__(self) -> str:
        return f"InProcessStore({len(self._entries)} entries)"

    # -- the one place state changes -----------------------------------------------------------------------------

    def _now(self) -> float:
        """The clock's time, after dropping every entry that has expired by then."""
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            expires, space, key = heapq.heappop(self._expiries)
            entry = self._entries.get((space, key))
            if entry is not None and entry[1] == expires:
                del self._entries[(space, key)]
        # Renewals leave stale heap items behind; rebuild when they outnumber the live entries.
        if len(self._expiries) > 2 * len(self._entries) + 64:
            self._expiries = [(at, s, k) for (s, k), (_v, at) in self._entries.items()]
            heapq.heapify(self._expiries)
        return now

    def _lookup(self, space: str, key: str) -> str | None:
        self._now()
        entry = self._entries.get((space, key))
        return None if entry is None else entry[0]

    def _set(self, space: str, key: str, value: str, ttl: float) -> None:
        expires = self._now() + checked_ttl(ttl)
        self._entries[(space, key)] = (value, expires)
        heapq.heappush(self._expiries, (expires, space, key))

    def _delete(self, space: str, key: str, value: str | None = None) -> bool:
        if self._lookup(space, key) is None:
            return False
        if value is not None and self._entries[(space, key)][0] != value:
            return False
        del self._entries[(space, key)]
        return True

    # -- claims and values ---------------------------------------------------------------------------------------

    async def claim(self, key: str, ttl: float, value: str = "1") -> bool:
        checked_ttl(ttl)
        if self._lookup(_VALUE, key) is not None:
            return False
        self._set(_VALUE, key, value, ttl)
        return True

    async def get(self, key: str) -> str | None:
        return self._lookup(_VALUE, key)

    async def put(self, key: str, value: str, ttl: float) -> None:
        self._set(_VALUE, key, value, ttl)

    async def release(self, key: str) -> bool:
        return self._delete(_VALUE, key)

    async def release_if(self, key: str, value: str) -> bool:
        return self._delete(_VALUE, key, value)

    # -- the leader lease ----------------------------------------------------------------------------------------

    async def acquire_or_renew(self, name: str, owner: str, ttl: float) -> bool:
        checked_ttl(ttl)
        current = self._lookup(_LEASE, name)
        if current is not None and current != owner:
            return False
        self._set(_LEASE, name, owner, ttl)
        return True

    async def release_lease(self, name: str, owner: str) -> bool:
        return self._delete(_LEASE, name, owner)

    async def holder(self, name: str) -> str | None:
        return self._lookup(_LEASE, name)

    # -- followed jobs -------------------------------------------------------------------------------------------

    async def follow(self, key: str, record: str, ttl: float) -> None:
        self._set(_FOLLOWED, key, record, ttl)

    async def unfollow(self, key: str) -> bool:
        return self._delete(_FOLLOWED, key)

    async def followed(self) -> dict[str, str]:
        self._now()
        return {
            key: value for (space, key), (value, _at) in self._entries.items() if space == _FOLLOWED
        }

    # -- health and life -----------------------------------------------------------------------------------------

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None
