"""Turning httpx outcomes into models or `ZuoraError`s: shared by the API client and the token source."""

from __future__ import annotations

import email.utils
import time
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from bot.zuora.errors import (
    ZuoraConnectionError,
    ZuoraMalformedResponseError,
    ZuoraRateLimitedError,
    ZuoraTimeoutError,
    ZuoraUnavailableError,
    error_for_status,
    parse_reasons,
)

ModelT = TypeVar("ModelT", bound=BaseModel)

REQUEST_ID_HEADER = "Zuora-Request-Id"
TRACK_ID_HEADER = "Zuora-Track-Id"

# httpx errors raised before any byte of the request left this process: a retry cannot duplicate an action.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


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
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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
    except (ValidationError, ValueError) as exc:
        raise ZuoraMalformedResponseError(
            operation=operation,
            status=response.status_code,
            track_id=track_id,
            request_id=response.headers.get(REQUEST_ID_HEADER),
        ) from exc
