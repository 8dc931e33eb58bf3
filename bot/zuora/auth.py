"""Bearer tokens for Zuora: a static token, or OAuth client credentials with a single-flight cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Protocol

import httpx

from bot.secret import Secret
from bot.zuora.errors import (
    ZuoraAuthenticationError,
    ZuoraConnectionError,
    ZuoraError,
    ZuoraMalformedResponseError,
    ZuoraTimeoutError,
)
from bot.zuora.responses import (
    deadline_for,
    exchange,
    parse_model,
    raise_for_response,
    transport_error,
)
from bot.zuora.trackid import new_track_id

log = logging.getLogger(__name__)

OPERATION = "createToken"

TokenObserver = Callable[[str], None]
"""Told how each token request ended: `ok`, `refused` (the client id or secret), `timeout`, `connection`,
`malformed`, or Zuora's HTTP status."""


def token_outcome(error: ZuoraError | None) -> str:
    """The outcome label of a token request that raised `error` (None: a token was issued)."""
    match error:
        case None:
            return "ok"
        case ZuoraAuthenticationError():
            return "refused"
        case ZuoraTimeoutError():
            return "timeout"
        case ZuoraConnectionError():
            return "connection"
        case ZuoraMalformedResponseError():
            return "malformed"
        case _:
            return str(error.status) if error.status is not None else "error"


class TokenSource(Protocol):
    async def get(self) -> str:
        """A bearer token believed valid now."""
        ...

    async def invalidate(self, token: str) -> None:
        """Zuora answered 401 to `token`: forget it so the next `get` fetches a new one."""
        ...


class StaticToken:
    """A bearer token an operator already has. It cannot be renewed: a 401 surfaces as an error."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    async def get(self) -> str:
        return self._token.get_secret_value()

    async def invalidate(self, token: str) -> None:
        return None


class BearerAuth(httpx.Auth):
    """httpx's auth flow for Zuora: the token source's bearer token on every request; on a 401, the token is
    renewed once and the request sent once more (a static token cannot be renewed: its 401 stands)."""

    def __init__(
        self, source: TokenSource, on_refused: Callable[[httpx.Response], None] | None = None
    ) -> None:
        """`on_refused` is told of each 401 exchange (it is not the call's final answer: metrics, logs)."""
        self._source = source
        self._on_refused = on_refused

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("the Zuora client is asynchronous")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._source.get()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        # Read (and so release) the 401 first: its connection goes back to the pool for the token request,
        # which could otherwise wait behind a pool full of refused requests.
        await response.aread()
        if self._on_refused is not None:
            self._on_refused(response)
        await self._source.invalidate(token)
        renewed = await self._source.get()
        if renewed == token:
            return
        log.info(
            "zuora answered 401; token renewed, retrying once", extra={"url": str(request.url.path)}
        )
        request.headers["Authorization"] = f"Bearer {renewed}"
        yield request


@dataclass(frozen=True, slots=True)
class _CachedToken:
    value: str
    expires_at: float


class OAuthClientCredentials:
    """OAuth 2.0 client credentials against `POST /oauth/token`.

    One token request however many calls need a token at once (an asyncio.Lock with a re-check inside), renewed
    `renew_margin` seconds before it expires, and dropped on a 401 only if it is still the cached one, so a burst
    of 401s for the same token causes one renewal, not one each.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        client_id: str,
        client_secret: Secret,
        entity_id: str | None = None,
        renew_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        observer: TokenObserver | None = None,
    ) -> None:
        """`observer` is told how each token request ended (metrics)."""
        self._http = http
        self._url = base_url.rstrip("/") + "/oauth/token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._entity_id = entity_id
        self._renew_margin = renew_margin
        self._clock = clock
        self._cached: _CachedToken | None = None
        self._lock = asyncio.Lock()
        self._observer = observer
        self.requests_made = 0

    def _fresh(self) -> str | None:
        cached = self._cached
        if cached is not None and self._clock() < cached.expires_at - self._renew_margin:
            return cached.value
        return None

    async def get(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:
            token = self._fresh()
            if token is not None:
                return token
            try:
                cached = await self._request()
            except ZuoraError as error:
                self._observe(error)
                raise
            self._observe(None)
            self._cached = cached
            return cached.value

    def _observe(self, error: ZuoraError | None) -> None:
        if self._observer is not None:
            self._observer(token_outcome(error))

    async def invalidate(self, token: str) -> None:
        if self._cached is not None and self._cached.value == token:
            self._cached = None

    async def _request(self) -> _CachedToken:
        track_id = new_track_id()
        headers = {"Zuora-Track-Id": track_id, "Accept": "application/json"}
        if self._entity_id:
            headers["Zuora-Entity-Ids"] = self._entity_id
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "grant_type": "client_credentials",
        }
        self.requests_made += 1
        started = self._clock()
        request = self._http.build_request("POST", self._url, data=form, headers=headers)
        try:
            # Within one deadline: a token endpoint that trickles must not hold the token lock, and so
            # every command, for longer.
            response = await exchange(
                self._http, request, deadline=deadline_for(self._http),
                operation=OPERATION, track_id=track_id,
            )  # fmt: skip
        except httpx.TransportError as exc:
            raise transport_error(exc, operation=OPERATION, track_id=track_id) from None
        if response.status_code in (400, 401):
            # Zuora answers a bad client id or secret with 400 or 401: both mean the credentials are wrong.
            raise ZuoraAuthenticationError(
                "Zuora did not accept the OAuth client id/secret",
                operation=OPERATION,
                status=response.status_code,
                track_id=track_id,
                request_id=response.headers.get("Zuora-Request-Id"),
            )
        raise_for_response(response, operation=OPERATION, track_id=track_id)
        # Imported at the first token request: the models bring pydantic, which start-up does not need.
        from bot.zuora.models import Token

        token = parse_model(response, Token, operation=OPERATION, track_id=track_id)
        log.info("zuora token issued", extra={"expires_in": token.expires_in, "track_id": track_id})
        # Count the lifetime from when we asked, not when the answer arrived: never trust a token longer than Zuora.
        return _CachedToken(token.access_token, started + float(token.expires_in))
