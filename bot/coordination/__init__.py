"""Coordination between replicas: single-use claims, values with expiry, a leader lease and the followed jobs.

One interface (`Store`), two implementations, chosen by `coordination_from(url, prefix)`:

- no URL: `InProcessStore`, dicts with expiry in this process: one replica, nothing to run;
- a `redis://` or `rediss://` URL: `RedisStore`, shared by every replica with the same URL and prefix.

    store = coordination_from(settings.redis_url, settings.redis_prefix)
    if not await store.claim(f"confirm:{block_id}", ttl=1200):   # seconds
        ...  # already used: say so
    await store.put(f"confirm:{block_id}", job_id, ttl=1200)      # what the claim started

    if await store.acquire_or_renew("watch", replica_id, ttl=watch_seconds):  # every watch_seconds / 3
        ...  # this replica leads: run the watch round

    await store.close()

Every time-to-live is in seconds. Every operation raises `CoordinationUnavailable` when the store cannot be
reached or does not answer within its timeout: refuse what needs a claim, go on with what only reads.
`ping()` is the health probe (a bool); `where` says where the store is, without a password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.coordination.in_process import InProcessStore
from bot.coordination.redis_url import DEFAULT_PREFIX, DEFAULT_TIMEOUT, check_url, redact_url
from bot.coordination.store import CoordinationUnavailable, Store

if TYPE_CHECKING:
    from bot.coordination.redis_store import RedisStore

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT",
    "CoordinationUnavailable",
    "InProcessStore",
    "RedisStore",
    "Store",
    "check_url",
    "coordination_from",
    "redact_url",
]


def coordination_from(
    url: str | None, prefix: str = DEFAULT_PREFIX, *, timeout: float = DEFAULT_TIMEOUT
) -> Store:
    """The store for `url`: `InProcessStore` when it is None or empty, else `RedisStore(url, prefix, timeout)`.

    ValueError (naming no password) for a URL that is not redis:// or rediss://. Nothing is connected yet:
    the first operation connects, so a bot starts while Redis is down and recovers when it is back."""
    if not url:
        return InProcessStore()
    # The redis package is loaded only by a bot that uses it.
    from bot.coordination.redis_store import RedisStore

    return RedisStore(url, prefix=prefix, timeout=timeout)


def __getattr__(name: str) -> Any:
    """`RedisStore` is loaded when first asked for (it loads the redis package, a tenth of a second)."""
    if name == "RedisStore":
        from bot.coordination.redis_store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
