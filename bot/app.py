"""build_app: the Bolt AsyncApp with its listeners wired. Only wiring here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.listeners import actions, commands, views
from bot.listeners.context import ListenerContext
from bot.metrics import Metrics
from bot.request_gate import ReplayWindow

log = logging.getLogger(__name__)


def build_slack_client(token: str, api_url: str) -> AsyncWebClient:
    """Slack Web API client with retries for connection errors and 429s (slack_sdk retries neither 429 by
    default nor anything for Bolt's respond())."""
    return AsyncWebClient(
        token=token,
        base_url=api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        ],
    )


class _WithoutTokenNotice(logging.Filter):
    """Bolt's notices that the token it reads from SLACK_BOT_TOKEN is not used ("will be ignored" beside an
    authorize function, "will be unused" beside a client): the bot's token is its client's, on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "will be ignored" not in message and "will be unused" not in message


# After Slack has refused to say who the bot is, requests are refused without asking again for this long: a
# burst of commands while the token is revoked does not queue behind one auth.test after another.
IDENTITY_RETRY_SECONDS = 5.0


class OneIdentity(AsyncAuthorize):
    """The bot's one identity, from one `auth.test` for the life of the process. Bolt's default for a single
    workspace calls auth.test for every request that arrives before the first call has answered: a burst of
    100 commands at start made 100 calls, and every ack waited for one. A subclass of Bolt's `AsyncAuthorize`
    rather than a function: Bolt calls it as it is, without building the arguments of a function for it on
    every request."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        retry_after: float = IDENTITY_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._client = client
        self._retry_after = retry_after
        self._clock = clock
        self._known: AuthorizeResult | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, **_: Any) -> AuthorizeResult | None:
        """None while Slack will not confirm the bot token (`auth.test` answers an error): Bolt then tells the
        user (`blocks.SLACK_REJECTS_THE_BOT`) and the request goes no further."""
        if self._known is None:
            async with self._lock:
                if self._known is None:
                    if self._failed_recently():
                        return None
                    try:
                        response = await self._client.auth_test()
                    except SlackApiError as error:
                        self._failed_at = self._clock()
                        log.error(
                            "Slack did not confirm the bot token; requests are refused",
                            extra={"error": error.response.get("error")},
                        )
                        return None
                    self._known = AuthorizeResult.from_auth_test_response(
                        auth_test_response=response, bot_token=self._client.token
                    )
        return self._known

    def _failed_recently(self) -> bool:
        return self._failed_at is not None and self._clock() - self._failed_at < self._retry_after


class _OnceOnly(AsyncMiddleware):
    """A request Slack delivers again (its retries, a replay inside the signing window) is answered 200 and not
    acted on: in HTTP mode and Socket Mode alike. A middleware class, so that Bolt runs it without building
    a listener's arguments for it on every request."""

    def __init__(self, window: ReplayWindow, metrics: Metrics) -> None:
        self._window = window
        self._metrics = metrics

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # Bolt's name for it
    ) -> BoltResponse:
        # HTTP mode: the raw body, as signed; Socket Mode has none (raw_body ""), only the parsed payload.
        if await self._window.first_time(req.raw_body or req.body):
            return await next()
        log.info("duplicate delivery ignored", extra={"type": req.body.get("type") or "command"})
        self._metrics.duplicate_deliveries.inc()
        return BoltResponse(status=200, body="")


def build_app(
    *,
    client: AsyncWebClient,
    signing_secret: str | None,
    ctx: ListenerContext,
    metrics: Metrics,
    replays: ReplayWindow | None = None,
) -> AsyncApp:
    """`signing_secret` None means Socket Mode, where requests come over the app's own WebSocket, unsigned."""
    window = replays or ReplayWindow()
    bolt_log = logging.getLogger("slack_bolt")
    quiet = _WithoutTokenNotice()
    bolt_log.addFilter(
        quiet
    )  # the token is the client's, on purpose: Bolt's notice would only confuse
    app = AsyncApp(
        # Named here: without a name Bolt finds one with inspect.stack(), a tenth of a second at start.
        name="sandbox-bot",
        client=client,
        # Bolt takes AsyncAuthorize instances as they are; its hint names only functions never returning None.
        authorize=OneIdentity(client),  # type: ignore[arg-type]
        signing_secret=signing_secret,
        request_verification_enabled=signing_secret is not None,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
        logger=bolt_log,
        user_facing_authorize_error_message=blocks.SLACK_REJECTS_THE_BOT,
    )
    bolt_log.removeFilter(quiet)

    app.use(_OnceOnly(window, metrics))

    commands.register(app, ctx)
    actions.register(app, ctx)
    views.register(app, ctx)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error(
            "unhandled error in a Slack listener", exc_info=error, extra={"type": body.get("type")}
        )

    return app
