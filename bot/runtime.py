"""The running bot: owns the HTTP clients, the Bolt app, the web server and the Socket Mode connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import httpx
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.app import build_app, build_slack_client
from bot.cards import NotificationCards
from bot.commands import EnvRef
from bot.config import Settings
from bot.listeners.context import ListenerContext
from bot.listeners.deliver import Posted
from bot.live import LiveCards, Placement
from bot.metrics import CONTENT_TYPE, Metrics
from bot.operations import Follow, Operations
from bot.permissions import Permissions
from bot.watch import JobWatch
from bot.zuora.auth import OAuthClientCredentials
from bot.zuora.client import ZuoraClient
from bot.zuora.models import Job

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# Zuora allows 40 concurrent requests per tenant by default; leave room for others.
ZUORA_MAX_CONNECTIONS = 20
DRAIN_SLACK_SECONDS = 15.0  # time a finished Zuora call may need to reach Slack at shutdown


def zuora_http_client(settings: Settings) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        settings.zuora_timeout_seconds, connect=min(10.0, settings.zuora_timeout_seconds)
    )
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=ZUORA_MAX_CONNECTIONS, max_keepalive_connections=ZUORA_MAX_CONNECTIONS
        ),
        follow_redirects=False,
    )


def secrets_of(settings: Settings) -> Iterable[str]:
    """Every secret value in the settings, for the log redactor."""
    for value in (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.zuora_client_secret,
        settings.zuora_client_id,
    ):
        if value is not None:
            yield value.get_secret_value()


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "0.0.0.0",  # noqa: S104 (a server's default)
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`now`: the time of day, for rules about times (a refresh must be in the future, confirmations
        expire); tests give the Zuora simulator's clock."""
        self.settings = settings
        self.host = host
        self._now = now
        self.metrics = Metrics()
        self.ready = False
        self.port: int | None = None
        self._http: httpx.AsyncClient | None = None
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self.app: AsyncApp | None = None
        self.zuora: ZuoraClient | None = None
        self.live: LiveCards | None = None
        self.notifier: NotificationCards | None = None
        self.operations: Operations | None = None
        self._ctx: ListenerContext | None = None
        self.watch: JobWatch | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        assert settings.slack_bot_token is not None, "validated by load_settings"
        if not settings.socket_mode and settings.slack_signing_secret is None:
            # Never serve /slack/events unverified, however the settings were built.
            raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET")
        self._http = zuora_http_client(settings)
        auth = OAuthClientCredentials(
            http=self._http,
            base_url=settings.zuora_base_url,
            client_id=settings.zuora_client_id.get_secret_value(),
            client_secret=settings.zuora_client_secret,
            entity_id=settings.zuora_entity_id,
        )
        self.zuora = ZuoraClient(
            base_url=settings.zuora_base_url,
            auth=auth,
            http=self._http,
            entity_id=settings.zuora_entity_id,
            gzip_requests=settings.zuora_gzip_requests,
            observer=self.metrics.observe_zuora,
        )
        slack = build_slack_client(
            settings.slack_bot_token.get_secret_value(), settings.slack_api_url
        )

        async def members(group: str) -> list[str]:
            response = await slack.usergroups_users_list(usergroup=group, include_disabled=False)
            return [str(user) for user in response.get("users") or []]

        permissions = Permissions(
            users=settings.sandbox_allowed_users,
            usergroups=settings.sandbox_allowed_usergroups,
            lookup=members,
        )
        operations = Operations(
            zuora=self.zuora, permissions=permissions, aliases=settings.aliases, now=self._now
        )
        self.operations = operations
        if settings.sandbox_notify_channel:
            self.notifier = NotificationCards(
                slack=slack, channel=settings.sandbox_notify_channel, aliases=settings.aliases
            )
        self.live = LiveCards(
            zuora=self.zuora,
            slack=slack,
            poll_seconds=settings.sandbox_poll_seconds,
            on_job=self._job_seen,
            now=self._now,
        )
        ctx = ListenerContext(
            operations=operations,
            metrics=self.metrics,
            notifier=self.notifier,
            on_follow=self._follow,
        )
        self._ctx = ctx
        signing = (
            settings.slack_signing_secret.get_secret_value()
            if settings.slack_signing_secret
            else None
        )
        self.app = build_app(
            client=slack, signing_secret=None if settings.socket_mode else signing, ctx=ctx
        )

        if settings.sandbox_watch_environments and self.notifier is not None:
            self.watch = JobWatch(
                zuora=self.zuora,
                cards=self.notifier,
                targets=settings.sandbox_watch_environments,
                aliases=dict(settings.aliases),
                interval=settings.sandbox_watch_seconds,
            )
        await self._serve()
        if settings.socket_mode:
            assert settings.slack_app_token is not None
            self._socket = AsyncSocketModeHandler(
                self.app, settings.slack_app_token.get_secret_value()
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        if self.watch is not None:
            self.watch.start()
        self.ready = True
        log.info(
            "sandbox-bot ready",
            extra={"mode": "socket" if settings.socket_mode else "http", "port": self.port},
        )

    async def _follow(self, follow: Follow, card: Posted | None) -> None:
        """Keep a job's cards current: the card in the channel, if any, and its notification card."""
        if self.live is None or not follow.job.id or follow.job.is_terminal:
            return
        placement = None
        if card is not None:
            placement = Placement(
                channel=card.channel,
                ts=card.ts,
                response_url=card.response_url,
                requested_by=follow.requested_by,
            )
        announced = self.notifier is not None and self.notifier.get(follow.env.id, follow.job.id)
        if placement is not None or announced:
            self.live.follow(follow.env, follow.job.id, placement, job=follow.job)

    async def _job_seen(self, env: EnvRef, job: Job, track_id: str) -> bool:
        """The live poller's view of a job, for its notification card. False when the card did not take it."""
        if self.notifier is None or not job.id or self.notifier.get(env.id, job.id) is None:
            return True
        return await self.notifier.publish(env, job, track_id=track_id, create=False) is not None

    async def stop(self) -> None:
        """Stop taking requests, let the ones in progress finish (a cancel on its way to Zuora is answered and
        recorded, not cut off), then end the watch and the live cards and close the connections."""
        self.ready = False
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._drain()
        if self.watch is not None:
            await self.watch.stop()
        if self.live is not None:
            await self.live.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _drain(self) -> None:
        """Wait for the replies in progress, new ones included, within a budget that covers a slow Zuora
        call and the Slack side after it."""
        if self._ctx is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.settings.zuora_timeout_seconds + DRAIN_SLACK_SECONDS
        while self._ctx.in_flight and (remaining := deadline - loop.time()) > 0:
            log.info(
                "waiting for requests in progress", extra={"requests": len(self._ctx.in_flight)}
            )
            await asyncio.wait(set(self._ctx.in_flight), timeout=remaining)
        if self._ctx.in_flight:
            log.warning(
                "stopping with requests in progress", extra={"requests": len(self._ctx.in_flight)}
            )

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run_forever(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop cleanly: pollers and the watch end, connections close."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stopping.set)
        await self.start()
        try:
            await stopping.wait()
            log.info("sandbox-bot stopping")
        finally:
            await self.stop()

    # -- web server --------------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        web_app = web.Application(client_max_size=1024 * 1024)
        web_app.router.add_get("/healthz", self._healthz)
        web_app.router.add_get("/metrics", self._metrics)
        if not self.settings.socket_mode:
            web_app.router.add_post(EVENTS_PATH, self._events)
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.settings.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _events(self, request: web.Request) -> web.Response:
        assert self.app is not None
        if not self.ready:
            return web.json_response({"error": "starting"}, status=503)
        bolt_response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def _healthz(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok"})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    @property
    def events_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}{EVENTS_PATH}"
