"""The coordination store's interface: what every replica shares, and the one error of an unreachable store.

Every time-to-live is in **seconds** (a float), counted from the call; a key past its time-to-live is gone for
every caller. Keys and values are strings. Every operation is a coroutine and may raise
`CoordinationUnavailable`; nothing else reaches the caller for a store that cannot be reached.
"""

from __future__ import annotations

import abc
import math
from types import TracebackType
from typing import Self


class CoordinationUnavailable(Exception):
    """The store could not be reached or did not answer in time: the operation may or may not have happened.

    A caller that needs a claim refuses its action ("never done twice, never done blindly"); one that only
    reads goes on without the shared state. The message names where the store is, never a password."""


class Store(abc.ABC):
    """State shared by the bot's replicas: single-use claims, values with expiry, a leader lease, followed jobs.

    `InProcessStore` keeps it in this process (one replica); `RedisStore` in Redis (any number of replicas).
    Make one with `coordination_from(url, prefix)` and `close()` it at the end (or use `async with`).
    """

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Where the state lives, safe to show in /healthz and logs (a Redis URL without its password)."""

    # -- single-use claims and values ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def claim(self, key: str, ttl: float, value: str = "1") -> bool:
        """Set `key` to `value` for `ttl` seconds only if it is not set: True for the one caller that set it.

        The claim of a refresh confirmation, a form submission, an in-flight action, a handled Slack request.
        An answer lost on the way back may make a successful claim read as False (taken); never True twice."""

    @abc.abstractmethod
    async def get(self, key: str) -> str | None:
        """The value of `key`, or None when it is not set (never set, released or expired)."""

    @abc.abstractmethod
    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set `key` to `value` for `ttl` seconds, whether or not it was set (e.g. the job a claim started)."""

    @abc.abstractmethod
    async def release(self, key: str) -> bool:
        """Delete `key`: True if it was set."""

    @abc.abstractmethod
    async def release_if(self, key: str, value: str) -> bool:
        """Delete `key` only if it still holds `value` (atomically): True if it did and was deleted.

        Gives a claim back (say, the user was refused) without deleting a newer claim of someone else."""

    # -- the leader lease ----------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def acquire_or_renew(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lease `name` for `owner` if nobody holds it, or renew it for `ttl` seconds if `owner` does.

        True: `owner` leads for the next `ttl` seconds. False: someone else does; `owner` must stop leading.
        On `CoordinationUnavailable` the caller cannot know, and should stop leading too.

        Timing: with every replica calling this every `ttl / 3` seconds, a holder that dies without releasing
        (SIGKILL) is replaced at most `ttl + ttl / 3` seconds after its last renewal, and a holder whose renewal
        is late by up to two thirds of `ttl` keeps the lease. For a takeover within two watch intervals, use
        `ttl` = the watch interval and renew every third of it. Leases and claims are separate name spaces."""

    @abc.abstractmethod
    async def release_lease(self, name: str, owner: str) -> bool:
        """Give the lease up if `owner` holds it (at shutdown): True if it did. Another holder's is untouched."""

    @abc.abstractmethod
    async def holder(self, name: str) -> str | None:
        """Who holds the lease `name` now, or None."""

    # -- followed jobs -------------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def follow(self, key: str, record: str, ttl: float) -> None:
        """Add (or replace) the followed entry `key` with `record` (usually JSON) for `ttl` seconds.

        Any replica sees it in `followed()` until it is unfollowed or its time-to-live ends; following it
        again renews it."""

    @abc.abstractmethod
    async def unfollow(self, key: str) -> bool:
        """Remove the followed entry `key`: True if it was there."""

    @abc.abstractmethod
    async def followed(self) -> dict[str, str]:
        """Every followed entry that has not expired, `key -> record`, in no particular order (expired ones are
        dropped on the way)."""

    # -- health and life -----------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def check(self) -> None:
        """Ask the store whether it answers now: returns if it does, else `CoordinationUnavailable` (the reason)."""

    async def ping(self) -> bool:
        """`check()` as a bool, for a health probe: never raises `CoordinationUnavailable`."""
        try:
            await self.check()
        except CoordinationUnavailable:
            return False
        return True

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connections (the shared state stays for the other replicas). Safe to call twice."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def checked_ttl(ttl: float) -> float:
    """`ttl` if it is a usable time-to-live (finite, above zero), else ValueError."""
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"a time-to-live must be a positive number of seconds, not {ttl!r}")
    return float(ttl)


def milliseconds(ttl: float) -> int:
    """A time-to-live in seconds as whole milliseconds (rounded up, at least 1), as Redis's PX wants it."""
    return max(1, math.ceil(checked_ttl(ttl) * 1000))
