"""A local Slack: Web API, response_url, Socket Mode, and signed requests to the bot.

    async with SlackEmulator(bot_token="xoxb-1", app_token="xapp-1", signing_secret="s") as emu:
        client = AsyncWebClient(token="xoxb-1", base_url=emu.api_url)
        await emu.send_command("http://127.0.0.1:3000/slack/events", "cancel uat 42", "U1", "C1")
        card = await emu.wait_for_message("C1", lambda m: "cancel" in m.text)

The emulator keeps the workspace state (`workspace`: channels, users, user groups, messages with
their edit history, every call) so that tests, the demo console and benchmarks can look at it.
"""

# ruff: noqa: ASYNC109, S107  # timeouts are part of the test API; default tokens are fakes

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from bot.sim.slack_payloads import Payloads
from bot.sim.slack_response_url import METHOD as RESPONSE_URL_METHOD
from bot.sim.slack_response_url import ResponseUrls
from bot.sim.slack_sender import (
    Delivery,
    SignMode,
    block_actions_body,
    command_body,
    post,
    sign,
    signed_headers,
)
from bot.sim.slack_socket import SocketHub
from bot.sim.slack_state import (
    JSON,
    Channel,
    Identity,
    Message,
    RecordedCall,
    TokenKind,
    User,
    Workspace,
)
from bot.sim.slack_validate import ContentError, check_blocks, check_text
from bot.sim.slack_webapi import Faults, WebApi

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
]


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
    ) -> None:
        """`strict_channels`: unknown channel IDs give `channel_not_found` instead of being created.
        `clock` drives message ts and response_url expiry (signatures always use real time)."""
        self.signing_secret = signing_secret
        self.app_id = app_id
        self.verification_token = verification_token
        self.workspace = Workspace(team_id=team_id, team_domain=team_domain, clock=clock)
        self.workspace.users[bot_user_id] = User(bot_user_id, bot_name, is_bot=True)
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
        )
        self._response_urls = ResponseUrls(self.workspace, self.bot, self._faults, self._base)
        self._payloads = Payloads(self.workspace, app_id, verification_token, self._response_urls)
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

    def add_user(self, user_id: str, name: str) -> None:
        self.workspace.users[user_id] = User(user_id, name)

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
        """Current messages (after updates and deletes), oldest first."""
        return self.workspace.messages(
            channel, include_ephemeral=include_ephemeral, include_deleted=include_deleted
        )

    def message(self, channel: str, ts: str) -> Message | None:
        return self.workspace.find(channel, ts, ephemeral=None)

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
        """The newest current message in `channel` that matches `where`."""

        def find() -> Message | None:
            candidates = reversed(self.workspace.messages(channel))
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
