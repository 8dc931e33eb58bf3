"""A local Slack: Web API, response_url, Socket Mode, and signed requests to the bot.

    async with SlackEmulator(bot_token="xoxb-1", app_token="xapp-1", signing_secret="s") as emu:
        client = AsyncWebClient(token="xoxb-1", base_url=emu.api_url)
        await emu.send_command("http://127.0.0.1:3000/slack/events", "cancel uat 42", "U1", "C1")
        card = await emu.wait_for_message("C1", lambda m: "cancel" in m.text)

The emulator keeps the workspace state (`workspace`: channels, users, user groups, messages with
their edit history, every call) and every user's App Home view and modal stack, so that tests, the
demo console and benchmarks can look at it.

Views, as a user sees and uses them:

    await emu.send_app_home_opened(events_url, "U1")            # the bot publishes the Home tab
    home = await emu.wait_for_home("U1")
    await emu.send_view_action(events_url, "U1", "sandbox_refresh_open")   # a button on it
    modal = await emu.wait_for_modal("U1", lambda v: v.callback_id == "sandbox_refresh_form")
    result = await emu.send_view_submission(events_url, "U1", {"env": "staging"})
    assert result.response_action == "update" and result.stack[-1].title == "Confirm"

Every trigger_id in a payload is valid once, for `trigger_seconds` (3 s, as Slack) on the
`monotonic` clock.
"""

# ruff: noqa: ASYNC109, S107  # timeouts are part of the test API; default tokens are fakes

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from bot.sim.slack_payloads import HomeTab, Payloads, view_action
from bot.sim.slack_response_url import METHOD as RESPONSE_URL_METHOD
from bot.sim.slack_response_url import ResponseUrls
from bot.sim.slack_sender import (
    Delivery,
    SignMode,
    block_actions_body,
    command_body,
    event_body,
    post,
    sign,
    signed_headers,
)
from bot.sim.slack_socket import SocketHub
from bot.sim.slack_state import (
    DEFAULT_TZ,
    JSON,
    Channel,
    Guest,
    Identity,
    Message,
    RecordedCall,
    TokenKind,
    User,
    Workspace,
)
from bot.sim.slack_validate import ContentError, check_blocks, check_text, check_view
from bot.sim.slack_views import (
    STATE_FIELDS,
    TRIGGER_SECONDS,
    TROUBLE,
    Triggers,
    ValueKey,
    View,
    ViewError,
    Views,
)
from bot.sim.slack_webapi import MODAL, Faults, WebApi

T = TypeVar("T")
# How long the test-facing waits below wait by default: they return as soon as the condition holds, so a
# generous bound costs nothing when all is well and keeps a busy machine from failing a test.
WAIT_SECONDS = 20.0

__all__ = [
    "Channel",
    "Delivery",
    "Message",
    "RecordedCall",
    "SignMode",
    "SlackEmulator",
    "Submission",
    "User",
    "View",
]


@dataclass(frozen=True)
class Submission:
    """What became of a view submission: what was sent, the bot's answer, and the modals after it."""

    sent: bool  # False: Slack's client kept it (a required input empty); nothing reached the bot
    payload: JSON  # the view_submission payload ({} when not sent)
    ack: JSON | None  # the bot's answer as JSON ({} for an empty 200; None: no usable answer)
    response_action: str | None
    errors: dict[str, str]  # shown under the inputs, by block_id (the bot's, or the client's own)
    problem: str | None  # what Slack shows at the top of the modal instead (no answer, a bad one)
    detail: str | None  # why the answer was not usable, for a test's message
    stack: list[View]  # the user's modals afterwards, root first
    delivery: Delivery | None = None  # the HTTP exchange (None in Socket Mode or when not sent)

    @property
    def closed(self) -> bool:
        """Whether no modal of the user is open any more."""
        return not self.stack

    @property
    def top(self) -> View | None:
        return self.stack[-1] if self.stack else None


class SlackEmulator:
    def __init__(
        self,
        bot_token: str = "xoxb-emulator",
        app_token: str | None = None,
        signing_secret: str = "emulator-signing-secret",
        *,
        team_id: str = "T0EMULATOR",
        team_domain: str = "emulator",
        app_id: str = "A0SANDBOT",
        bot_user_id: str = "U0SANDBOT",
        bot_id: str = "B0SANDBOT",
        bot_name: str = "sandbox-bot",
        verification_token: str = "emulator-verification-token",
        strict_channels: bool = False,
        clock: Callable[[], float] = time.time,
        trigger_seconds: float = TRIGGER_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`strict_channels`: unknown channel IDs (and undeclared user IDs) give `channel_not_found`
        instead of being created. `clock` drives message ts and response_url expiry (signatures
        always use real time). A trigger_id may be exchanged once within `trigger_seconds` on the
        `monotonic` clock (3 s, as Slack; widen it for a busy machine, or pass a clock to step)."""
        self.signing_secret = signing_secret
        self.app_id = app_id
        self.verification_token = verification_token
        self.workspace = Workspace(team_id=team_id, team_domain=team_domain, clock=clock)
        self.workspace.users[bot_user_id] = User(bot_user_id, bot_name, is_bot=True)
        self._triggers = Triggers(trigger_seconds, monotonic)
        self._views = Views(self.workspace, self._triggers)
        self.bot = Identity("bot", bot_user_id, bot_id=bot_id, app_id=app_id, name=bot_name)
        self._tokens: dict[str, Identity] = {bot_token: self.bot}
        if app_token is not None:
            self._tokens[app_token] = Identity("app", bot_user_id, app_id=app_id, name=bot_name)
        self._faults = Faults()
        self._socket = SocketHub(app_id, self.workspace.notify)
        self._web_api = WebApi(
            self.workspace,
            self._tokens,
            self._faults,
            strict_channels=strict_channels,
            issue_socket_url=lambda: self._socket.issue_url(self._ws_base()),
            views=self._views,
        )
        self._response_urls = ResponseUrls(self.workspace, self.bot, self._faults, self._base)
        self._payloads = Payloads(
            self.workspace,
            app_id,
            verification_token,
            self._response_urls,
            self._triggers,
            self.bot,
        )
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._host = ""
        self._port = 0
        self._extensions: list[Callable[[web.Application], None]] = []

    # ---- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._web_api.handle)
        app.router.add_post("/{kind:commands|actions}/{rest:.+}", self._response_urls.handle)
        app.router.add_get("/link/", self._socket.handle)
        for add_routes in self._extensions:
            add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self._host, self._port = host, int(runner.addresses[0][1])
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self._socket.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/"

    @property
    def api_url(self) -> str:
        """The AsyncWebClient `base_url` (the bot's SLACK_API_URL)."""
        return f"{self.base_url}api/"

    def _base(self) -> str:
        return self.base_url

    def _ws_base(self) -> str:
        return f"ws://{self._host}:{self.port}/"

    def extend(self, add_routes: Callable[[web.Application], None]) -> None:
        """Have `add_routes` add routes and hooks to the emulator's web app when it starts (the demo
        console in `slack_console` serves next to the Web API this way)."""
        if self._runner is not None:
            raise RuntimeError("extend the emulator before starting it")
        self._extensions.append(add_routes)

    # ---- workspace setup

    def add_token(
        self, token: str, user_id: str, *, bot_id: str | None = None, name: str = ""
    ) -> None:
        """Register another bot (`bot_id` given) or user token, e.g. to test `cant_update_message`."""
        kind: TokenKind = "bot" if bot_id else "user"
        self._tokens[token] = Identity(kind, user_id, bot_id=bot_id, name=name)
        self.workspace.users.setdefault(
            user_id, User(user_id, name or user_id.lower(), bool(bot_id))
        )

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        team_id: str | None = None,
        guest: Guest | None = None,
        real_name: str | None = None,
        tz: str = DEFAULT_TZ,
        deleted: bool = False,
        is_bot: bool = False,
        stranger: bool | None = None,
    ) -> User:
        """A user as `users.info` shows them. `team_id`: another team's (Slack Connect; default the
        workspace's); `guest`: `"multi"` (multi-channel guest) or `"single"`; `stranger`: Slack's
        `is_stranger`, by default true for another team's user in no shared channel (one added with
        `members` holding them)."""
        user = User(
            user_id,
            name,
            is_bot=is_bot,
            team_id=team_id,
            guest=guest,
            real_name=real_name,
            tz=tz,
            deleted=deleted,
            stranger=stranger,
        )
        self.workspace.users[user_id] = user
        return user

    def dm_channel(self, user_id: str) -> str:
        """The ID (`D…`) of the bot's direct message channel with the user, made if need be: where
        `chat.postMessage` to their user ID lands and the App Home's Messages tab shows."""
        channel = self.workspace.dm_channel(user_id, self.bot.user_id)
        assert channel is not None  # made on demand
        return channel.id

    @property
    def trigger_seconds(self) -> float:
        """How long a trigger_id may be exchanged after the payload that carried it was made."""
        return self._triggers.seconds

    @trigger_seconds.setter
    def trigger_seconds(self, seconds: float) -> None:
        self._triggers.seconds = seconds

    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_private: bool = False,
        members: list[str] | None = None,
    ) -> Channel:
        channel = Channel(
            channel_id,
            name or channel_id.lower(),
            is_private,
            None if members is None else set(members),
        )
        self.workspace.channels[channel_id] = channel
        return channel

    def set_usergroup(self, group_id: str, users: list[str]) -> None:
        self.workspace.usergroups[group_id] = list(users)

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = 1,
        count: int = 1,
    ) -> None:
        """Fail the next `count` calls of `method` (a Web API method or `"response_url"`).

        `status` defaults to 429 (with `Retry-After`) for `ratelimited`, otherwise 200 like
        Slack's `{"ok": false}` errors; pass 500 or 503 for a server error."""
        if method not in self._web_api.methods and method != RESPONSE_URL_METHOD:
            raise ValueError(f"the emulator does not implement {method!r}")
        self._faults.add(method, error, status, retry_after, count)

    def slow(self, method: str, seconds: float) -> None:
        """Every call of `method` waits `seconds` before it is answered (0: no more)."""
        if method not in self._web_api.methods:
            raise ValueError(f"the emulator does not implement {method!r}")
        self._faults.delays[method] = seconds

    # ---- observation

    @property
    def calls(self) -> list[RecordedCall]:
        return self.workspace.calls

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [c for c in self.workspace.calls if c.method == method]

    def messages(
        self,
        channel: str | None = None,
        *,
        include_ephemeral: bool = True,
        include_deleted: bool = False,
    ) -> list[Message]:
        """Current messages (after updates and deletes), oldest first. A user ID as `channel` means
        the bot's direct message channel with them."""
        if channel is not None:
            channel = self.workspace.resolve(channel)
        return self.workspace.messages(
            channel, include_ephemeral=include_ephemeral, include_deleted=include_deleted
        )

    def message(self, channel: str, ts: str) -> Message | None:
        return self.workspace.find(self.workspace.resolve(channel), ts, ephemeral=None)

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = WAIT_SECONDS) -> T:
        """Wait until `predicate()` returns something truthy (re-checked on every change)."""
        return await self.workspace.wait_for(predicate, timeout, "the predicate")

    async def wait_for_call(
        self,
        method: str,
        where: Callable[[RecordedCall], bool] | None = None,
        *,
        since: int = 0,
        timeout: float = WAIT_SECONDS,
    ) -> RecordedCall:
        """The first call of `method` (from index `since` of `calls`) that matches `where`."""

        def find() -> RecordedCall | None:
            return next(
                (
                    c
                    for c in self.workspace.calls[since:]
                    if c.method == method and (where is None or where(c))
                ),
                None,
            )

        return await self.workspace.wait_for(find, timeout, f"a {method} call")

    async def wait_for_message(
        self,
        channel: str | None = None,
        where: Callable[[Message], bool] | None = None,
        *,
        timeout: float = WAIT_SECONDS,
    ) -> Message:
        """The newest current message in `channel` (a user ID: their DM with the bot) that matches
        `where`."""

        def find() -> Message | None:
            where_to = self.workspace.resolve(channel) if channel is not None else None
            candidates = reversed(self.workspace.messages(where_to))
            return next((m for m in candidates if where is None or where(m)), None)

        return await self.workspace.wait_for(
            find, timeout, f"a message in {channel or 'any channel'}"
        )

    # ---- response_url

    def new_response_url(self, channel_id: str, user_id: str) -> str:
        return self._response_urls.new(channel_id, user_id)

    # ---- signed HTTP requests to the bot

    def sign(self, body: bytes, timestamp: int) -> str:
        return sign(self.signing_secret, body, timestamp)

    def command_payload(
        self,
        text: str,
        user_id: str,
        channel_id: str,
        command: str = "/sandbox",
        *,
        response_url: str | None = None,
    ) -> dict[str, str]:
        """A slash command's fields, in Slack's order, with a fresh response_url by default."""
        return self._payloads.command(text, user_id, channel_id, command, response_url=response_url)

    async def send_command(
        self,
        events_url: str,
        text: str,
        user_id: str,
        channel_id: str,
        command: str = "/sandbox",
        *,
        response_url: str | None = None,
        sign_mode: SignMode = "valid",
        timestamp: int | None = None,
        timeout: float | None = 3.0,
    ) -> Delivery:
        """POST a slash command to the bot; a JSON or text answer is shown like Slack shows it."""
        fields = self.command_payload(text, user_id, channel_id, command, response_url=response_url)
        body = command_body(fields)
        headers = signed_headers(self.signing_secret, body, sign_mode, timestamp)
        status, answer, answer_headers, elapsed = await post(
            self._client(), events_url, body, headers, timeout
        )
        if status == 200:
            self._show_ack(channel_id, user_id, answer, fields["response_url"])
        return Delivery(
            status, answer, elapsed, answer_headers, fields["response_url"], dict(fields)
        )

    def block_action_payload(
        self,
        user_id: str,
        action_id: str,
        value: str | None,
        channel_id: str,
        message_ts: str | None = None,
        *,
        block_id: str | None = None,
        is_ephemeral: bool | None = None,
        response_url: str | None = None,
    ) -> JSON:
        """A block_actions payload for a button click (see `Payloads.block_actions`)."""
        return self._payloads.block_actions(
            user_id,
            action_id,
            value,
            channel_id,
            message_ts,
            block_id=block_id,
            is_ephemeral=is_ephemeral,
            response_url=response_url,
        )

    async def send_block_action(
        self,
        events_url: str,
        user_id: str,
        action_id: str,
        value: str | None,
        channel_id: str,
        message_ts: str | None = None,
        *,
        block_id: str | None = None,
        is_ephemeral: bool | None = None,
        response_url: str | None = None,
        sign_mode: SignMode = "valid",
        timestamp: int | None = None,
        timeout: float | None = 3.0,
    ) -> Delivery:
        """POST a button click (`payload=` form field) to the bot. Slack ignores the answer body."""
        payload = self.block_action_payload(
            user_id,
            action_id,
            value,
            channel_id,
            message_ts,
            block_id=block_id,
            is_ephemeral=is_ephemeral,
            response_url=response_url,
        )
        body = block_actions_body(payload)
        headers = signed_headers(self.signing_secret, body, sign_mode, timestamp)
        status, answer, answer_headers, elapsed = await post(
            self._client(), events_url, body, headers, timeout
        )
        return Delivery(status, answer, elapsed, answer_headers, payload["response_url"], payload)

    # ---- Socket Mode

    @property
    def socket_connections(self) -> int:
        return len(self._socket.connections)

    async def wait_for_socket(self, timeout: float = WAIT_SECONDS) -> None:
        await self.workspace.wait_for(
            lambda: len(self._socket.connections) > 0, timeout, "a Socket Mode connection"
        )

    async def socket_send_command(
        self,
        text: str,
        user_id: str,
        channel_id: str,
        command: str = "/sandbox",
        *,
        response_url: str | None = None,
        timeout: float = 3.0,
        fields: dict[str, str] | None = None,
    ) -> JSON:
        """Deliver a `slash_commands` envelope and return the client's ack. `fields`: exactly these (to
        deliver a payload again, as Slack does when an envelope was not acked in time)."""
        if fields is None:
            fields = self.command_payload(
                text, user_id, channel_id, command, response_url=response_url
            )
        ack = await self._socket.deliver(
            "slash_commands", dict(fields), accepts_response_payload=True, timeout=timeout
        )
        if isinstance(ack.get("payload"), dict):
            self._show_ack(channel_id, user_id, ack["payload"], fields["response_url"])
        return ack

    async def socket_send_block_action(
        self,
        user_id: str,
        action_id: str,
        value: str | None,
        channel_id: str,
        message_ts: str | None = None,
        *,
        block_id: str | None = None,
        is_ephemeral: bool | None = None,
        response_url: str | None = None,
        timeout: float = 3.0,
    ) -> JSON:
        """Deliver an `interactive` block_actions envelope and return the client's ack.

        Slack marks block_actions envelopes `accepts_response_payload: false`."""
        payload = self.block_action_payload(
            user_id,
            action_id,
            value,
            channel_id,
            message_ts,
            block_id=block_id,
            is_ephemeral=is_ephemeral,
            response_url=response_url,
        )
        return await self._socket.deliver(
            "interactive", payload, accepts_response_payload=False, timeout=timeout
        )

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's `disconnect` message to every client (they should reconnect)."""
        await self._socket.disconnect_all(reason)

    # ---- views: what a user sees

    def home_view(self, user_id: str) -> View | None:
        """The Home tab published for the user (`views.publish`), if any."""
        return self._views.homes.get(user_id)

    def modal_stack(self, user_id: str) -> list[View]:
        """The user's open modals, the root first and the one they see last."""
        return self._views.stack(user_id)

    def modal(self, user_id: str) -> View | None:
        """The modal the user sees now (the top of their stack), if any."""
        return self._views.top(user_id)

    def view(self, view_id: str) -> View | None:
        """An open modal or a published Home tab, by its `V…` ID."""
        return self._views.find(view_id)

    def views_changed(self, user_id: str) -> int:
        """The workspace version of the last change to the user's Home tab or modals (0: none)."""
        return self._views.changed_for.get(user_id, 0)

    async def wait_for_home(
        self,
        user_id: str,
        where: Callable[[View], bool] | None = None,
        *,
        timeout: float = WAIT_SECONDS,
    ) -> View:
        """The user's Home tab once one is published that matches `where`."""

        def find() -> View | None:
            home = self._views.homes.get(user_id)
            return home if home is not None and (where is None or where(home)) else None

        return await self.workspace.wait_for(find, timeout, f"a Home tab for {user_id}")

    async def wait_for_modal(
        self,
        user_id: str,
        where: Callable[[View], bool] | None = None,
        *,
        timeout: float = WAIT_SECONDS,
    ) -> View:
        """The modal the user sees, once it matches `where` (any open modal without one)."""

        def find() -> View | None:
            top = self._views.top(user_id)
            return top if top is not None and (where is None or where(top)) else None

        return await self.workspace.wait_for(find, timeout, f"a modal for {user_id}")

    async def wait_for_no_modal(self, user_id: str, *, timeout: float = WAIT_SECONDS) -> None:
        """Return once the user has no modal open."""
        await self.workspace.wait_for(
            lambda: not self._views.stack(user_id), timeout, f"{user_id}'s modals to close"
        )

    def enter_values(
        self, user_id: str, values: Mapping[ValueKey, Any], *, view_id: str | None = None
    ) -> View:
        """The user types and chooses in their modal (or the view `view_id`), without sending
        anything, as in Slack: by `action_id` or `(block_id, action_id)`, given as `state_entry`
        takes them (text, an option's value, `YYYY-MM-DD`, `HH:MM`, unix seconds, ...)."""
        view = self._users_view(user_id, view_id)
        self._views.enter(view, values)
        return view

    # ---- views: what a user does (signed HTTP and Socket Mode)

    def app_home_opened_payload(self, user_id: str, tab: HomeTab = "home") -> JSON:
        """The `event_callback` body of an `app_home_opened` event (with the Home view if any)."""
        return self._payloads.app_home_opened(user_id, tab, self._views.homes.get(user_id))

    async def send_app_home_opened(
        self,
        events_url: str,
        user_id: str,
        tab: HomeTab = "home",
        *,
        sign_mode: SignMode = "valid",
        timestamp: int | None = None,
        timeout: float | None = 3.0,
    ) -> Delivery:
        """POST the event a user opening the app's Home (or Messages) tab makes, as JSON."""
        payload = self.app_home_opened_payload(user_id, tab)
        return await self._post_event(events_url, payload, sign_mode, timestamp, timeout)

    async def socket_send_app_home_opened(
        self, user_id: str, tab: HomeTab = "home", *, timeout: float = 3.0
    ) -> JSON:
        """Deliver the event in an `events_api` envelope and return the client's ack."""
        payload = self.app_home_opened_payload(user_id, tab)
        return await self._socket.deliver(
            "events_api",
            payload,
            accepts_response_payload=False,
            timeout=timeout,
            extra={"retry_attempt": 0, "retry_reason": ""},
        )

    def shortcut_payload(self, user_id: str, callback_id: str) -> JSON:
        """A global shortcut's payload, as choosing it from the shortcuts menu sends it."""
        return self._payloads.shortcut(user_id, callback_id)

    async def send_shortcut(
        self,
        events_url: str,
        user_id: str,
        callback_id: str,
        *,
        sign_mode: SignMode = "valid",
        timestamp: int | None = None,
        timeout: float | None = 3.0,
    ) -> Delivery:
        """POST a global shortcut (`payload=` form field); its trigger_id opens a modal."""
        payload = self.shortcut_payload(user_id, callback_id)
        return await self._post_interaction(events_url, payload, sign_mode, timestamp, timeout)

    async def socket_send_shortcut(
        self, user_id: str, callback_id: str, *, timeout: float = 3.0
    ) -> JSON:
        payload = self.shortcut_payload(user_id, callback_id)
        return await self._socket.deliver(
            "interactive", payload, accepts_response_payload=False, timeout=timeout
        )

    def view_action_payload(
        self,
        user_id: str,
        action_id: str,
        value: Any = None,
        *,
        block_id: str | None = None,
        view_id: str | None = None,
    ) -> JSON:
        """block_actions for an element of the user's modal or, failing that, Home tab (or the view
        `view_id`): a button (`value` overrides its own), or a select, picker or radio button set
        to `value` first (as `enter_values` takes it; None: what it holds now)."""
        view = self._view_with(user_id, action_id, block_id, view_id)
        found = view.element(action_id, block_id)
        assert found is not None  # _view_with found it
        block, element = found
        entry: JSON | None = None
        if element.get("type") in STATE_FIELDS:
            if value is not None:
                self._views.enter(view, {(str(block["block_id"]), action_id): value})
            entry = view.state_values().get(str(block["block_id"]), {}).get(action_id)
        action = view_action(block, element, entry)
        if element.get("type") == "button" and value is not None:
            action["value"] = value
        return self._payloads.view_block_actions(user_id, view, action)

    async def send_view_action(
        self,
        events_url: str,
        user_id: str,
        action_id: str,
        value: Any = None,
        *,
        block_id: str | None = None,
        view_id: str | None = None,
        sign_mode: SignMode = "valid",
        timestamp: int | None = None,
        timeout: float | None = 3.0,
    ) -> Delivery:
        """POST block_actions from a view (see `view_action_payload`). Slack ignores the answer."""
        payload = self.view_action_payload(
            user_id, action_id, value, block_id=block_id, view_id=view_id
        )
        return await self._post_interaction(events_url, payload, sign_mode, timestamp, timeout)

    async def socket_send_view_action(
        self,
        user_id: str,
        action_id: str,
        value: Any = None,
        *,
        block_id: str | None = None,
        view_id: str | None = None,
        timeout: float = 3.0,
    ) -> JSON:
        payload = self.view_action_payload(
            user_id, action_id, value, block_id=block_id, view_id=view_id
        )
        return await self._socket.deliver(
            "interactive", payload, accepts_response_payload=False, timeout=timeout
        )

    async def send_view_submission(
        self,
        events_url: str,
        user_id: str,
        values: Mapping[ValueKey, Any] | None = None,
        *,
        sign_mode: SignMode = "valid",
        timestamp: int | None = None,
        timeout: float | None = 3.0,
    ) -> Submission:
        """The user fills in `values` (see `enter_values`) and presses the modal's submit button:
        POST view_submission and apply the bot's answer as Slack does (`response_action` errors,
        update, push, clear; none closes this view)."""

        async def send(payload: JSON) -> tuple[JSON | None, Delivery]:
            delivery = await self._post_interaction(
                events_url, payload, sign_mode, timestamp, timeout
            )
            return _ack_body(delivery), delivery

        return await self._submit(user_id, values, send)

    async def socket_send_view_submission(
        self,
        user_id: str,
        values: Mapping[ValueKey, Any] | None = None,
        *,
        timeout: float = 3.0,
    ) -> Submission:
        """As `send_view_submission`, in an `interactive` envelope that accepts a response payload."""

        async def send(payload: JSON) -> tuple[JSON | None, Delivery | None]:
            try:
                ack = await self._socket.deliver(
                    "interactive", payload, accepts_response_payload=True, timeout=timeout
                )
            except TimeoutError:
                return None, None
            answer = ack.get("payload", {})
            return (answer if isinstance(answer, dict) else None), None

        return await self._submit(user_id, values, send)

    async def close_modal(
        self,
        events_url: str,
        user_id: str,
        *,
        clear: bool = False,
        timeout: float | None = 3.0,
    ) -> list[View]:
        """The user closes the modal they see (its close button; `clear`: the whole stack, as the
        X does, and as `clear_on_close` makes it). With `notify_on_close`, POST view_closed.
        Returns the views closed."""

        async def send(payload: JSON) -> None:
            await self._post_interaction(events_url, payload, "valid", None, timeout)

        return await self._close(user_id, clear, send)

    async def socket_close_modal(
        self, user_id: str, *, clear: bool = False, timeout: float = 3.0
    ) -> list[View]:
        async def send(payload: JSON) -> None:
            await self._socket.deliver(
                "interactive", payload, accepts_response_payload=False, timeout=timeout
            )

        return await self._close(user_id, clear, send)

    # ---- views: internals

    def _users_view(self, user_id: str, view_id: str | None) -> View:
        view = self._views.find(view_id) if view_id else self._views.top(user_id)
        if view is None or view.user_id != user_id:
            raise ValueError(f"{user_id} has no {'view ' + view_id if view_id else 'modal'} open")
        return view

    def _view_with(
        self, user_id: str, action_id: str, block_id: str | None, view_id: str | None
    ) -> View:
        if view_id is not None:
            candidates = [self._users_view(user_id, view_id)]
        else:
            candidates = [v for v in (self.modal(user_id), self.home_view(user_id)) if v]
        for view in candidates:
            if view.element(action_id, block_id) is not None:
                return view
        raise ValueError(f"no view of {user_id} has an element {action_id!r}")

    async def _submit(
        self,
        user_id: str,
        values: Mapping[ValueKey, Any] | None,
        send: Callable[[JSON], Awaitable[tuple[JSON | None, Delivery | None]]],
    ) -> Submission:
        view = self._users_view(user_id, None)
        if values:
            self._views.enter(view, values)
        refused = view.client_errors()
        if refused:
            self._views.show_errors(view, refused)
            return Submission(False, {}, None, None, refused, None, None, self.modal_stack(user_id))
        payload = self._payloads.view_submission(user_id, view)
        answer, delivery = await send(payload)
        action, errors, detail = self._apply_answer(user_id, view, answer)
        problem = TROUBLE if detail is not None else None
        if problem is not None and view.open:
            self._views.show_errors(view, {}, problem)
        return Submission(
            True,
            payload,
            answer,
            action,
            errors,
            problem,
            detail,
            self.modal_stack(user_id),
            delivery,
        )

    def _apply_answer(
        self, user_id: str, view: View, answer: JSON | None
    ) -> tuple[str | None, dict[str, str], str | None]:
        """(response_action, errors shown, why the answer was not usable) for the bot's ack."""
        if answer is None:
            return None, {}, "no answer within 3 seconds, or not HTTP 200 with JSON"
        action = answer.get("response_action")
        if not view.open:
            return action, {}, None  # closed meanwhile (a views.open replaced it): nothing to do
        try:
            if action in (None, ""):
                self._views.close(user_id)
            elif action == "clear":
                self._views.close(user_id, clear=True)
            elif action == "errors":
                errors = _submission_errors(view, answer.get("errors"))
                self._views.show_errors(view, errors)
                return action, errors, None
            elif action == "update":
                self._views.update(view, check_view(answer.get("view"), MODAL))
            elif action == "push":
                body = check_view(answer.get("view"), MODAL)
                self._views.show_errors(view, {})
                self._views.push(user_id, body, self.bot.app_id, self.bot.bot_id)
            else:
                return action, {}, f"unknown response_action {action!r}"
        except ContentError as exc:
            return action, {}, f"{action}: {exc.error} {exc.details}"
        except ViewError as exc:
            return action, {}, f"{action}: {exc.error}"
        return action, {}, None

    async def _close(
        self, user_id: str, clear: bool, send: Callable[[JSON], Awaitable[None]]
    ) -> list[View]:
        top = self._users_view(user_id, None)
        cleared = clear or top.clear_on_close
        payload = self._payloads.view_closed(user_id, top, cleared) if top.notify_on_close else None
        closed = self._views.close(user_id, clear=cleared)
        if payload is not None:
            await send(payload)
        return closed

    async def _post_interaction(
        self,
        events_url: str,
        payload: JSON,
        sign_mode: SignMode,
        timestamp: int | None,
        timeout: float | None,
    ) -> Delivery:
        body = block_actions_body(payload)
        headers = signed_headers(self.signing_secret, body, sign_mode, timestamp)
        status, answer, answer_headers, elapsed = await post(
            self._client(), events_url, body, headers, timeout
        )
        return Delivery(status, answer, elapsed, answer_headers, None, payload)

    async def _post_event(
        self,
        events_url: str,
        payload: JSON,
        sign_mode: SignMode,
        timestamp: int | None,
        timeout: float | None,
    ) -> Delivery:
        body = event_body(payload)
        headers = signed_headers(
            self.signing_secret, body, sign_mode, timestamp, "application/json"
        )
        status, answer, answer_headers, elapsed = await post(
            self._client(), events_url, body, headers, timeout
        )
        return Delivery(status, answer, elapsed, answer_headers, None, payload)

    # ---- internals

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the emulator is not started")
        return self._session

    def _show_ack(
        self, channel_id: str, user_id: str, answer: str | JSON, response_url: str
    ) -> None:
        """Slack shows a slash command's immediate answer: JSON as a message, plain text as text."""
        if isinstance(answer, str):
            if not answer.strip():
                return
            try:
                decoded: Any = json.loads(answer)
            except ValueError:
                decoded = {"text": answer}
            answer = decoded if isinstance(decoded, dict) else {"text": answer}
        try:
            text = check_text(answer.get("text"))
            blocks = check_blocks(answer["blocks"]) if answer.get("blocks") else []
        except ContentError:
            return  # Slack shows the user an error instead; nothing lands in the channel
        if not text and not blocks:
            return
        message = self.workspace.add_message(
            Message(
                channel=channel_id,
                ts=self.workspace.next_ts(),
                user=self.bot.user_id,
                text=text,
                blocks=blocks,
                bot_id=self.bot.bot_id,
                app_id=self.bot.app_id,
                ephemeral_for=None if answer.get("response_type") == "in_channel" else user_id,
                source="ack",
            )
        )
        self._response_urls.adopt(response_url, message)


def _ack_body(delivery: Delivery) -> JSON | None:
    """The bot's answer to a view submission as Slack reads it: an empty 200 is `{}`; a JSON
    object is itself; anything else (another status, no answer, not JSON) is unusable."""
    if delivery.status != 200:
        return None
    if not delivery.body.strip():
        return {}
    try:
        decoded = json.loads(delivery.body)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _submission_errors(view: View, errors: Any) -> dict[str, str]:
    """`response_action: errors`: messages keyed by the block_id of an input block of the view."""
    if not isinstance(errors, dict) or not errors:
        raise ContentError("invalid_errors", ["errors must be an object of messages"])
    inputs = view.input_block_ids()
    for block_id, message in errors.items():
        if block_id not in inputs:
            raise ContentError("invalid_errors", [f"no input block {block_id!r} in the view"])
        if not isinstance(message, str) or not message:
            raise ContentError("invalid_errors", [f"the error of {block_id!r} must be text"])
    return dict(errors)
