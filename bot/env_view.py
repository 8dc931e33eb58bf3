"""One view of each environment's jobs, shared by everyone who reads Zuora for it.

The pollers that keep job cards current and the watch (later the App Home and reminders) all ask for an
environment's jobs with the age they can accept; within that age they get the listing already fetched, and
concurrent askers share the one request in flight. So an environment costs one list-jobs call per interval,
however many cards and watchers want it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.zuora.client import ZuoraClient
from bot.zuora.models import Job
from bot.zuora.retry import NO_RETRY
from bot.zuora.trackid import new_track_id


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
        self._in_flight: dict[str, asyncio.Future[Listing]] = {}
        self.requests = 0  # list calls made, for tests and benchmarks

    async def jobs(self, env_id: str, *, max_age: float) -> Listing:
        """The jobs of `env_id` as listed at most `max_age` seconds ago. No retries inside: the caller's next
        round is the retry. Raises the client's `ZuoraError`."""
        latest = self._latest.get(env_id)
        if latest is not None and self._clock() - latest.fetched_at < max_age:
            return latest
        pending = self._in_flight.get(env_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Listing] = asyncio.get_running_loop().create_future()
        self._in_flight[env_id] = future
        try:
            listing = await self._fetch(env_id)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # retrieved here: nobody else may be waiting for it
            raise
        finally:
            del self._in_flight[env_id]
        future.set_result(listing)
        self._latest[env_id] = listing
        return listing

    async def _fetch(self, env_id: str) -> Listing:
        track_id = new_track_id()
        self.requests += 1
        jobs = await self._zuora.list_jobs(env_id, track_id=track_id, retry=NO_RETRY)
        return Listing(env_id, jobs, track_id, self._clock())
