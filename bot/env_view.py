"""One view of each environment's jobs, shared by everyone who reads Zuora for it.

The pollers that keep job cards current and the watch (later the App Home and reminders) all ask for an
environment's jobs with the age they can accept; within that age they get the listing already fetched, and
concurrent askers share the one request in flight. So an environment costs one list-jobs call per interval,
however many cards and watchers want it. The environments themselves (their names, for reminders) are one
list call shared the same way (`environments`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.zuora.client import ZuoraClient
from bot.zuora.retry import NO_RETRY
from bot.zuora.trackid import new_track_id

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import Job, TestEnvironment


@dataclass(frozen=True, slots=True)
class Listing:
    env_id: str
    jobs: Sequence[Job]
    track_id: str
    fetched_at: float  # on the view's clock

    def job(self, job_id: str) -> Job | None:
        return next((job for job in self.jobs if job.id == job_id), None)


class EnvironmentView:
    def __init__(self, zuora: ZuoraClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._zuora = zuora
        self._clock = clock
        self._latest: dict[str, Listing] = {}
        self._in_flight: dict[str, asyncio.Task[Listing]] = {}
        self._asked: dict[str, float] = {}  # when the read under way was asked for
        # The environments as last listed: (when, on the view's clock; the list).
        self._environments: tuple[float, Sequence[TestEnvironment]] | None = None
        self._environments_lock = asyncio.Lock()
        self.requests = 0  # list calls made, for tests and benchmarks

    async def jobs(
        self, env_id: str, *, max_age: float, asked_after: float | None = None
    ) -> Listing:
        """The jobs of `env_id` as listed at most `max_age` seconds ago, and not asked for before
        `asked_after` (on the view's clock: a reader that must see a job it learnt of at that moment). No
        retries inside: the caller's next round is the retry. Raises the client's `ZuoraError`."""
        latest = self._latest.get(env_id)
        if (
            latest is not None
            and self._clock() - latest.fetched_at < max_age
            and (asked_after is None or latest.fetched_at >= asked_after)
        ):
            return latest
        task = self._in_flight.get(env_id)
        if (
            task is not None
            and asked_after is not None
            and self._asked.get(env_id, 0.0) < asked_after
        ):
            task = None  # the read under way was asked for too early for this reader
        if task is None:
            # Its own task: a reader that is cancelled (a poller stopping) cancels nobody else's read.
            task = asyncio.create_task(self._fetch(env_id), name=f"env-view:{env_id}")
            self._in_flight[env_id] = task
            self._asked[env_id] = self._clock()
            task.add_done_callback(lambda done: self._done(env_id, done))
        return await asyncio.shield(task)

    def _done(self, env_id: str, task: asyncio.Task[Listing]) -> None:
        if self._in_flight.get(env_id) is task:
            del self._in_flight[env_id]
        if not task.cancelled() and task.exception() is None:
            listing = task.result()
            latest = self._latest.get(env_id)
            if latest is None or latest.fetched_at <= listing.fetched_at:
                self._latest[env_id] = listing

    async def environments(self, *, max_age: float) -> Sequence[TestEnvironment]:
        """Every test environment as listed at most `max_age` seconds ago; concurrent askers wait for the
        one read under way. No retries inside. Raises the client's `ZuoraError`."""
        async with self._environments_lock:
            if self._environments is not None and self._clock() - self._environments[0] < max_age:
                return self._environments[1]
            started = self._clock()
            found = await self._zuora.list_test_environments(
                track_id=new_track_id(), retry=NO_RETRY
            )
            self._environments = (started, found)
            return found

    def environments_seen(self) -> Sequence[TestEnvironment]:
        """The environments as last listed, without reading Zuora (empty before the first list): what a
        form that must open at once can offer."""
        return self._environments[1] if self._environments is not None else ()

    async def job(self, env_id: str, job_id: str) -> Job:
        """One job, asked alone (a followed job the listing did not show). Raises `ZuoraError`."""
        self.requests += 1
        return await self._zuora.get_job(env_id, job_id, track_id=new_track_id())

    async def _fetch(self, env_id: str) -> Listing:
        track_id = new_track_id()
        self.requests += 1
        started = self._clock()  # the listing is as old as the moment it was asked for
        jobs = await self._zuora.list_jobs(env_id, track_id=track_id, retry=NO_RETRY)
        return Listing(env_id, jobs, track_id, started)
