"""httpx's transport for the Zuora calls, carried by aiohttp.

aiohttp is loaded already (the bot's server and its Slack client run on it). httpx's own transport would add
httpcore, h11 and anyio: 65 modules and 2.6 MB, and h11's pure-Python parsing of every answer. Here httpx keeps
its API (requests, auth, responses, errors, the proxies it reads from the environment); aiohttp's connector
holds the connections (at most `limits.max_connections`), with httpx's TLS context (certifi's CA bundle, or
`SSL_CERT_FILE`/`SSL_CERT_DIR`).

aiohttp's errors become httpx's, each for what happened: a connection refused is a `ConnectError`, a connect
that timed out (waiting for a free connection included: aiohttp times both as one) a `ConnectTimeout`, a read
that timed out a `ReadTimeout`, a connection closed, a body cut short or an answer that is not HTTP a
`RemoteProtocolError`; the Zuora client turns these into its own messages. The message of an error
is its kind only: a proxy's URL may hold a password.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import aiohttp.http_exceptions
import httpx

__all__ = ["AiohttpTransport"]

# (aiohttp's error, httpx's), most specific first: the first that matches is the one raised.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),  # a body cut short, as httpx says it
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.ClientError, httpx.NetworkError),
    # An answer that is not HTTP, as aiohttp's pure-Python parser reports it
    (aiohttp.http_exceptions.HttpProcessingError, httpx.RemoteProtocolError),
    (TimeoutError, httpx.ReadTimeout),  # the body's own read timer (`_Body`)
)
_DEFAULT_LIMITS = httpx.Limits()
# Set by aiohttp itself, from the request it sends.
_LEFT_TO_AIOHTTP = frozenset({b"content-length", b"transfer-encoding", b"host"})


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except (
        aiohttp.ClientError,
        aiohttp.http_exceptions.HttpProcessingError,
        TimeoutError,
    ) as error:
        for theirs, ours in _ERRORS:
            if isinstance(error, theirs):
                # Not chained: aiohttp's error may hold the request's headers (a proxy's credentials).
                raise ours(type(error).__name__) from None
        raise  # not reached: every kind caught is in the table


class _Body(httpx.AsyncByteStream):
    """The answer's body as it arrives (raw: httpx undoes its gzip), released with the response.

    Each read has its own timer (httpx's read timeout): aiohttp's stops when its parser fails on a malformed
    chunk, and the read would then wait for nothing."""

    def __init__(self, response: aiohttp.ClientResponse, read_timeout: float | None) -> None:
        self._response = response
        self._read_timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            while True:
                async with asyncio.timeout(self._read_timeout):
                    chunk = await self._response.content.readany()
                if not chunk:
                    return
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        verify: object = True,
        cert: object = None,
        trust_env: bool = True,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        proxy: httpx.Proxy | None = None,
        **_unused: object,
    ) -> None:
        """httpx's transport arguments (it passes them from the client). Raises when the TLS context or the
        proxy cannot be set up (a CA file that is not there; a SOCKS proxy, which aiohttp does not speak)."""
        if proxy is not None and proxy.url.scheme not in ("http", "https"):
            raise ValueError("only HTTP proxies are supported")
        self._ssl = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)  # type: ignore[arg-type]
        self._limits = limits
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        """The session, made by the first request (a session needs the running loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=self._limits.keepalive_expiry or 5.0,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
            # aiohttp sends an idempotent request again, unasked, when a kept-alive connection drops under it.
            # The Zuora client's retry policy is the one that decides (and counts, and logs) a second try;
            # there is no public switch (aiohttp's own test client sets the same attribute; aiohttp is pinned).
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _LEFT_TO_AIOHTTP
        ]
        content = await request.aread()
        proxy = self._proxy
        proxy_headers = dict(proxy.headers) if proxy is not None else {}
        if proxy is not None and proxy.auth is not None:
            credentials = f"{proxy.auth[0]}:{proxy.auth[1]}".encode()
            proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        if proxy_headers and request.url.scheme == "http":
            # Plain HTTP goes to the proxy as it is (aiohttp sends `proxy_headers` only to open an HTTPS
            # tunnel, and must not: inside the tunnel they would reach Zuora).
            headers.extend(proxy_headers.items())
        with _as_httpx_errors():
            response = await self._session_now().request(
                request.method,
                str(request.url),
                headers=headers,
                data=content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
                proxy=str(proxy.url) if proxy is not None else None,
                proxy_headers=proxy_headers or None,
            )
        return httpx.Response(
            response.status,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
            stream=_Body(response, timeout.get("read")),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
