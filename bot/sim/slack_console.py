"""A local Slack client in the browser, served by the Slack emulator next to its Web API.

    emulator = SlackEmulator(bot_token=..., signing_secret=...)
    console = SlackConsole(emulator, personas=[Persona("U0ALICE", "allowed")], channels=["C0OPS"])
    await emulator.start()
    console.attach(runtime.events_url)  # where typed commands and clicks are sent, signed

The page (`static/console.html`, `.js`, `.css`) talks to a small JSON API under `/console/api/`:

- `GET  workspace`: team, personas, channels, user and user-group names, example commands (`hints`:
  a list, or a function the console asks each time, so that they can name what exists now);
- `GET  messages?channel=C&user=U[&after=V]`: what `U` sees in `C` (edits applied, their own
  ephemeral messages marked), its `version` and the current `hints`; with `after`, waits until
  something `U` sees in `C` changed after version `V` (long poll), so `chat.update` shows in place
  within moments. Reads, other channels and edits that change nothing shown do not wake it;
- `POST command {user, channel, text}`: `/sandbox …` as a signed slash command from that user;
- `POST click {user, channel, ts, block_id, action_id}`: a signed block_actions payload for a
  button on a message that user sees;
- `POST app {user, tab}`: the user opens the app (`tab` `home` or `messages`): the answer names their
  direct message channel with the bot (`channel`, what `messages` polls), and `app_home_opened` goes
  to the bot;
- `POST shortcut {user, callback_id}`: a global shortcut from the shortcuts menu;
- `POST view_action {user, view_id, block_id, action_id, values, value?}`: an element of the user's Home
  tab or modal used (a button, or a select, picker or radio set to `value`), after `values`
  (`{block_id: {action_id: value}}`, what the page holds entered) are put into the view's state;
- `POST view_submit {user, view_id, values}`: the modal's submit button; the bot's answer is applied as
  Slack does (errors under their inputs, update, push, clear, close), and said back;
- `POST view_close {user, view_id, clear}`: the modal's close button (or the X, with `clear`);
- `POST time_zone {tz}`: the browser's time zone (an IANA name), which becomes every persona's, as
  Slack's "set time zone automatically" does: `users.info` then gives the zone the page shows times
  in, so what the bot writes in a user's zone and what the date and time pickers take agree.

`messages` also carries the user's published Home tab (`home`) and open modals (`modals`, root first,
each with the `errors` shown under its inputs and Slack's `notice`); any change to them wakes the
long poll too.

`GET /healthz` and `GET /metrics` are the attached bot's own (`attach(..., pages_url=...)`), passed
through as the bot answers them: one port for the console and the bot's health (the demo).

Everything here only reads the emulator's workspace and uses its signed sender: it is the same
emulator the end-to-end tests use, with a face.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from aiohttp import web

from bot.sim.slack import SlackEmulator, Submission
from bot.sim.slack_sender import Delivery
from bot.sim.slack_state import JSON, Message
from bot.sim.slack_views import ValueKey, View

API = "/console/api/"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
BOT_PAGES = ("/healthz", "/metrics")
BOT_PAGE_TIMEOUT = aiohttp.ClientTimeout(total=10)
LONG_POLL_SECONDS = 20.0
MAX_LONG_POLL_SECONDS = 25.0
STATIC_TYPES = {
    "console.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}
# The page sets no cookies and talks only to its own origin; these headers keep it that way.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


@dataclass(frozen=True)
class Persona:
    """A user the console can act as; `description` says why the bot treats them as it does."""

    user_id: str
    description: str


@dataclass(frozen=True)
class Shortcut:
    """A global shortcut of the app, as its menu lists it (its manifest's `shortcuts`)."""

    callback_id: str
    name: str
    description: str = ""


DEFAULT_SHORTCUTS = (
    Shortcut(
        "sandbox_refresh_shortcut", "Refresh a sandbox", "Start a refresh of a test environment"
    ),
)
HOME_TABS = ("home", "messages")


class ConsoleError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class SlackConsole:
    def __init__(
        self,
        emulator: SlackEmulator,
        *,
        personas: Sequence[Persona],
        channels: Sequence[str],
        usergroups: Mapping[str, str] | None = None,
        hints: Iterable[str] | Callable[[], Sequence[str]] = (),
        title: str = "Slack console",
        notice: str = "",
        shortcuts: Sequence[Shortcut] = DEFAULT_SHORTCUTS,
    ) -> None:
        """`channels`: IDs of channels the emulator knows, shown in this order. `usergroups`: ID to
        handle, for `<!subteam^S…>` mentions. `hints`: example commands the page offers, or a
        function that says which, asked each time the page looks. `shortcuts`: the app's global
        shortcuts, listed in the shortcuts menu."""
        if not personas or not channels:
            raise ValueError("a console needs at least one persona and one channel")
        self.emulator = emulator
        self.personas = list(personas)
        self.channels = list(channels)
        self.usergroups = dict(usergroups or {})
        if callable(hints):
            self._hints = hints
        else:
            fixed = list(hints)
            self._hints = lambda: fixed
        self.title = title
        self.notice = notice
        self.shortcuts = list(shortcuts)
        self.events_url: str | None = None
        self.pages_url: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing = False
        self.long_polls = 0  # long polls waiting now
        emulator.extend(self._add_routes)

    def attach(self, events_url: str, pages_url: str | None = None) -> None:
        """Send commands and clicks to the bot at `events_url` (its `/slack/events`); with `pages_url`
        (the bot's base URL), serve its `/healthz` and `/metrics` here too."""
        self.events_url = events_url
        self.pages_url = pages_url

    @property
    def hints(self) -> list[str]:
        """The example commands the page offers now."""
        return list(self._hints())

    @property
    def url(self) -> str:
        return self.emulator.base_url

    # ---- routes

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get(API + "workspace", self._workspace)
        app.router.add_get(API + "messages", self._messages)
        app.router.add_post(API + "command", self._command)
        app.router.add_post(API + "click", self._click)
        app.router.add_post(API + "app", self._app)
        app.router.add_post(API + "shortcut", self._shortcut)
        app.router.add_post(API + "view_action", self._view_action)
        app.router.add_post(API + "view_submit", self._view_submit)
        app.router.add_post(API + "view_close", self._view_close)
        app.router.add_post(API + "time_zone", self._time_zone)
        for path in BOT_PAGES:
            app.router.add_get(path, self._bot_page)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)

    async def _on_shutdown(self, app: web.Application) -> None:
        """Release waiting long polls, or the server would wait for them before closing."""
        self._closing = True
        self.emulator.workspace.notify()

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _bot_page(self, request: web.Request) -> web.Response:
        """The bot's `/healthz` or `/metrics`, status, type and body as the bot answered."""
        if self.pages_url is None:
            raise web.HTTPNotFound()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=BOT_PAGE_TIMEOUT)
        try:
            async with self._session.get(self.pages_url.rstrip("/") + request.path) as answer:
                body = await answer.read()
                kind = answer.headers.get("Content-Type", "text/plain")
                status = answer.status
        except (aiohttp.ClientError, TimeoutError):
            return _error(ConsoleError(502, "the bot is not reachable"))
        return web.Response(
            status=status, body=body, headers={"Content-Type": kind, "Cache-Control": "no-store"}
        )

    async def _page(self, request: web.Request) -> web.Response:
        return _static_file("console.html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_TYPES or name == "console.html":
            raise web.HTTPNotFound()
        return _static_file(name)

    # ---- the JSON API

    async def _workspace(self, request: web.Request) -> web.Response:
        try:
            _check_host(request)
        except ConsoleError as exc:
            return _error(exc)
        ws = self.emulator.workspace
        return _json(
            {
                "title": self.title,
                "notice": self.notice,
                "team": {"id": ws.team_id, "domain": ws.team_domain},
                "bot": {"id": self.emulator.bot.user_id, "name": self.emulator.bot.name},
                "personas": [
                    {"id": p.user_id, "name": ws.user_name(p.user_id), "description": p.description}
                    for p in self.personas
                ],
                "channels": [{"id": c, "name": self._channel_name(c)} for c in self.channels],
                "users": {u.id: u.name for u in ws.users.values()},
                "usergroups": self.usergroups,
                "hints": self.hints,
                "app": {"id": self.emulator.app_id, "name": self.emulator.bot.name},
                "shortcuts": [
                    {"callback_id": s.callback_id, "name": s.name, "description": s.description}
                    for s in self.shortcuts
                ],
            }
        )

    async def _messages(self, request: web.Request) -> web.Response:
        try:
            _check_host(request)
            user = self._known_user(request.query.get("user"))
            channel = self._known_channel(request.query.get("channel"), user)
            after = _int(request.query.get("after"), "after")
            wait = min(
                float(_int(request.query.get("wait"), "wait") or LONG_POLL_SECONDS),
                MAX_LONG_POLL_SECONDS,
            )
        except ConsoleError as exc:
            return _error(exc)
        if after is not None:
            await self._changed_after(channel, user, after, wait)
        return _json(self.view(channel, user))

    async def _command(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user = self._known_user(body.get("user"))
            channel = self._known_channel(body.get("channel"), user)
            command, text = _split_command(body.get("text"))
            delivery = await self.emulator.send_command(
                self._events_url(), text, user, channel, command
            )
        except ConsoleError as exc:
            return _error(exc)
        except aiohttp.ClientError:
            return _error(ConsoleError(502, "the bot is not reachable"))
        return _json(_outcome(delivery))

    async def _click(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user = self._known_user(body.get("user"))
            channel = self._known_channel(body.get("channel"), user)
            ts, block_id, action_id = (
                _text(body.get(key), key) for key in ("ts", "block_id", "action_id")
            )
            message = self.emulator.workspace.find(channel, ts, ephemeral=None)
            if message is None or message.ephemeral_for not in (None, user):
                raise ConsoleError(404, "no such message")
            if not has_button(message.blocks, block_id, action_id):
                raise ConsoleError(404, "no such button on that message")
            delivery = await self.emulator.send_block_action(
                self._events_url(),
                user,
                action_id,
                None,  # the button's own value, as Slack sends it
                channel,
                ts,
                block_id=block_id,
            )
        except ConsoleError as exc:
            return _error(exc)
        except aiohttp.ClientError:
            return _error(ConsoleError(502, "the bot is not reachable"))
        return _json(_outcome(delivery))

    async def _app(self, request: web.Request) -> web.Response:
        """The user opens the app's Home or Messages tab: Slack sends `app_home_opened` each time."""
        try:
            body = await _json_body(request)
            user = self._known_user(body.get("user"))
            tab = body.get("tab")
            if tab not in HOME_TABS:
                raise ConsoleError(400, "tab must be home or messages")
            channel = self.emulator.dm_channel(user)
            if self.events_url is None:
                return _json({"ok": True, "channel": channel, "delivered": False})
            delivery = await self.emulator.send_app_home_opened(self.events_url, user, tab)
        except ConsoleError as exc:
            return _error(exc)
        except aiohttp.ClientError:
            return _error(ConsoleError(502, "the bot is not reachable"))
        return _json({**_outcome(delivery), "channel": channel, "delivered": True})

    async def _shortcut(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user = self._known_user(body.get("user"))
            callback_id = body.get("callback_id")
            if not any(s.callback_id == callback_id for s in self.shortcuts):
                raise ConsoleError(404, "no such shortcut")
            delivery = await self.emulator.send_shortcut(self._events_url(), user, str(callback_id))
        except ConsoleError as exc:
            return _error(exc)
        except aiohttp.ClientError:
            return _error(ConsoleError(502, "the bot is not reachable"))
        return _json(_outcome(delivery))

    async def _view_action(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user = self._known_user(body.get("user"))
            view = self._users_view(user, body.get("view_id"))
            block_id, action_id = (_text(body.get(key), key) for key in ("block_id", "action_id"))
            if view.element(action_id, block_id) is None:
                raise ConsoleError(404, "no such element in that view")
            self._enter(view, body.get("values"))
            delivery = await self.emulator.send_view_action(
                self._events_url(),
                user,
                action_id,
                _entry_value(body.get("value")),
                block_id=block_id,
                view_id=view.id,
            )
        except ConsoleError as exc:
            return _error(exc)
        except ValueError as exc:
            return _error(ConsoleError(400, str(exc)))
        except aiohttp.ClientError:
            return _error(ConsoleError(502, "the bot is not reachable"))
        return _json(_outcome(delivery))

    async def _view_submit(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user = self._known_user(body.get("user"))
            view = self._users_view(user, body.get("view_id"))
            if view is not self.emulator.modal(user):
                raise ConsoleError(409, "that modal is not the one on top")
            self._enter(view, body.get("values"))
            submission = await self.emulator.send_view_submission(self._events_url(), user)
        except ConsoleError as exc:
            return _error(exc)
        except ValueError as exc:
            return _error(ConsoleError(400, str(exc)))
        except aiohttp.ClientError:
            return _error(ConsoleError(502, "the bot is not reachable"))
        return _json(_submitted(submission))

    async def _view_close(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user = self._known_user(body.get("user"))
            view = self._users_view(user, body.get("view_id"))
            if view is not self.emulator.modal(user):
                raise ConsoleError(409, "that modal is not the one on top")
            if view.notify_on_close:
                closed = await self.emulator.close_modal(
                    self._events_url(), user, clear=body.get("clear") is True
                )
            else:  # nothing goes to the bot: closing needs none attached
                closed = await self.emulator.close_modal("", user, clear=body.get("clear") is True)
        except ConsoleError as exc:
            return _error(exc)
        except aiohttp.ClientError:
            return _error(ConsoleError(502, "the bot is not reachable"))
        return _json({"ok": True, "closed": [v.id for v in closed]})

    async def _time_zone(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            tz = _text(body.get("tz"), "tz")
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConsoleError(400, "tz must be a time zone name, e.g. Europe/London") from None
        except ConsoleError as exc:
            return _error(exc)
        for persona in self.personas:
            user = self.emulator.workspace.users.get(persona.user_id)
            if user is not None:
                user.tz = tz
        return _json({"ok": True, "tz": tz})

    def _users_view(self, user: str, view_id: object) -> View:
        view = self.emulator.view(view_id) if isinstance(view_id, str) else None
        if view is None or view.user_id != user:
            raise ConsoleError(404, "no such view")
        return view

    def _enter(self, view: View, values: object) -> None:
        """What the page holds entered in `view` (`{block_id: {action_id: value}}`) into its state."""
        if values in (None, {}):
            return
        if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
            raise ConsoleError(400, "values must be {block_id: {action_id: value}}")
        entered: dict[ValueKey, Any] = {
            (str(block_id), str(action_id)): _entry_value(value)
            for block_id, actions in values.items()
            for action_id, value in actions.items()
        }
        self.emulator.enter_values(view.user_id, entered, view_id=view.id)

    # ---- what a user sees

    def view(self, channel: str, user: str) -> JSON:
        """The messages `user` sees in `channel`, oldest first, how many each channel holds, and the
        user's Home tab and modals."""
        ws = self.emulator.workspace
        home = self.emulator.home_view(user)
        return {
            "version": self.version(channel, user),
            "hints": self.hints,
            "channel": channel,
            "user": user,
            "messages": [self._message(m) for m in ws.messages(channel) if _sees(user, m)],
            "counts": {c: sum(1 for m in ws.messages(c) if _sees(user, m)) for c in self.channels},
            "home": _shown_view(home) if home is not None else None,
            "modals": [_shown_view(v) for v in self.emulator.modal_stack(user)],
        }

    def _message(self, message: Message) -> JSON:
        ws = self.emulator.workspace
        user = ws.users.get(message.user)
        return {
            "ts": message.ts,
            "user": message.user,
            "user_name": ws.user_name(message.user),
            "is_bot": bool(message.bot_id) or bool(user and user.is_bot),
            "text": message.text,
            "blocks": message.blocks,
            "attachments": message.attachments,
            "thread_ts": message.thread_ts if message.is_reply else None,
            "broadcast": message.is_reply and message.reply_broadcast,
            "ephemeral": message.is_ephemeral,
            "edited": bool(message.edits),
        }

    def version(self, channel: str, user: str) -> int:
        """The workspace version of the latest change `user` can see in `channel`, or in their own
        Home tab and modals."""
        messages = self.emulator.workspace.messages(channel, include_deleted=True)
        seen = max((m.changed for m in messages if _sees(user, m)), default=0)
        return max(seen, self.emulator.views_changed(user))

    async def _changed_after(self, channel: str, user: str, version: int, wait: float) -> None:
        ws = self.emulator.workspace
        self.long_polls += 1
        try:
            with contextlib.suppress(TimeoutError):  # nothing changed: the page asks again
                await ws.wait_for(
                    lambda: self.version(channel, user) > version or self._closing,
                    wait,
                    "a change that user sees in that channel",
                )
        finally:
            self.long_polls -= 1

    # ---- validation

    def _known_user(self, value: object) -> str:
        if not any(p.user_id == value for p in self.personas):
            raise ConsoleError(400, "unknown user")
        return str(value)

    def _known_channel(self, value: object, user: str) -> str:
        """One of the console's channels, or the user's own direct message channel with the bot."""
        if value in self.channels:
            return str(value)
        dm = self.emulator.workspace.dm_channel(user, self.emulator.bot.user_id, create=False)
        if dm is None or value != dm.id:
            raise ConsoleError(400, "unknown channel")
        return dm.id

    def _channel_name(self, channel_id: str) -> str:
        channel = self.emulator.workspace.channel(channel_id)
        return channel.name if channel else channel_id.lower()

    def _events_url(self) -> str:
        if self.events_url is None:
            raise ConsoleError(503, "no bot is attached to the console yet")
        return self.events_url


def has_button(blocks: list[JSON], block_id: str, action_id: str) -> bool:
    """Whether the block `block_id` holds an element `action_id` (in elements or as accessory)."""
    for block in blocks:
        if block.get("block_id") != block_id:
            continue
        elements = list(block.get("elements") or [])
        elements.append(block.get("accessory"))
        if any(isinstance(e, dict) and e.get("action_id") == action_id for e in elements):
            return True
    return False


def _sees(user: str, message: Message) -> bool:
    return message.ephemeral_for in (None, user)


def _split_command(value: object) -> tuple[str, str]:
    """`"/sandbox jobs staging"` -> ("/sandbox", "jobs staging"): Slack sends the rest verbatim."""
    text = _text(value, "text").strip()
    if not text.startswith("/"):
        raise ConsoleError(400, "type a slash command, e.g. /sandbox help")
    command, _, rest = text.partition(" ")
    if command != "/sandbox":
        raise ConsoleError(400, f"{command[:40]} is not a command of this workspace")
    return command, rest.strip()


def _outcome(delivery: Delivery) -> JSON:
    """What Slack would make of the bot's answer: it shows the user an error for anything but a
    200 within 3 seconds."""
    if delivery.timed_out:
        return {"ok": False, "error": "operation_timeout", "status": None}
    if delivery.status != 200:
        return {"ok": False, "error": "dispatch_failed", "status": delivery.status}
    return {"ok": True, "status": 200, "elapsed": round(delivery.elapsed, 3)}


def _submitted(submission: Submission) -> JSON:
    """What the page shows of a submission: Slack's errors under inputs, or its notice on top."""
    shown: JSON = {
        "ok": True,
        "sent": submission.sent,
        "response_action": submission.response_action,
        "errors": submission.errors,
        "problem": submission.problem,
        "closed": submission.closed,
    }
    delivery = submission.delivery
    if delivery is not None:
        shown["status"] = delivery.status
    return shown


def _shown_view(view: View) -> JSON:
    """A view as Slack's API shows it, with what the client shows besides: errors and notice."""
    return {**view.to_api(), "errors": dict(view.errors), "notice": view.notice}


def _entry_value(value: object) -> Any:
    """A value the page sent for an element: text, a number (unix seconds), a list, or null."""
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ConsoleError(400, "a value must be text, a number, a list of text or null")


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 4000:
        raise ConsoleError(400, f"{name} must be a non-empty string")
    return value


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise ConsoleError(400, f"{name} must be a whole number") from None
    if number < 0:
        raise ConsoleError(400, f"{name} must not be negative")
    return number


def _check_host(request: web.Request) -> None:
    """Answer only requests addressed to a loopback name: a page on another site that resolves its
    own name to 127.0.0.1 (DNS rebinding) gets nothing."""
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    if host not in LOCAL_HOSTS:
        raise ConsoleError(403, "the console answers only on 127.0.0.1 or localhost")


async def _json_body(request: web.Request) -> JSON:
    """A JSON object body. Requiring the JSON content type makes a browser ask (preflight) before
    another site's page could post here, and the console answers no preflight."""
    _check_host(request)
    if request.content_type != "application/json":
        raise ConsoleError(415, "send application/json")
    try:
        body: Any = json.loads(await request.read())
    except ValueError:
        raise ConsoleError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ConsoleError(400, "the body must be a JSON object")
    return body


def _static_file(name: str) -> web.Response:
    data = resources.files("bot.sim").joinpath("static", name).read_bytes()
    return web.Response(
        body=data, content_type=STATIC_TYPES[name], charset="utf-8", headers=PAGE_HEADERS
    )


def _json(body: JSON, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def _error(exc: ConsoleError) -> web.Response:
    return _json({"ok": False, "error": exc.error}, exc.status)
