"""What the listeners share: the use cases, the job cards, metrics, and the guard around each reply."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
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


@dataclass
class ListenerContext:
    operations: Operations
    cards: JobCards
    slack: SlackSurface
    metrics: Metrics
    home: HomeTab | None = None
    forms: RefreshForms | None = None
    # The tasks delivering a reply right now, so that a shutdown can let them finish.
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)

    async def reply(
        self,
        name: str,
        work: Callable[[], Awaitable[Outcome]],
        *,
        origin: Origin,
    ) -> None:
        """Run one use case after the ack and deliver its outcome. Nothing escapes: an unexpected error is
        logged with an incident ID and the user is told, so the bot keeps serving."""
        started = time.perf_counter()
        metric = "internal_error"
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        try:
            outcome = await work()
            metric = metric_of(outcome)
            await deliver(
                outcome,
                origin=origin,
                slack=self.slack,
                cards=self.cards,
                forms=self.forms,
                home=self.home,
            )
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
