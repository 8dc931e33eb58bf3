"""One leader among the replicas: it runs the watch, the reminders and the pollers that keep cards current.

A lease in the coordination store, taken or renewed every third of its time-to-live (the watch interval): a
leader that dies, even by SIGKILL, is replaced by another replica within about one and a third intervals. A
replica that cannot reach the store stops leading at once (another may already lead). In process (no Redis) the
one replica always leads. After each renewal that leaves this replica leading, `while_leading` runs (the job
cards adopt the jobs other replicas follow).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from bot.coordination import CoordinationUnavailable, Store
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

LEASE = "leader"
MIN_TTL = 1.0  # seconds: a renewal every third of it stays well apart from the store's own timeout


def replica_name() -> str:
    """This replica's name in the lease: host, process, and a nonce (a restarted process is another)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leadership:
    def __init__(
        self,
        store: Store,
        *,
        ttl: float,
        owner: str | None = None,
        while_leading: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._ttl = max(ttl, MIN_TTL)
        self.owner = owner or replica_name()
        self._while_leading = while_leading
        self.leading = False
        self.renewals = 0  # attempts made, for tests waiting on a round
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        """Try once now (so a lone replica leads from its first moment), then keep renewing."""
        await self._attempt()
        self._task = asyncio.create_task(self._run(), name="leadership")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.leading:
            self.leading = False
            with contextlib.suppress(CoordinationUnavailable):  # it expires by itself
                await self._store.release_lease(LEASE, self.owner)

    async def wait_until_leading(self) -> None:
        while not self.leading:
            self._changed.clear()
            await self._changed.wait()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._attempt()
            except Exception:  # never lead on without a renewed lease
                log.exception("leadership renewal failed")
                self.leading = False

    async def _attempt(self) -> None:
        try:
            leads = await self._store.acquire_or_renew(LEASE, self.owner, self._ttl)
        except CoordinationUnavailable as error:
            leads = False
            if self.leading:
                log.warning(
                    "leadership lost: the coordination store is unreachable",
                    extra={"error": str(error)},
                )
        self.renewals += 1
        if leads != self.leading:
            log.info("leader" if leads else "no longer the leader", extra={"replica": self.owner})
        self.leading = leads
        self._changed.set()
        if leads and self._while_leading is not None:
            try:
                await self._while_leading()
            except CoordinationUnavailable:
                log.warning("the followed jobs of other replicas could not be read this time")
            except Exception:
                log.exception("the leader's round failed; trying again at the next renewal")
