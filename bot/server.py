"""The HTTP server: `POST /slack/events` (HTTP mode), `GET /healthz` and `GET /metrics` (both modes)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.metrics import CONTENT_TYPE, Metrics

EVENTS_PATH = "/slack/events"
MAX_BODY = 1024 * 1024


class HttpServer:
    def __init__(
        self, *, app: AsyncApp | None, metrics: Metrics, ready: Callable[[], bool]
    ) -> None:
        """`app` None: no `/slack/events` (Socket Mode). `ready` says whether the bot serves yet."""
        self._app = app
        self._metrics = metrics
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on `host:port` (0: a free port); returns the port."""
        web_app = web.Application(client_max_size=MAX_BODY)
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

    async def _events(self, request: web.Request) -> web.Response:
        assert self._app is not None
        if not self._ready():
            return web.json_response({"error": "starting"}, status=503)
        bolt_response = await self._app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def _healthz(self, request: web.Request) -> web.Response:
        if not self._ready():
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok"})

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})
