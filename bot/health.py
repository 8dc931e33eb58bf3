"""What `GET /healthz` says, from what the bot last saw: no network call per request.

- **Slack**: the last `auth.test` (one at start, then one every `AUTH_TEST_SECONDS` in the background, sooner
  again after a failure) and, in Socket Mode, whether the WebSocket is connected. A server or network error
  makes it `degraded`; a rejected token (`invalid_auth`, `token_revoked`, `account_inactive`, ...) means the
  bot cannot serve at all, and the whole answer is 503.
- **Zuora**: the last token request and the last call (from the client's observer). `ok` before the first
  one: the bot serves without waiting for a token.
- **Redis**: `off` without `SANDBOX_REDIS_URL`; otherwise a PING every `REDIS_PROBE_SECONDS` in the
  background: `ok`, or `degraded` while Redis does not answer (actions that need a claim are refused then;
  looking still works).

The answer: `{"status": "ok" | "degraded" | "starting", "checks": {name: {"status", "detail"}}}`, 200 once
the bot serves, 503 before and while Slack rejects the token. Details are short and never hold a secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk.errors import SlackApiError

from bot.tasks import cancel_and_wait
from bot.zuora.auth import OPERATION as TOKEN_OPERATION
from bot.zuora.auth import TokenSource
from bot.zuora.errors import ZuoraAuthenticationError, ZuoraError, ZuoraTimeoutError

log = logging.getLogger(__name__)

AUTH_TEST_SECONDS = 300.0  # between two auth.test calls while Slack answers
RETRY_SECONDS = 30.0  # between two auth.test calls while it does not
FIRST_CHECK_SECONDS = 10.0  # the most the start waits for the first auth.test
# Slack's answers that mean the token itself is no good: nothing the bot does can work.
TOKEN_REJECTED = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)

CheckStatus = Literal["ok", "degraded", "off"]


@dataclass(frozen=True, slots=True)
class Check:
    """One part of the answer. `blocking`: the bot cannot serve while it holds (503)."""

    status: CheckStatus
    detail: str
    blocking: bool = False

    def as_json(self) -> dict[str, str]:
        return {"status": self.status, "detail": self.detail}


NOT_CONFIGURED = Check("off", "not configured")
REDIS_PROBE_SECONDS = 5.0


class RedisHealth:
    """Whether the coordination store answers: a PING in the background, never one per /healthz request."""

    def __init__(
        self,
        ping: Callable[[], Awaitable[bool]],
        where: str,
        *,
        interval: float = REDIS_PROBE_SECONDS,
    ) -> None:
        self._ping = ping
        self._where = where
        self._interval = interval
        self.last = Check("degraded", f"{where}: not answered yet")
        self._task: asyncio.Task[None] | None = None

    async def probe(self) -> Check:
        check = (
            Check("ok", f"{self._where}: PING ok")
            if await self._ping()
            else Check(
                "degraded", f"{self._where}: no answer; actions that need a claim are refused"
            )
        )
        if check.status != self.last.status:
            (log.info if check.status == "ok" else log.warning)(
                "redis health", extra={"detail": check.detail}
            )
        self.last = check
        return check

    def check(self) -> Check:
        return self.last

    async def start(self) -> None:
        await self.probe()
        self._task = asyncio.create_task(self._run(), name="redis-health")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.probe()


class SlackHealth:
    """The last `auth.test`, kept fresh by a background task; in Socket Mode, the WebSocket's state."""

    def __init__(
        self,
        auth_test: Callable[[], Awaitable[Any]],
        *,
        interval: float = AUTH_TEST_SECONDS,
        retry_interval: float = RETRY_SECONDS,
    ) -> None:
        self._auth_test = auth_test
        self._interval = interval
        self._retry_interval = min(retry_interval, interval)
        self.last = Check("degraded", "auth.test not answered yet")
        self.socket_connected: Callable[[], Awaitable[bool]] | None = None
        """Set in Socket Mode: whether the WebSocket is connected now (a local check)."""
        self.probes = 0
        self._task: asyncio.Task[None] | None = None

    async def probe(self) -> Check:
        """Call `auth.test` once and remember what it said."""
        try:
            await self._auth_test()
        except SlackApiError as error:
            # A body that is not JSON (a proxy's error page, say) leaves `data` a string, with no error code.
            data = error.response.data
            code = str((data.get("error") if isinstance(data, dict) else None) or "error")
            status = error.response.status_code
            if code in TOKEN_REJECTED:
                check = Check("degraded", f"Slack rejects the bot token ({code})", blocking=True)
            else:
                http = f" (HTTP {status})" if status != 200 else ""
                check = Check("degraded", f"auth.test: {code}{http}")
        except (TimeoutError, OSError) as error:  # aiohttp's connection errors are OSErrors
            check = Check("degraded", f"auth.test: no answer ({type(error).__name__})")
        except Exception as error:  # anything else the client raises: still an answer here
            check = Check("degraded", f"auth.test failed ({type(error).__name__})")
        else:
            check = Check("ok", "auth.test ok")
        self._remember(check)
        return check

    def _remember(self, check: Check) -> None:
        self.probes += 1
        if check != self.last:
            if check.status == "ok":
                log.info("slack health: ok", extra={"detail": check.detail})
            elif check.blocking:
                log.error("slack health: the bot cannot serve", extra={"detail": check.detail})
            else:
                log.warning("slack health: degraded", extra={"detail": check.detail})
        self.last = check

    async def check(self) -> Check:
        """The last `auth.test` and, in Socket Mode, the connection as it is now."""
        base = self.last
        if self.socket_connected is None:
            return base
        if await self.socket_connected():
            return Check(base.status, f"{base.detail}; Socket Mode connected", base.blocking)
        return Check("degraded", f"{base.detail}; Socket Mode not connected", base.blocking)

    async def start(self, first_within: float = FIRST_CHECK_SECONDS) -> None:
        """The first `auth.test` (waited for at most `first_within` seconds), then the background task."""
        try:
            await asyncio.wait_for(self.probe(), first_within)
        except TimeoutError:
            self._remember(Check("degraded", f"auth.test: no answer within {first_within:g} s"))
        self._task = asyncio.create_task(self._run(), name="slack-health")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(
                self._interval if self.last.status == "ok" else self._retry_interval
            )
            await self.probe()


def call_check(outcome: str) -> Check:
    """What one Zuora exchange's outcome (its HTTP status, or `timeout`/`connection`/`malformed`) says."""
    if not outcome.isdigit():
        reason = {"connection": "no connection", "malformed": "unreadable answer"}.get(
            outcome, outcome
        )
        return Check("degraded", f"last call: {reason}")
    status = int(outcome)
    if status == 401:
        return Check("degraded", "last call: token refused (HTTP 401)")
    if status == 429:
        return Check("degraded", "last call: rate limited (HTTP 429)")
    if status >= 500:
        return Check("degraded", f"last call: HTTP {status}")
    return Check("ok", f"last call: HTTP {status}")  # a refusal (400, 403, 404) is Zuora answering


class ZuoraHealth:
    """The last token request and the last call, as the client reports them."""

    def __init__(self) -> None:
        self.token: Check | None = None
        self.call: Check | None = None

    def observe(self, operation: str, outcome: str, seconds: float) -> None:
        """A `CallObserver` of the Zuora client: one call per exchange."""
        if operation != TOKEN_OPERATION:
            self.call = call_check(outcome)

    def tokens(self, source: TokenSource) -> TokenSource:
        """`source`, reporting here how each token request ended."""
        return _ObservedTokens(source, self)

    def check(self) -> Check:
        if self.token is None and self.call is None:
            return Check("ok", "no call yet")
        problems = [c.detail for c in (self.token, self.call) if c is not None and c.status != "ok"]
        if problems:
            return Check("degraded", "; ".join(problems))
        return self.call or Check("ok", "token issued, no call yet")


class _ObservedTokens:
    def __init__(self, source: TokenSource, health: ZuoraHealth) -> None:
        self._source = source
        self._health = health

    async def get(self) -> str:
        try:
            token = await self._source.get()
        except ZuoraAuthenticationError:
            self._health.token = Check(
                "degraded", "token refused: check the OAuth client id/secret"
            )
            raise
        except ZuoraTimeoutError:
            self._health.token = Check("degraded", "token request: timeout")
            raise
        except ZuoraError as error:
            answer = f"HTTP {error.status}" if error.status is not None else "no answer"
            self._health.token = Check("degraded", f"token request: {answer}")
            raise
        self._health.token = Check("ok", "token ok")
        return token

    async def invalidate(self, token: str) -> None:
        await self._source.invalidate(token)


class Health:
    """The whole answer of `/healthz`."""

    def __init__(
        self,
        *,
        slack: SlackHealth,
        zuora: ZuoraHealth,
        serving: Callable[[], bool],
        redis: RedisHealth | None = None,
    ) -> None:
        self.slack = slack
        self.zuora = zuora
        self.redis = redis
        self._serving = serving

    async def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body)."""
        checks = {
            "slack": await self.slack.check(),
            "zuora": self.zuora.check(),
            "redis": self.redis.check() if self.redis is not None else NOT_CONFIGURED,
        }
        body: dict[str, Any] = {"checks": {name: c.as_json() for name, c in checks.items()}}
        if not self._serving():
            return 503, {"status": "starting", **body}
        degraded = any(c.status == "degraded" for c in checks.values())
        blocked = any(c.blocking for c in checks.values())
        return (503 if blocked else 200), {"status": "degraded" if degraded else "ok", **body}
