"""What the listeners share: the use cases, where notifications go, metrics, and the guard around each reply."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from slack_bolt.async_app import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.listeners.deliver import OnFollow, deliver
from bot.metrics import Metrics
from bot.operations import Operations, Reply

log = logging.getLogger(__name__)


@dataclass
class ListenerContext:
    operations: Operations
    metrics: Metrics
    notify_channel: str | None
    on_follow: OnFollow | None = None

    async def reply(
        self,
        name: str,
        work: Callable[[], Awaitable[Reply]],
        *,
        client: AsyncWebClient,
        respond: AsyncRespond,
        channel_id: str | None,
        response_url: str | None = None,
        message_ts: str | None = None,
    ) -> None:
        """Run one use case after the ack and deliver its reply. Nothing escapes: an unexpected error is logged
        with an incident ID and the user is told, so the bot keeps serving."""
        started = time.perf_counter()
        outcome = "internal_error"
        try:
            reply = await work()
            outcome = reply.outcome
            await deliver(
                reply,
                client=client,
                respond=respond,
                channel_id=channel_id,
                notify_channel=self.notify_channel,
                response_url=response_url,
                message_ts=message_ts,
                on_follow=self.on_follow,
            )
        except Exception:
            incident = uuid.uuid4().hex[:10]
            log.exception("handling failed", extra={"command": name, "incident": incident})
            try:
                await respond(
                    response_type="ephemeral",
                    replace_original=False,
                    **blocks.internal_error("complete that request", incident).as_kwargs(),
                )
            except Exception:
                log.exception(
                    "could not tell the user about the failure", extra={"incident": incident}
                )
        finally:
            self.metrics.commands.labels(name, outcome).inc()
            self.metrics.handler_seconds.labels(name).observe(time.perf_counter() - started)
