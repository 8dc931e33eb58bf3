"""Which failures are worth another attempt, and how long to wait before it.

Built on tenacity (its `wait_random_exponential` is the backoff with full jitter); what is ours is the policy:
Zuora's `Retry-After` on 429 and 503 wins over the backoff, and a retry rule per kind of operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from bot.zuora.errors import (
    ZuoraError,
    ZuoraRateLimitedError,
    ZuoraServerError,
    ZuoraUnavailableError,
)

if TYPE_CHECKING:
    from tenacity import RetryCallState

T = TypeVar("T")


class Idempotency(Enum):
    """How safe it is to send an operation again."""

    READ = "read"  # GETs: retry on 429, 502, 503, 504 and any connection error or timeout
    # CANCEL: cancelling a job twice is harmless (a second CANCEL of a CANCELLING job changes nothing), so it is
    # retried on 429 and 503 (Zuora did not act) and on connection errors from before the request was sent.
    # A timeout after sending is not retried: the first request may still be running.
    REPEATABLE_ACTION = "repeatable-action"
    # Job creation: a second POST could start a second refresh; retried only when Zuora certainly did not receive
    # the first one (connect-phase failures) or refused it up front (429).
    CREATE = "create"


_READ_RETRY_STATUSES = frozenset({502, 503, 504})


def should_retry(error: BaseException, idempotency: Idempotency) -> bool:
    if not isinstance(error, ZuoraError):
        return False
    if isinstance(error, ZuoraRateLimitedError):
        return True
    if isinstance(error, ZuoraUnavailableError):
        return idempotency is Idempotency.READ or not error.request_sent
    if isinstance(error, ZuoraServerError):
        if idempotency is Idempotency.READ:
            return error.status in _READ_RETRY_STATUSES
        return idempotency is Idempotency.REPEATABLE_ACTION and error.status == 503
    return False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    # A Retry-After longer than this is not waited out: the error goes back to the user at once.
    max_retry_after: float = 30.0
    # No attempt starts after this many seconds of trying: someone in Slack is waiting for the answer
    # (four 30 s timeouts in a row would otherwise keep them two minutes).
    deadline: float = 60.0

    def gives_up_on(self, error: BaseException) -> bool:
        retry_after = getattr(error, "retry_after", None)
        return retry_after is not None and float(retry_after) > self.max_retry_after


NO_RETRY = RetryPolicy(attempts=1)


async def call_with_retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    idempotency: Idempotency,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    # Imported at the first call (the bot loads it once it serves, with the Zuora models): start-up needs none.
    from tenacity import (
        AsyncRetrying,
        retry_if_exception,
        stop_after_attempt,
        stop_before_delay,
        wait_random_exponential,
    )

    def retryable(error: BaseException) -> bool:
        return should_retry(error, idempotency) and not policy.gives_up_on(error)

    jitter = wait_random_exponential(multiplier=policy.base_delay, max=policy.max_delay)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        backoff = float(jitter(state))
        if retry_after is not None:
            # Honour Zuora's word, with a little jitter on top so parallel callers do not return together.
            return min(float(retry_after), policy.max_retry_after) + backoff / 4
        return backoff

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.deadline),
        wait=wait,
        retry=retry_if_exception(retryable),
        sleep=sleep,
        reraise=True,
    )
    return await retrying(attempt)
