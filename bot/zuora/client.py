"""Typed async client for Zuora's test-environment operations."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx

from bot.zuora.auth import BearerAuth, TokenSource
from bot.zuora.errors import (
    ZuoraConnectionError,
    ZuoraError,
    ZuoraMalformedResponseError,
    ZuoraTimeoutError,
)
from bot.zuora.responses import (
    REQUEST_ID_HEADER,
    TRACK_ID_HEADER,
    deadline_for,
    exchange,
    parse_model,
    raise_for_response,
    transport_error,
)
from bot.zuora.retry import Idempotency, RetryPolicy, call_with_retry
from bot.zuora.trackid import new_track_id, validate_track_id

if TYPE_CHECKING:
    from pydantic import BaseModel

    from bot.zuora.models import Job, TestEnvironment

# Each operation imports the models it reads when it is first called: they bring pydantic, which the bot does
# not need to start serving (a third of a bare Bolt app's start-up; docs/performance.md).

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound="BaseModel")

# Called once per HTTP exchange: (operation, outcome, seconds). Outcome is the status code as text, or the
# error kind ("timeout", "connection") when no answer came. Used for metrics; must not raise.
CallObserver = Callable[[str, str, float], None]

USER_AGENT = "sandbox-bot/0.1 (+https://github.com/; Zuora test environments)"


def _segment(value: str) -> str:
    """A path segment, percent-encoded: IDs are validated upstream, this keeps the URL sound regardless."""
    return quote(value, safe="")


class ZuoraClient:
    """One per process: it owns (or borrows) an `httpx.AsyncClient` with its connection pool."""

    def __init__(
        self,
        *,
        base_url: str,
        auth: TokenSource,
        http: httpx.AsyncClient,
        entity_id: str | None = None,
        gzip_requests: bool = False,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: CallObserver | None = None,
        max_concurrent: int = 20,
    ) -> None:
        """`max_concurrent`: exchanges at once, at most the pool's connections: a call waits for its turn
        before its deadline starts, so a burst queues instead of timing out in the pool."""
        self._base_url = base_url.rstrip("/")
        self._auth = BearerAuth(auth, on_refused=self._refused)
        self._http = http
        self._entity_id = entity_id
        self._gzip_requests = gzip_requests
        self._retry = retry or RetryPolicy()
        # The whole of one exchange, however its parts are spread: the pool's read timeout, and a little more
        # for connecting and sending.
        self._deadline = deadline_for(http)
        self._turns = asyncio.Semaphore(max_concurrent)
        self._sleep = sleep
        self._observer = observer

    # -- operations -------------------------------------------------------------------------------------------

    async def list_test_environments(
        self, *, track_id: str | None = None, retry: RetryPolicy | None = None
    ) -> list[TestEnvironment]:
        """`retry` overrides the client's policy for this call (the watch retries by its next round)."""
        from bot.zuora.models import TestEnvironmentList

        page = await self._call(
            "getAllTestEnvironments",
            "GET",
            "/test-environments",
            TestEnvironmentList,
            Idempotency.READ,
            track_id,
            retry=retry,
        )
        return page.result

    async def get_test_environment(
        self, env_id: str, *, track_id: str | None = None
    ) -> TestEnvironment:
        from bot.zuora.models import TestEnvironment

        return await self._call(
            "getTestEnvironment",
            "GET",
            f"/test-environments/{_segment(env_id)}",
            TestEnvironment,
            Idempotency.READ,
            track_id,
        )

    async def list_jobs(
        self, env_id: str, *, track_id: str | None = None, retry: RetryPolicy | None = None
    ) -> list[Job]:
        from bot.zuora.models import JobList

        page = await self._call(
            "getAllJobsOfTestEnvironment",
            "GET",
            f"/test-environments/{_segment(env_id)}/jobs",
            JobList,
            Idempotency.READ,
            track_id,
            retry=retry,
        )
        return page.result

    async def get_job(self, env_id: str, job_id: str, *, track_id: str | None = None) -> Job:
        from bot.zuora.models import Job

        return await self._call(
            "getJobOfTestEnvironment",
            "GET",
            f"/test-environments/{_segment(env_id)}/jobs/{_segment(job_id)}",
            Job,
            Idempotency.READ,
            track_id,
        )

    async def create_refresh_job(
        self, env_id: str, *, scheduled_at: datetime | None = None, track_id: str | None = None
    ) -> Job:
        from bot.zuora.models import Job, JobRequest

        body = JobRequest(scheduled_refresh_time=scheduled_at).to_wire()
        return await self._call(
            "createTestEnvironmentJob",
            "POST",
            f"/test-environments/{_segment(env_id)}/jobs",
            Job,
            Idempotency.CREATE,
            track_id,
            body=body,
        )

    async def cancel_job(self, env_id: str, job_id: str, *, track_id: str | None = None) -> Job:
        """`performActionOfJob` with CANCEL: the job as Zuora reports it after the request (usually CANCELLING)."""
        from bot.zuora.models import Job, JobActionRequest

        body = JobActionRequest(job_action="CANCEL").to_wire()
        return await self._call(
            "performActionOfJob",
            "POST",
            f"/test-environments/{_segment(env_id)}/jobs/{_segment(job_id)}/actions",
            Job,
            Idempotency.REPEATABLE_ACTION,
            track_id,
            body=body,
        )

    # -- transport --------------------------------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        model: type[ModelT],
        idempotency: Idempotency,
        track_id: str | None,
        *,
        body: dict[str, Any] | None = None,
        retry: RetryPolicy | None = None,
    ) -> ModelT:
        # One track ID for all attempts of one call, so Zuora support sees them as one story.
        track = validate_track_id(track_id) if track_id is not None else new_track_id()
        content, content_headers = self._encode(body)

        async def attempt() -> ModelT:
            response = await self._send(operation, method, path, track, content, content_headers)
            raise_for_response(response, operation=operation, track_id=track)
            return parse_model(response, model, operation=operation, track_id=track)

        return await call_with_retry(
            attempt, idempotency=idempotency, policy=retry or self._retry, sleep=self._sleep
        )

    def _encode(self, body: dict[str, Any] | None) -> tuple[bytes | None, dict[str, str]]:
        if body is None:
            return None, {}
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self._gzip_requests:
            headers["Content-Encoding"] = "gzip"
            return gzip.compress(raw), headers
        return raw, headers

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        track_id: str,
        content: bytes | None,
        content_headers: dict[str, str],
    ) -> httpx.Response:
        headers = {
            TRACK_ID_HEADER: track_id,
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
            "User-Agent": USER_AGENT,
            **content_headers,
        }
        if self._entity_id:
            headers["Zuora-Entity-Ids"] = self._entity_id
        started = time.perf_counter()
        request = self._http.build_request(
            method,
            self._base_url + path,
            headers=headers,
            content=content,
            extensions={"zuora_operation": operation},
        )
        try:
            async with self._turns:
                # One deadline for the whole exchange (connect, send, and a body that may trickle in byte
                # by byte), and a cap on what is read: httpx's own timeouts are per read.
                response = await exchange(
                    self._http, request, auth=self._auth, deadline=self._deadline,
                    operation=operation, track_id=track_id,
                )  # fmt: skip
        except ZuoraTimeoutError:
            self._observe(operation, "timeout", started)
            log.warning(
                "zuora call over its deadline",
                extra={"operation": operation, "track_id": track_id, "seconds": self._deadline},
            )
            raise
        except ZuoraMalformedResponseError:
            self._observe(operation, "malformed", started)
            raise
        except httpx.TransportError as exc:
            error = transport_error(exc, operation=operation, track_id=track_id)
            self._observe(
                operation,
                "timeout" if isinstance(exc, httpx.TimeoutException) else "connection",
                started,
            )
            log.warning(
                "zuora call failed without an answer",
                extra={"operation": operation, "track_id": track_id, "error": type(exc).__name__},
            )
            raise error from None
        except httpx.DecodingError:
            # A body that claims gzip but is not: Zuora answered, but with nothing readable.
            self._observe(operation, "malformed", started)
            raise ZuoraMalformedResponseError(operation=operation, track_id=track_id) from None
        except httpx.HTTPError as exc:  # anything else httpx may raise: treat as a failed exchange
            self._observe(operation, "connection", started)
            raise ZuoraConnectionError(
                f"the exchange with Zuora failed ({type(exc).__name__})",
                operation=operation,
                track_id=track_id,
            ) from None
        self._observe(operation, str(response.status_code), started)
        log.info(
            "zuora call",
            extra={
                "operation": operation,
                "status": response.status_code,
                "track_id": track_id,
                "request_id": response.headers.get(REQUEST_ID_HEADER),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return response

    def _refused(self, response: httpx.Response) -> None:
        """A 401 on the way to the call's answer (the token is renewed and the request sent once more)."""
        operation = str(response.request.extensions.get("zuora_operation", "unknown"))
        if self._observer is not None:
            self._observer(operation, "401", response.elapsed.total_seconds())
        log.info(
            "zuora call",
            extra={
                "operation": operation,
                "status": 401,
                "track_id": response.request.headers.get(TRACK_ID_HEADER),
                "request_id": response.headers.get(REQUEST_ID_HEADER),
            },
        )

    def _observe(self, operation: str, outcome: str, started: float) -> None:
        if self._observer is not None:
            self._observer(operation, outcome, time.perf_counter() - started)


__all__ = ["CallObserver", "ZuoraClient", "ZuoraError"]
