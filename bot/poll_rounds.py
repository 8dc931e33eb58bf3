"""Rounds of polling for many keys, run by one task.

The job cards poll each environment that has a followed job. A sleeping task per environment costs about
1.5 KB (the task, its coroutine frames, its timer); a thousand followed jobs on a thousand environments held
2 MB that way. Here a key waiting for its next round is an entry of a few dozen bytes, and one task sleeps until
the nearest is due; a round runs in a task of its own only while it runs, so a slow environment never holds up
the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# What a round returns: the pause before the next one, and whether that pause may end early (`wake`); or None
# when the key needs no more rounds.
Next = tuple[float, bool] | None


@dataclass(slots=True)
class _Due:
    pause: float
    wakeable: bool
    since: float | None = None  # the clock when the pause began: when the ticker first saw it

    @property
    def at(self) -> float:
        return (0.0 if self.since is None else self.since) + self.pause


class PollRounds:
    def __init__(
        self,
        run_round: Callable[[str], Awaitable[Next]],
        *,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        name: str,
    ) -> None:
        """`sleep` and `clock` are the caller's (a test's fake clock moves by the pauses asked for)."""
        self._run_round = run_round
        self._sleep = sleep
        self._clock = clock
        self._name = name
        self._due: dict[str, _Due] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._ticker: asyncio.Task[None] | None = None
        # When the ticker's current pause ends; None: it waits for a poke.
        self._target: float | None = None
        self._poked = asyncio.Event()
        self._closed = False

    def __contains__(self, key: str) -> bool:
        """Whether `key` has a round pending or running."""
        return key in self._due or key in self._running

    def schedule(self, key: str, pause: float, *, wakeable: bool = False) -> None:
        """A round for `key` after `pause` seconds, unless one is pending or running already."""
        if key in self:
            return
        self._put(key, _Due(pause, wakeable))

    def wake(self, key: str) -> None:
        """End a wakeable pause of `key` now: its round runs at once."""
        due = self._due.get(key)
        if due is not None and due.wakeable:
            self._put(key, _Due(0.0, False))

    async def close(self) -> None:
        """Stop the ticker and every running round; nothing more is polled (a round that ends meanwhile
        schedules nothing)."""
        self._closed = True
        tasks = [t for t in (self._ticker, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            await cancel_and_wait(task)
        self._ticker = None
        self._due.clear()
        self._running.clear()

    def _put(self, key: str, due: _Due) -> None:
        """A pause begins: now, or when the ticker next looks (at once, unless it is in a pause of its own:
        so that a pause is what was asked, to the digit, on a clock that moves only by the pauses)."""
        if self._closed:
            return
        self._due[key] = due
        if self._ticker is None or self._ticker.done():
            self._target = None
            self._ticker = asyncio.create_task(self._tick(), name=self._name)
        elif self._target is None:
            self._poked.set()  # the ticker waits for a round to end
        else:
            due.since = self._clock()
            if due.at < self._target:
                self._poked.set()  # the ticker sleeps past this one

    async def _tick(self) -> None:
        slept_to: float | None = None
        while self._due or self._running:
            now = self._clock()
            for due in self._due.values():
                if due.since is None:
                    due.since = now
            # A pause that ran its course counts as over, even if the clock reads a hair earlier.
            reached = now if slept_to is None else max(now, slept_to)
            for key in [k for k, due in self._due.items() if due.at <= reached]:
                del self._due[key]
                self._running[key] = asyncio.create_task(
                    self._one_round(key), name=f"{self._name}:{key}"
                )
            slept_to = None
            if not self._due:
                self._target = None
                await self._poked.wait()
                self._poked.clear()
                continue
            nearest = min(self._due.values(), key=lambda due: due.at)
            self._target = nearest.at
            # The pause as asked when no time has passed since (exact, for fake clocks), else what is left.
            left = nearest.pause if nearest.since in (None, now) else nearest.at - now
            if await self._pause(max(0.0, left)):
                slept_to = nearest.at
        self._target = None

    async def _pause(self, seconds: float) -> bool:
        """Sleep `seconds`, or less when poked; True when the whole pause passed."""
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        poked = asyncio.ensure_future(self._poked.wait())
        try:
            await asyncio.wait({sleeping, poked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeping, poked):
                task.cancel()
            self._poked.clear()
        return sleeping.done() and not sleeping.cancelled()

    async def _one_round(self, key: str) -> None:
        result: Next = None
        try:
            result = await self._run_round(key)
        except Exception:
            log.exception("a polling round failed", extra={"key": key})
        finally:
            # No await between the round's end and this: a key scheduled meanwhile found it running, and
            # finds the next round here.
            self._running.pop(key, None)
        if result is not None:
            pause, wakeable = result
            self._put(key, _Due(pause, wakeable))
        elif self._target is None:
            self._poked.set()  # the ticker may have nothing left to wait for
