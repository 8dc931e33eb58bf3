"""The running bot. `build(settings)` makes every component, fully built and immutable; `Runtime` starts and
stops them: the web server, the Socket Mode connection, the watch, the job cards' pollers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_app, build_slack_client
from bot.card_thread import CardThreads
from bot.config import Settings
from bot.coordination import Store, coordination_from
from bot.env_view import EnvironmentView
from bot.health import Health, RedisHealth, SlackHealth, ZuoraHealth
from bot.home import HomeTab
from bot.job_cards import JobCards
from bot.leadership import Leadership
from bot.listeners.context import ListenerContext
from bot.metrics import Metrics
from bot.operations import Operations
from bot.permissions import Permissions, Profile
from bot.refresh_form import RefreshForms
from bot.reminders import Reminders
from bot.request_gate import SharedReplayWindow
from bot.server import EVENTS_PATH, HttpServer
from bot.shared_cards import SharedCards
from bot.slack_surface import SlackSurface
from bot.watch import JobWatch
from bot.zuora.auth import OAuthClientCredentials, TokenObserver
from bot.zuora.client import ZuoraClient
from bot.zuora.http_client import ZuoraHttpClient
from bot.zuora.responses import deadline_for
from bot.zuora.retry import RetryPolicy

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

__all__ = ["EVENTS_PATH", "Components", "Runtime", "build", "secrets_of", "zuora_auth"]

log = logging.getLogger(__name__)

DRAIN_SLACK_SECONDS = 15.0  # time a finished Zuora call may need to reach Slack at shutdown

Now = Callable[[], datetime]


def zuora_http_client(settings: Settings) -> httpx.AsyncClient:
    """The client of every Zuora call; its connection pool is built by the first one."""
    timeout = httpx.Timeout(
        settings.zuora_timeout_seconds, connect=min(10.0, settings.zuora_timeout_seconds)
    )
    return ZuoraHttpClient(
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=settings.zuora_max_connections,
            max_keepalive_connections=settings.zuora_max_connections,
        ),
        follow_redirects=False,
    )


def zuora_auth(
    settings: Settings, http: httpx.AsyncClient, observer: TokenObserver | None = None
) -> OAuthClientCredentials:
    """The OAuth client of the bot's Zuora user (the bot and `check --online` alike)."""
    return OAuthClientCredentials(
        http=http,
        base_url=settings.zuora_base_url,
        client_id=settings.zuora_client_id.get_secret_value(),
        client_secret=settings.zuora_client_secret,
        entity_id=settings.zuora_entity_id,
        observer=observer,
    )


def secrets_of(settings: Settings) -> Iterable[str]:
    """Every secret value in the settings, for the log redactor."""
    for value in (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.zuora_client_secret,
        settings.zuora_client_id,
    ):
        if value is not None:
            yield value.get_secret_value()


@dataclass(slots=True)
class Readiness:
    """Whether the bot serves requests yet (and still): the one piece of state that changes after build."""

    serving: bool = False


@dataclass(frozen=True, slots=True)
class Components:
    """Everything the bot is made of, built once."""

    settings: Settings
    metrics: Metrics
    http: httpx.AsyncClient
    zuora: ZuoraClient
    slack: AsyncWebClient
    view: EnvironmentView
    cards: JobCards
    operations: Operations
    listeners: ListenerContext
    app: AsyncApp
    server: HttpServer
    readiness: Readiness
    health: Health
    watch: JobWatch | None  # only with SANDBOX_WATCH_ENVIRONMENTS and a notification channel
    store: Store  # what the replicas share: in process, or Redis (SANDBOX_REDIS_URL)
    leadership: Leadership | None  # with Redis: which replica watches and keeps the cards current


# The leader's lease: renewed every third of it, so a dead leader is replaced within about 1⅓ of it; at most
# MAX_LEASE seconds (the cards other replicas posted wait for the leader's next renewal to be adopted), never
# more than the watch interval (section 9: a dead leader is replaced within two watch intervals).
MAX_LEASE = 15.0
REMINDER_CLAIM_TTL = (
    45 * 86400.0
)  # a reminder is claimed for longer than any job is scheduled ahead


def build(settings: Settings, *, now: Now = lambda: datetime.now(UTC)) -> Components:
    """Build the bot from its settings. `now` is the time of day for rules about times (a refresh must be in
    the future, confirmations expire, a scheduled job is followed until its time); tests give the Zuora
    simulator's clock."""
    if settings.slack_bot_token is None:
        raise ValueError("SLACK_BOT_TOKEN is required")  # validated by load_settings
    if not settings.socket_mode and settings.slack_signing_secret is None:
        # Never serve /slack/events unverified, however the settings were built.
        raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET")
    metrics = Metrics()
    zuora_health = ZuoraHealth()

    def observe(operation: str, outcome: str, seconds: float) -> None:
        metrics.observe_zuora(operation, outcome, seconds)
        zuora_health.observe(operation, outcome, seconds)

    http = zuora_http_client(settings)
    zuora = ZuoraClient(
        base_url=settings.zuora_base_url,
        auth=zuora_health.tokens(zuora_auth(settings, http, metrics.observe_token)),
        http=http,
        entity_id=settings.zuora_entity_id,
        gzip_requests=settings.zuora_gzip_requests,
        max_concurrent=settings.zuora_max_connections,
        observer=observe,
    )
    slack = build_slack_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)

    async def members(group: str) -> list[str]:
        response = await slack.usergroups_users_list(usergroup=group, include_disabled=False)
        return [str(user) for user in response.get("users") or []]

    async def profile(user_id: str) -> Profile:
        user = (await slack.users_info(user=user_id)).get("user") or {}
        return Profile(
            team_id=user.get("team_id"),
            guest=bool(user.get("is_restricted") or user.get("is_ultra_restricted")),
            stranger=bool(user.get("is_stranger")),
            deleted=bool(user.get("deleted")),
            bot=bool(user.get("is_bot")),
        )

    async def home_team() -> str:
        return str((await slack.auth_test())["team_id"])

    permissions = Permissions(
        users=settings.sandbox_allowed_users,
        usergroups=settings.sandbox_allowed_usergroups,
        lookup=members,
        viewer_users=settings.sandbox_viewer_users,
        viewer_usergroups=settings.sandbox_viewer_usergroups,
        profile=profile,
        home_team=home_team,
        access_help=settings.sandbox_access_help,
    )
    # Coordination: in process (one replica), or in Redis (any number with the same settings: section 9).
    redis_url = settings.sandbox_redis_url
    store = coordination_from(
        redis_url.get_secret_value() if redis_url else None, settings.sandbox_redis_prefix
    )
    replicas = redis_url is not None
    leadership: Leadership | None = None  # made once the cards are, below

    def leading() -> bool:
        return leadership is None or leadership.leading

    operations = Operations(
        zuora=zuora, permissions=permissions, aliases=settings.aliases, now=now, store=store
    )
    view = EnvironmentView(zuora)
    surface = SlackSurface(slack, metrics)
    cards = JobCards(
        slack=surface,
        view=view,
        notify_channel=settings.sandbox_notify_channel,
        aliases=settings.aliases,
        poll_seconds=settings.sandbox_poll_seconds,
        now=now,
        on_given_up=metrics.deliveries_given_up.inc,
        notify_mention=settings.sandbox_notify_mention,
        shared=SharedCards(store) if replicas else None,
        leading=leading,
    )
    if replicas:
        # The lease lasts a watch interval, renewed every third of it: a dead leader is replaced within
        # about one and a third intervals; each renewal, the leader adopts what the others follow.
        leadership = Leadership(
            store, ttl=min(settings.sandbox_watch_seconds, MAX_LEASE), while_leading=cards.adopt
        )
    metrics.count_followed(lambda: len(cards.following))
    home = HomeTab(
        permissions=permissions,
        view=view,
        slack=surface,
        aliases=settings.aliases,
        max_age=settings.sandbox_poll_seconds,
        now=now,
    )
    forms = RefreshForms(
        operations=operations,
        permissions=permissions,
        view=view,
        slack=surface,
        cards=cards,
        aliases=settings.aliases,
        notify_channel=settings.sandbox_notify_channel,
        max_age=settings.sandbox_poll_seconds,
        now=now,
    )
    forms.home = home
    listeners = ListenerContext(
        operations=operations,
        cards=cards,
        slack=surface,
        metrics=metrics,
        home=home,
        forms=forms,
    )
    signing = settings.slack_signing_secret
    app = build_app(
        metrics=metrics,
        client=slack,
        signing_secret=None
        if settings.socket_mode or signing is None
        else signing.get_secret_value(),
        ctx=listeners,
        replays=SharedReplayWindow(store) if replicas else None,
    )
    watch = None
    if settings.sandbox_watch_environments and settings.sandbox_notify_channel:
        # Reminders before the scheduled refreshes of the watched environments, unless turned off.
        reminders = (
            Reminders(
                threads=CardThreads(slack, metrics),
                leads=settings.sandbox_remind_before,
                now=now,
                mention_ids=settings.sandbox_notify_mention,
                view=view,
                metrics=metrics,
                claim=(lambda key: store.claim(key, REMINDER_CLAIM_TTL)) if replicas else None,
            )
            if settings.sandbox_remind_before
            else None
        )
        watch = JobWatch(
            zuora=zuora,
            view=view,
            cards=cards,
            targets=settings.sandbox_watch_environments,
            aliases=dict(settings.aliases),
            interval=settings.sandbox_watch_seconds,
            reminders=reminders,
            leading=leading,
        )
    readiness = Readiness()
    health = Health(
        slack=SlackHealth(slack.auth_test),
        zuora=zuora_health,
        serving=lambda: readiness.serving,
        redis=RedisHealth(store.ping, store.where) if replicas else None,
    )
    server = HttpServer(
        app=None if settings.socket_mode else app,
        signing_secret=None if signing is None else signing.get_secret_value(),
        metrics=metrics,
        ready=lambda: readiness.serving,
        health=health,
        acks=listeners.acks,
    )
    return Components(
        settings=settings,
        metrics=metrics,
        http=http,
        zuora=zuora,
        slack=slack,
        view=view,
        cards=cards,
        operations=operations,
        listeners=listeners,
        app=app,
        server=server,
        readiness=readiness,
        health=health,
        watch=watch,
        store=store,
        leadership=leadership,
    )


def _load_zuora_models() -> None:
    """What only Zuora calls need, pydantic with the models' validators and tenacity: about a third of a bare
    Bolt app's start-up, loaded once the bot serves (in a thread, so that requests arriving meanwhile are
    still served)."""
    import tenacity  # noqa: F401  (the retry loop's, imported by the first call otherwise)

    from bot.zuora.models import build_validators

    build_validators()


def _log_a_failed_load(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        # The first Zuora answer meets the same error again, and is reported as one it could not read.
        log.error("the Zuora models could not be loaded", exc_info=error)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,  # None: settings.host (HOST)
        now: Now = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.host = settings.host if host is None else host
        self.components = build(settings, now=now)
        self._socket: AsyncSocketModeHandler | None = None
        self._models_loaded: asyncio.Task[None] | None = None

    # -- what tests, the demo and the benchmarks look at ---------------------------------------------------------

    @property
    def metrics(self) -> Metrics:
        return self.components.metrics

    @property
    def cards(self) -> JobCards:
        return self.components.cards

    @property
    def watch(self) -> JobWatch | None:
        return self.components.watch

    @property
    def operations(self) -> Operations:
        return self.components.operations

    @property
    def health(self) -> Health:
        return self.components.health

    @property
    def port(self) -> int | None:
        return self.components.server.port

    @property
    def ready(self) -> bool:
        return self.components.readiness.serving

    @ready.setter
    def ready(self, value: bool) -> None:
        self.components.readiness.serving = value

    @property
    def events_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}{EVENTS_PATH}"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        parts = self.components
        await parts.listeners.slack.open()  # one kept-alive HTTP session for the Slack calls
        await parts.server.start(self.host, self.settings.port)
        if self.settings.socket_mode:
            assert self.settings.slack_app_token is not None
            # Loaded only in Socket Mode: an HTTP-mode bot starts without the WebSocket client.
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(
                parts.app, self.settings.slack_app_token.get_secret_value()
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            parts.health.slack.socket_connected = self._socket.client.is_connected
        await parts.health.slack.start()  # the first auth.test, then one every few minutes
        if parts.health.redis is not None:
            await parts.health.redis.start()
        if parts.leadership is not None:
            await parts.leadership.start()
        if parts.watch is not None:
            parts.watch.start()
        self.ready = True
        self._models_loaded = asyncio.create_task(
            asyncio.to_thread(_load_zuora_models), name="zuora-models-load"
        )
        self._models_loaded.add_done_callback(_log_a_failed_load)
        log.info(
            "sandbox-bot ready",
            extra={"mode": "socket" if self.settings.socket_mode else "http", "port": self.port},
        )

    async def zuora_models_loaded(self) -> None:
        """Wait until the Zuora models are loaded (started by `start`), whether or not that worked."""
        if self._models_loaded is not None:
            await asyncio.wait([self._models_loaded])

    async def stop(self, *, drain_seconds: float | None = None) -> None:
        """Stop taking requests, let the ones in progress finish (a cancel on its way to Zuora is answered and
        recorded, not cut off), then end the watch and the pollers and close the connections. A request still
        in progress after `drain_seconds` (by default as long as the slowest Zuora call may take) is cut short,
        and its user told so."""
        parts = self.components
        self.ready = False
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        await parts.server.stop()
        await parts.health.slack.stop()
        await self._drain(drain_seconds)
        if parts.watch is not None:
            await parts.watch.stop()
        await parts.cards.close()
        if parts.leadership is not None:
            await (
                parts.leadership.stop()
            )  # another replica takes over at once, not after the lease expires
        if parts.health.redis is not None:
            await parts.health.redis.stop()
        await parts.store.close()
        await parts.listeners.slack.close()
        await parts.http.aclose()
        # A thread cannot be cut short: it ends by itself, within a fraction of a second.
        await self.zuora_models_loaded()

    async def _drain(self, seconds: float | None) -> None:
        """Wait for the replies in progress, new ones included, within a budget that covers a slow Zuora
        call and the Slack side after it (or `seconds`); then cut short the ones still going."""
        in_flight = self.components.listeners.in_flight
        loop = asyncio.get_running_loop()
        if seconds is None:
            # The longest a call can take: retries start for up to the policy's deadline, and the last attempt
            # then has its own whole-exchange deadline; then the Slack side of the answer.
            seconds = (
                RetryPolicy().deadline + deadline_for(self.components.http) + DRAIN_SLACK_SECONDS
            )
        deadline = loop.time() + seconds
        while in_flight and (remaining := deadline - loop.time()) > 0:
            log.info("waiting for requests in progress", extra={"requests": len(in_flight)})
            await asyncio.wait(set(in_flight), timeout=remaining)
        if in_flight:
            cut = await self.components.listeners.cut_short()
            log.warning("stopped with requests in progress", extra={"requests": cut})

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run_forever(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop cleanly: pollers and the watch end, connections close."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stopping.set)
        await self.start()
        try:
            await stopping.wait()
            log.info("sandbox-bot stopping")
        finally:
            await self.stop()
