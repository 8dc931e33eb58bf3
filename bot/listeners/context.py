"""What the listeners share: the use cases, the job cards, metrics, the guard around each reply, and the order
of work in the event loop: acks first, then the work after them."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot import blocks
from bot.home import HomeTab
from bot.job_cards import JobCards
from bot.listeners.deliver import deliver
from bot.metrics import Metrics
from bot.operations import Operations
from bot.outcomes import Outcome, metric_of
from bot.refresh_form import RefreshForms
from bot.slack_surface import Origin, SlackSurface

log = logging.getLogger(__name__)


# The longest the work after an ack waits for the acks still to be sent: under a load that never lets up, the
# work still starts (late), instead of never. The cyclic garbage collector waits no longer either.
MAX_DEFERRAL = 0.5
# At a shutdown, how long the requests cut short have to tell their users so (and those delivering an outcome
# to finish it).
CUT_SHORT_SECONDS = 5.0
# The requests (by metric name) that only read: cut short, they changed nothing. Any other may have reached
# Zuora, and its user is told so.
READS = frozenset(
    {
        "help",
        "invalid",
        "envs",
        "jobs",
        "status",
        "button_status",
        "refresh_form_open",
        "refresh_abort",
        "home_reload",
    }
)
# How long no request must have arrived before the work after acks goes on: a burst comes in over many
# connections a few milliseconds apart, more on a busy machine. 20 ms measured better than 5 in two runs of
# bench.compare (ack p99 at 100: 77 against 84 ms and 70 against 80; at 200: 124 against 153 and 122 against
# 129), with delivery unchanged. A lone command's work starts at once and its delivery waits until 20 ms after
# it arrived; under steady traffic of 50 requests a second or more, deliveries wait up to MAX_DEFERRAL.
QUIET_SECONDS = 0.02


class AcksFirst:
    """Acks before the work after them, in one event loop.

    The HTTP server says when a request arrives (`arrived`) and when its ack has been sent (`acked`). The work
    after an ack waits for its `turn` while others are coming in: then pieces of work go one at a time in the
    order they came, each only when no request is waiting for its ack and none has arrived for
    `QUIET_SECONDS`. A burst of commands is acked first and worked on after, instead of every ack waiting
    behind the work of the commands acked before it. Between two pieces the loop reads its sockets, so a
    request that arrives meanwhile is acked before the next piece starts. A piece that has waited
    `MAX_DEFERRAL` starts anyway. A lone request's work goes on at once, and so does all of it where nothing
    arrives through the server (Socket Mode: its acks go over the WebSocket).

    Python's cyclic garbage collector waits too: from a request's arrival until the acks are quiet (at most
    `MAX_DEFERRAL`) it does not run (`gc.disable`; reference counting still frees what it can), so a collection
    of the whole heap never stops a burst's acks for tens of milliseconds; it runs when the burst is acked.
    `close` gives it back."""

    def __init__(
        self,
        *,
        quiet: float = QUIET_SECONDS,
        max_deferral: float = MAX_DEFERRAL,
        clock: Callable[[], float] = time.monotonic,
        pause_collector: bool = True,
    ) -> None:
        self._quiet = quiet
        self._max_deferral = max_deferral
        self._clock = clock
        self._arrivals = 0
        self._last_arrival = -math.inf
        self._unacked = 0
        self._queue: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._pump: asyncio.Task[None] | None = None
        self._pause_collector = pause_collector
        self._collector_paused_at: float | None = None  # when this paused the collector, if it has

    @property
    def arrivals(self) -> int:
        """Requests that have arrived so far."""
        return self._arrivals

    @property
    def unacked(self) -> int:
        """Requests that arrived and whose ack has not been sent yet."""
        return self._unacked

    @property
    def deferred(self) -> int:
        """Pieces of work waiting for their turn."""
        return len(self._queue)

    @property
    def collector_paused(self) -> bool:
        return self._collector_paused_at is not None

    def arrived(self) -> None:
        self._arrivals += 1
        self._last_arrival = self._clock()
        self._unacked += 1
        if self._pause_collector and self._collector_paused_at is None and gc.isenabled():
            gc.disable()
            self._collector_paused_at = self._last_arrival
            asyncio.get_running_loop().call_later(self._quiet, self._check_collector)

    def acked(self) -> None:
        self._unacked = max(0, self._unacked - 1)

    def close(self) -> None:
        """Give the collector back, if this paused it (at shutdown)."""
        if self._collector_paused_at is not None:
            self._collector_paused_at = None
            gc.enable()

    def _check_collector(self) -> None:
        paused_at = self._collector_paused_at
        if paused_at is None:
            return
        now = self._clock()
        if not self._hold(now) or now - paused_at >= self._max_deferral:
            self.close()
        else:
            asyncio.get_running_loop().call_later(self._quiet, self._check_collector)

    def _hold(self, now: float) -> float:
        """How long the next piece of work should still wait (0: it may start)."""
        if self._unacked:
            return self._quiet
        return max(0.0, self._last_arrival + self._quiet - now)

    async def turn(self, *, since: int | None = None) -> None:
        """Return when the work after an ack may start, or go on (an outcome waits for a turn again before it
        is delivered). `since`: `arrivals` when the caller's own request was acked (it may still be waiting for
        its ack to be sent); if no other request has arrived since and none is waiting for its turn or its ack,
        the work goes on at once."""
        quiet = (
            self._arrivals == since and self._unacked <= 1
            if since is not None
            else not self._hold(self._clock())
        )
        if quiet and not self._queue:
            return
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._queue.append((self._clock(), ready))
        if self._pump is None or self._pump.done():
            self._pump = loop.create_task(self._release())
        await ready

    async def _release(self) -> None:
        while self._queue:
            queued_at, ready = self._queue[0]
            now = self._clock()
            hold = min(self._hold(now), queued_at + self._max_deferral - now)
            if hold > 0:
                await asyncio.sleep(hold)
                continue
            self._queue.popleft()
            if ready.done():  # given up on: its task was cancelled (a shutdown)
                continue
            ready.set_result(None)
            # Two passes of the loop: the piece runs to its first wait (a Zuora call in flight, a turn in
            # the pool), and a request read from a socket meanwhile reaches the server and is counted.
            await asyncio.sleep(0)
            await asyncio.sleep(0)


@dataclass
class ListenerContext:
    operations: Operations
    cards: JobCards
    slack: SlackSurface
    metrics: Metrics
    acks: AcksFirst = field(default_factory=AcksFirst)
    home: HomeTab | None = None
    forms: RefreshForms | None = None
    # The tasks delivering a reply right now, so that a shutdown can let them finish.
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)
    # Of those, the ones whose outcome is not known yet (waiting for Zuora, say): the only ones a shutdown may
    # cut short. One that has its outcome is delivering it (cards, records), and is never interrupted.
    unsettled: set[asyncio.Task[Any]] = field(default_factory=set)
    # Set by `cut_short`: a request cancelled from now on tells its user that the bot stopped.
    stopping: bool = False

    async def cut_short(self, within: float = CUT_SHORT_SECONDS) -> int:
        """At a shutdown, once the requests in progress have had their time: cancel the ones still without an
        outcome, each telling its user that the bot stopped before it finished; give every request `within`
        seconds more (those delivering an outcome finish it); then cancel what is left, so that nothing runs on
        against closed clients. The Slack client must still be open. Returns how many were cut short."""
        waiting = set(self.unsettled)
        if not self.in_flight:
            return 0
        self.stopping = True
        for task in waiting:
            task.cancel()
        left = set(self.in_flight)
        _, pending = await asyncio.wait(left, timeout=within)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=within)
        return len(waiting | pending)

    def settle_on_stop(self, task: asyncio.Task[Any] | None) -> None:
        """`task` has no outcome yet: a shutdown may cut it short (see `unsettled`)."""
        if task is not None:
            self.unsettled.add(task)
            task.add_done_callback(self.unsettled.discard)

    def settled(self, task: asyncio.Task[Any] | None) -> None:
        """`task` has its outcome and is delivering it: a shutdown lets it finish."""
        if task is not None:
            self.unsettled.discard(task)

    async def reply(
        self,
        name: str,
        work: Callable[[], Awaitable[Outcome]],
        *,
        origin: Origin,
    ) -> None:
        """Run one use case after the ack and deliver its outcome, each when its turn comes (`AcksFirst`).
        Nothing escapes: an unexpected error is logged with an incident ID and the user is told, so the bot
        keeps serving."""
        since = self.acks.arrivals
        started = time.perf_counter()
        metric = "internal_error"
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        self.settle_on_stop(task)
        outcome: Outcome | None = None
        try:
            await self.acks.turn(since=since)
            outcome = await work()
            self.settled(task)
            metric = metric_of(outcome)
            await self.acks.turn()
            await deliver(
                outcome,
                origin=origin,
                slack=self.slack,
                cards=self.cards,
                forms=self.forms,
                home=self.home,
            )
        except asyncio.CancelledError:
            if self.stopping and outcome is None:
                metric = "unavailable"
                await self.tell_stopped(name, origin)
            raise
        except Exception:
            incident = uuid.uuid4().hex[:10]
            log.exception("handling failed", extra={"command": name, "incident": incident})
            try:
                await self.slack.reply(
                    origin, blocks.internal_error("complete that request", incident)
                )
            except Exception:
                log.exception(
                    "could not tell the user about the failure", extra={"incident": incident}
                )
        finally:
            if task is not None:
                self.in_flight.discard(task)
            self.metrics.commands.labels(name, metric).inc()
            self.metrics.handler_seconds.labels(name).observe(time.perf_counter() - started)

    async def tell_stopped(self, name: str, origin: Origin) -> None:
        """Tell the user of a request cut short by a shutdown: whether it may have changed anything depends on
        what it was (`READS` change nothing; anything else may have reached Zuora)."""
        log.warning("request cut short by a shutdown", extra={"command": name})
        try:
            await self.slack.reply(origin, blocks.stopped_before_done(changes=name not in READS))
        except Exception:
            log.exception("could not tell the user that the bot stopped")
