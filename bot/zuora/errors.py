"""One exception hierarchy for every way a Zuora call can fail.

Each error carries what support needs: the HTTP status (None when no answer came), the operation, Zuora's
`reasons`, the `Zuora-Track-Id` we sent and the `Zuora-Request-Id` Zuora returned. Messages never contain
credentials or tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


class ZuoraError(Exception):
    """Base of every Zuora client error."""

    default_summary = "Zuora call failed"

    def __init__(
        self,
        summary: str | None = None,
        *,
        operation: str,
        status: int | None = None,
        reasons: tuple[Reason, ...] = (),
        track_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.summary = summary or self.default_summary
        self.operation = operation
        self.status = status
        self.reasons = reasons
        self.track_id = track_id
        self.request_id = request_id
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [f"{self.operation}: {self.summary}"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        parts.extend(str(reason) for reason in self.reasons)
        if self.track_id:
            parts.append(f"Zuora-Track-Id {self.track_id}")
        if self.request_id:
            parts.append(f"Zuora-Request-Id {self.request_id}")
        return "; ".join(parts)


class ZuoraAuthenticationError(ZuoraError):
    default_summary = "Zuora did not accept the bot's credentials"


class ZuoraPermissionError(ZuoraError):
    default_summary = "Zuora refused the operation (permission or policy)"


class ZuoraNotFoundError(ZuoraError):
    default_summary = "Zuora did not find the test environment or job"


class ZuoraRejectedError(ZuoraError):
    default_summary = "Zuora rejected the request"


class ZuoraRateLimitedError(ZuoraError):
    default_summary = "Zuora's rate limit was reached"

    def __init__(self, summary: str | None = None, *, retry_after: float | None = None, **kw: Any):
        self.retry_after = retry_after
        super().__init__(summary, **kw)


class ZuoraServerError(ZuoraError):
    default_summary = "Zuora had an internal error"


class ZuoraUnavailableError(ZuoraError):
    """No answer at all: the request timed out or the connection failed.

    `request_sent` is False when the failure came before any byte of the request left (connect phase):
    only then can a non-idempotent call be retried without risk of doing it twice.
    """

    default_summary = "Zuora could not be reached"

    def __init__(self, summary: str | None = None, *, request_sent: bool = True, **kw: Any):
        self.request_sent = request_sent
        super().__init__(summary, **kw)


class ZuoraTimeoutError(ZuoraUnavailableError):
    default_summary = "Zuora did not answer in time"


class ZuoraConnectionError(ZuoraUnavailableError):
    default_summary = "the connection to Zuora failed"


class ZuoraMalformedResponseError(ZuoraError):
    default_summary = "Zuora's answer could not be understood"


def parse_reasons(body: bytes) -> tuple[Reason, ...]:
    """Zuora's `reasons` from any error body shape: empty, classic `{success, reasons, ...}`,
    `{"reasons": [...]}`, a bare message, or garbage (-> no reasons, never an exception)."""
    if not body.strip():
        return ()
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ()
    if not isinstance(data, dict):
        return ()
    raw = data.get("reasons")
    if not isinstance(raw, list):
        message = data.get("message") or data.get("error_description") or data.get("error")
        return (Reason("", str(message)[:500]),) if message else ()
    reasons = []
    for item in raw[:10]:
        if isinstance(item, dict):
            code = item.get("code")
            message = item.get("message")
            reasons.append(
                Reason(
                    "" if code is None else str(code)[:64],
                    "" if message is None else str(message)[:500],
                )
            )
    return tuple(reasons)


def error_for_status(status: int) -> type[ZuoraError]:
    if status == 401:
        return ZuoraAuthenticationError
    if status == 403:
        return ZuoraPermissionError
    if status == 404:
        return ZuoraNotFoundError
    if status == 429:
        return ZuoraRateLimitedError
    if status >= 500:
        return ZuoraServerError
    return ZuoraRejectedError


def zuora_did_not_act(error: ZuoraError) -> bool:
    """True when the error proves Zuora did not carry the request out (so asking again cannot double it)."""
    if isinstance(error, ZuoraUnavailableError):
        return not error.request_sent
    return isinstance(
        error,
        ZuoraRejectedError
        | ZuoraPermissionError
        | ZuoraNotFoundError
        | ZuoraAuthenticationError
        | ZuoraRateLimitedError,
    )
