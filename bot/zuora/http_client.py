"""The HTTP client of the Zuora calls: httpx's, carried by aiohttp, with its connections set up by the first call.

The transport is `bot.zuora.aiohttp_transport` (aiohttp is loaded already; httpx's own transport would add
httpcore, h11 and anyio). It is built by the first request, with its TLS context (whose CA bundle takes tens of
milliseconds to load): the bot makes no Zuora call before it serves, so its start-up to a healthy `/healthz`
need not wait for it. A TLS or proxy set-up that cannot be built is then logged and reported as a failed
connection, and `sandbox-bot check --online` finds it before a deployment. The proxies are httpx's, taken from
the environment (`HTTPS_PROXY`, `NO_PROXY`)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["BuiltOnFirstUse", "ZuoraHttpClient"]

log = logging.getLogger(__name__)


class BuiltOnFirstUse(httpx.AsyncBaseTransport):
    """A transport that `build`s the real one when the first request comes, and closes it if it was built."""

    def __init__(self, build: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._build = build
        self._real_transport: httpx.AsyncBaseTransport | None = None
        self._closed = False

    @property
    def built(self) -> bool:
        return self._real_transport is not None

    def prepare(self) -> httpx.AsyncBaseTransport:
        """The real transport, built now if it is not yet. A set-up that cannot be built (a CA file that is
        not there, a SOCKS proxy without its package) raises `httpx.ConnectError`, which the Zuora client
        reports as a failed connection; the cause is logged by its type only (a proxy URL may hold a password)."""
        if self._closed:
            raise httpx.ConnectError("the Zuora HTTP client is closed")
        # No await between the check and the assignment: built once, however many calls come first.
        if self._real_transport is None:
            try:
                self._real_transport = self._build()
            except Exception as error:
                log.error(
                    "the connection pool for Zuora could not be set up: check SSL_CERT_FILE, "
                    "SSL_CERT_DIR and the proxy variables",
                    extra={"error": type(error).__name__},
                )
                raise httpx.ConnectError(
                    f"the connection pool could not be set up ({type(error).__name__})"
                ) from error
        return self._real_transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.prepare().handle_async_request(request)

    async def aclose(self) -> None:
        self._closed = True
        if self._real_transport is not None:
            await self._real_transport.aclose()


class ZuoraHttpClient(httpx.AsyncClient):
    """`httpx.AsyncClient` whose transports (the direct one and each proxy's) are aiohttp's, built by the first
    request through them.

    It overrides httpx's own two construction hooks (`constraints.txt` pins the httpx they belong to, and
    tests/test_zuora_http_client.py checks both)."""

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        transport = kwargs.pop("transport", None)
        if isinstance(transport, httpx.AsyncBaseTransport):
            return transport
        return BuiltOnFirstUse(functools.partial(_aiohttp_transport, None, *args, **kwargs))

    def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        return BuiltOnFirstUse(functools.partial(_aiohttp_transport, *args, **kwargs))


def _aiohttp_transport(proxy: httpx.Proxy | None = None, **kwargs: Any) -> httpx.AsyncBaseTransport:
    """Imported here: a process that never calls Zuora (`check` without `--online`) never loads it."""
    from bot.zuora.aiohttp_transport import AiohttpTransport

    return AiohttpTransport(proxy=proxy, **kwargs)
