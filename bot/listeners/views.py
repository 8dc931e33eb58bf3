"""The App Home tab and the refresh form: the event, the shortcut, their buttons and the form's submissions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.listeners.context import ListenerContext
from bot.slack_surface import Origin
from bot.view_blocks import (
    ACTION_HOME_RELOAD,
    ACTION_REFRESH_OPEN,
    FORM_CALLBACK,
    SHORTCUT_CALLBACK,
)

log = logging.getLogger(__name__)


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id", ""))


def register(app: AsyncApp, ctx: ListenerContext) -> None:
    home, forms = ctx.home, ctx.forms
    if home is None or forms is None:
        return

    def later(
        name: str, work: Callable[[], Awaitable[None]], *, user_id: str, reads: bool = True
    ) -> None:
        """Run `work` after the ack as a task of its own (a shutdown waits for it); nothing escapes. Cut short
        by a shutdown, it tells the user so in a DM (not for the Home tab opening: nobody asked for anything).
        Work that does not only read (`reads=False`: the form's refresh, its card and records in one piece) is
        cut short only once the shutdown's last seconds are spent too."""

        async def run() -> None:
            started, outcome = time.perf_counter(), "ok"
            try:
                await work()
            except asyncio.CancelledError:
                if ctx.stopping:
                    outcome = "unavailable"
                    if name != "home":
                        await ctx.tell_stopped(name, Origin(None, None, user_id=user_id))
                raise
            except Exception:
                outcome = "internal_error"
                log.exception("handling failed", extra={"command": name})
            finally:
                ctx.metrics.commands.labels(name, outcome).inc()
                ctx.metrics.handler_seconds.labels(name).observe(time.perf_counter() - started)

        task = asyncio.get_running_loop().create_task(run())
        ctx.in_flight.add(task)
        task.add_done_callback(ctx.in_flight.discard)
        if reads:
            ctx.settle_on_stop(task)

    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any]) -> None:
        # The event fires for the Messages tab too, which is not the Home.
        user_id = str(event.get("user", ""))
        if event.get("tab") == "home" and user_id:
            later("home", lambda: home.publish(user_id), user_id=user_id)

    @app.action(ACTION_HOME_RELOAD)
    async def home_reload(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id = _user(body)
        if user_id:
            later("home_reload", lambda: home.publish(user_id, fresh=True), user_id=user_id)

    async def open_form(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id, trigger_id = _user(body), str(body.get("trigger_id", ""))
        from_home = (body.get("view") or {}).get("type") == "home"
        if user_id and trigger_id:
            later(
                "refresh_form_open",
                lambda: forms.open(user_id, trigger_id, from_home=from_home),
                user_id=user_id,
            )

    app.action(ACTION_REFRESH_OPEN)(open_form)
    app.shortcut(SHORTCUT_CALLBACK)(open_form)

    @app.view(FORM_CALLBACK)
    async def form_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        user_id = _user(body)
        started, outcome = time.perf_counter(), "internal_error"
        try:
            answer, after, outcome = await forms.submit(user_id, body.get("view") or {})
            await ack(**answer)
            if after is not None:
                later("refresh_form", after, user_id=user_id, reads=False)
        finally:
            ctx.metrics.commands.labels("refresh_form_submit", outcome).inc()
            ctx.metrics.handler_seconds.labels("refresh_form_submit").observe(
                time.perf_counter() - started
            )
