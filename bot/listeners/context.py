"""What the listeners share: the use cases, the notification cards, metrics, and the guard around each reply."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.cards import NotificationCards
from bot.listeners.deliver import OnFollow, Origin, deliver
from bot.metrics import Metrics
from bot.operations import Operations, Reply

log = logging.getLogger(__name__)


@dataclass
class ListenerContext:
    operations: Operations
    metrics: Metrics
    notifier: NotificationCards | None = None
    on_follow: OnFollow | None = None
    # The tasks delivering a reply right now, so that a shutdown can let them finish.
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)

    async def reply(
        self,
        name: str,
        work: Callable[[], Awaitable[Reply]],
        *,
        client: AsyncWebClient,
        respond: AsyncRespond,
        origin: Origin,
    ) -> None:
        """Run one use case after the ack and deliver its reply. Nothing escapes: an unexpected error is
        logged with an incident ID and the user is told, so the bot keeps serving."""
        started = time.perf_counter()
        outcome = "internal_error"
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        try:
            reply = await work()
            outcome = reply.outcome
            await deliver(
                reply,
                client=client,
                respond=respond,
                origin=origin,
                notifier=self.notifier,
                on_follow=self.on_follow,
            )
        except Exception:
            incident = uuid.uuid4().hex[:10]
            log.exception("handling failed", extra={"command": name, "incident": incident})
            try:
                message = blocks.internal_error("complete that request", incident)
                await respond(
                    response_type="ephemeral", replace_original=False, **message.as_kwargs()
                )
            except Exception:
                log.exception(
                    "could not tell the user about the failure", extra={"incident": incident}
                )
        finally:
            if task is not None:
                self.in_flight.discard(task)
            self.metrics.commands.labels(name, outcome).inc()
            self.metrics.handler_seconds.labels(name).observe(time.perf_counter() - started)
