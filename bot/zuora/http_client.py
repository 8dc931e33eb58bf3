"""The HTTP client of the Zuora calls: httpx's, with its connection pools built on their first request.

httpx builds a pool when the client is made, and with it a TLS context whose CA bundle takes tens of
milliseconds to load (httpcore's import as much again). The bot makes no Zuora call before it serves, so its
start-up to a healthy `/healthz` need not wait for them: the first Zuora call builds the pool instead.
Everything else is httpx's own, the proxies taken from the environment (`HTTPS_PROXY`, `NO_PROXY`) included."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["BuiltOnFirstUse", "ZuoraHttpClient"]


class BuiltOnFirstUse(httpx.AsyncBaseTransport):
    """A transport that `build`s the real one when the first request comes, and closes it if it was built."""

    def __init__(self, build: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._build = build
        self._transport: httpx.AsyncBaseTransport | None = None

    @property
    def built(self) -> bool:
        return self._transport is not None

    def _real(self) -> httpx.AsyncBaseTransport:
        if self._transport is None:  # no await between the check and the assignment: built once
            self._transport = self._build()
        return self._transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._real().handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


class ZuoraHttpClient(httpx.AsyncClient):
    """`httpx.AsyncClient` whose transports (the direct one and each proxy's) are built on first use.

    It defers httpx's own two construction hooks (`constraints.txt` pins the httpx they belong to, and
    tests/test_zuora_http_client.py checks both); the transports they build are unchanged."""

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        return BuiltOnFirstUse(functools.partial(super()._init_transport, *args, **kwargs))

    def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        return BuiltOnFirstUse(functools.partial(super()._init_proxy_transport, *args, **kwargs))
