"""Turning httpx outcomes into models or `ZuoraError`s: shared by the API client and the token source."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from typing import TYPE_CHECKING, TypeVar

import httpx

from bot.zuora.errors import (
    ZuoraConnectionError,
    ZuoraMalformedResponseError,
    ZuoraRateLimitedError,
    ZuoraTimeoutError,
    ZuoraUnavailableError,
    error_for_status,
    parse_reasons,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound="BaseModel")

REQUEST_ID_HEADER = "Zuora-Request-Id"
TRACK_ID_HEADER = "Zuora-Track-Id"

# httpx errors raised before any byte of the request left this process: a retry cannot duplicate an action.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


MAX_RESPONSE_BYTES = 5 * 1024 * 1024


def deadline_for(http: httpx.AsyncClient) -> float:
    """The whole of one exchange, however its parts are spread: the client's read timeout, and as much again
    (at most 5 s) for connecting and sending."""
    read = http.timeout.read if http.timeout.read is not None else 30.0
    return read + min(read, 5.0)


async def exchange(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    deadline: float,
    operation: str,
    track_id: str,
    auth: httpx.Auth | None = None,
) -> httpx.Response:
    """Send `request` and read its answer within one `deadline` (connect, send, and a body that may trickle in
    byte by byte: httpx's own timeouts are per read), reading at most `MAX_RESPONSE_BYTES` of it (decoded):
    Zuora's answers to these operations are a few kilobytes. Raises `ZuoraTimeoutError` past the deadline,
    `ZuoraMalformedResponseError` past the cap, and httpx's errors as they come."""
    try:
        async with asyncio.timeout(deadline):
            response = await http.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT, stream=True)
            try:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
                    raise _too_large(operation, track_id)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise _too_large(operation, track_id)
            finally:
                await response.aclose()
    except TimeoutError:
        raise ZuoraTimeoutError(
            f"Zuora did not answer within {deadline:g} s", operation=operation, track_id=track_id
        ) from None
    headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-encoding"]
    return httpx.Response(
        response.status_code, headers=headers, content=bytes(body), request=request
    )


def _too_large(operation: str, track_id: str) -> ZuoraMalformedResponseError:
    return ZuoraMalformedResponseError(
        "Zuora's answer was far too large", operation=operation, track_id=track_id
    )


def transport_error(
    exc: httpx.TransportError, *, operation: str, track_id: str
) -> ZuoraUnavailableError:
    sent = not isinstance(exc, _NOT_SENT)
    if isinstance(exc, httpx.TimeoutException):
        return ZuoraTimeoutError(operation=operation, track_id=track_id, request_sent=sent)
    if isinstance(exc, httpx.ConnectError):
        summary = "Zuora could not be reached (connection refused or failed)"
    elif isinstance(exc, httpx.RemoteProtocolError):
        summary = "Zuora closed the connection without an answer"
    else:
        summary = None
    return ZuoraConnectionError(summary, operation=operation, track_id=track_id, request_sent=sent)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()[:64]
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return _bounded(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _bounded(when.timestamp() - (time.time() if now is None else now))


MAX_RETRY_AFTER = 86_400.0


def _bounded(seconds: float) -> float | None:
    """A wait we can quote and compute with: 0 to a day; NaN is no answer."""
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def raise_for_response(response: httpx.Response, *, operation: str, track_id: str) -> None:
    if response.is_success:
        return
    status = response.status_code
    kind = error_for_status(status)
    reasons = parse_reasons(response.content)
    request_id = response.headers.get(REQUEST_ID_HEADER)
    if kind is ZuoraRateLimitedError:
        raise ZuoraRateLimitedError(
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            operation=operation,
            status=status,
            reasons=reasons,
            track_id=track_id,
            request_id=request_id,
        )
    raise kind(
        operation=operation,
        status=status,
        reasons=reasons,
        track_id=track_id,
        request_id=request_id,
    )


def parse_model(
    response: httpx.Response, model: type[ModelT], *, operation: str, track_id: str
) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValueError as exc:
        # pydantic's ValidationError is a ValueError, and so is a body that is not JSON.
        raise ZuoraMalformedResponseError(
            operation=operation,
            status=response.status_code,
            track_id=track_id,
            request_id=response.headers.get(REQUEST_ID_HEADER),
        ) from exc
