"""The HTTP server: `POST /slack/events` (HTTP mode), `GET /healthz` and `GET /metrics` (both modes).

`/healthz` answers what `bot.health.Health` last saw (no network call per request): 200 with `ok` or
`degraded` once the bot serves, 503 before and while Slack rejects the bot token.

Every request to `/slack/events` passes `bot.request_gate.inspect` on its raw bytes before Bolt sees it:
unsigned, mis-signed or stale gets 401, signed but malformed 400, over 1 MiB 413; each one WARNING line, never
a traceback, and nothing is parsed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.health import Health
from bot.listeners.context import AcksFirst
from bot.metrics import CONTENT_TYPE, Metrics
from bot.request_gate import MAX_BODY, inspect

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class HttpServer:
    def __init__(
        self,
        *,
        app: AsyncApp | None,
        signing_secret: str | None,
        metrics: Metrics,
        ready: Callable[[], bool],
        health: Health,
        acks: AcksFirst | None = None,
    ) -> None:
        """`app` None: no `/slack/events` (Socket Mode). `ready` says whether the bot serves yet. `acks` is told
        when a request arrives and when its ack has been sent, so the work after acks waits for them."""
        if app is not None and not signing_secret:
            raise ValueError(
                "HTTP mode needs SLACK_SIGNING_SECRET"
            )  # never serve events unverified
        self._app = app
        self._secret = signing_secret or ""
        self._metrics = metrics
        self._ready = ready
        self._health = health
        self._acks = acks or AcksFirst()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on `host:port` (0: a free port); returns the port."""
        web_app = web.Application(client_max_size=MAX_BODY + 1)
        web_app.router.add_get("/healthz", self._healthz)
        web_app.router.add_get("/metrics", self._metrics_page)
        if self._app is not None:
            web_app.router.add_post(EVENTS_PATH, self._events)
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Stop taking requests; the ones in progress are answered first (aiohttp's graceful shutdown)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._acks.close()

    async def _events(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        self._acks.arrived()
        try:
            response, dispatched = await self._answer(request)
            # Sent here rather than by aiohttp after the return: the ack is timed to its last byte written.
            try:
                await response.prepare(request)
                await response.write_eof()
            except ConnectionError:
                # The other side has gone (Slack gives up on an ack after 3 s): the request is still handled,
                # and one line says so, not aiohttp's traceback.
                log.warning(
                    "ack not sent: the connection was closed",
                    extra={
                        "peer": request.remote,
                        "seconds": round(time.perf_counter() - arrived, 3),
                    },
                )
        finally:
            self._acks.acked()
        if dispatched:
            self._metrics.observe_ack(time.perf_counter() - arrived)
        return response

    async def _answer(self, request: web.Request) -> tuple[web.Response, bool]:
        """The answer, and whether it is Bolt's (an ack) rather than a refusal before Bolt saw the request."""
        assert self._app is not None
        if not self._ready():
            return web.json_response({"error": "starting"}, status=503), False
        if (request.content_length or 0) > MAX_BODY:
            return self._reject(413, "body over 1 MiB", request), False
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, "body over 1 MiB", request), False
        rejection = inspect(secret=self._secret, headers=request.headers, body=body)
        if rejection is not None:
            return self._reject(rejection.status, rejection.reason, request), False
        try:
            bolt_request = AsyncBoltRequest(
                body=body.decode("utf-8"),
                query=request.query_string,
                headers=request.headers,  # type: ignore[arg-type]
            )
        except (ValueError, TypeError, AttributeError, RecursionError):
            # `inspect` refuses what Bolt cannot parse; should a body still get past it, a 400, not a traceback.
            return self._reject(400, "body Bolt cannot read", request), False
        return await to_aiohttp_response(await self._app.async_dispatch(bolt_request)), True

    def _reject(self, status: int, reason: str, request: web.Request) -> web.Response:
        log.warning(
            "slack request rejected",
            extra={"status": status, "reason": reason, "peer": request.remote},
        )
        self._metrics.rejected_requests.labels(str(status)).inc()
        return web.json_response({"error": reason}, status=status)

    async def _healthz(self, request: web.Request) -> web.Response:
        status, body = await self._health.report()
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})
