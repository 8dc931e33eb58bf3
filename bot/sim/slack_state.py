"""Workspace state of the Slack emulator: channels, users, messages and recorded calls.

The state is plain data so that a later browser console can render it; the HTTP layers in
`slack_webapi`, `slack_response_url` and `slack_socket` only translate requests into changes here.
"""

# ruff: noqa: ASYNC109  # waiting helpers take a timeout argument by design (test API)

from __future__ import annotations

import asyncio
import copy
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

JSON = dict[str, Any]
T = TypeVar("T")
POLL_SECONDS = 0.05

MessageSource = Literal["api", "response_url", "ack", "user"]
TokenKind = Literal["bot", "user", "app"]
Guest = Literal["multi", "single"]
DEFAULT_TZ = "Europe/London"


@dataclass(frozen=True)
class Identity:
    """Whom a token speaks for. App-level (`xapp-`) tokens only open Socket Mode connections."""

    kind: TokenKind
    user_id: str
    bot_id: str | None = None
    app_id: str | None = None
    name: str = ""


@dataclass
class User:
    """A member of the workspace, or of another team (Slack Connect) when `team_id` is not the
    workspace's. `guest`: a multi-channel (`is_restricted`) or single-channel guest
    (`is_restricted` and `is_ultra_restricted`, as Slack flags them)."""

    id: str
    name: str
    is_bot: bool = False
    team_id: str | None = None  # None: the workspace's own team
    guest: Guest | None = None
    real_name: str | None = None
    tz: str = DEFAULT_TZ
    deleted: bool = False
    stranger: bool | None = (
        None  # None: decided by team and shared channels (`Workspace.is_stranger`)
    )


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    members: set[str] | None = None  # None: everyone may read and be addressed there
    im_user: str | None = None  # a direct message channel (`D…`) between this user and the bot
    created: int = 0

    @property
    def is_im(self) -> bool:
        return self.im_user is not None


@dataclass(frozen=True)
class MessageVersion:
    """A superseded version of a message, kept as its edit history."""

    text: str
    blocks: list[JSON]
    attachments: list[JSON]
    metadata: JSON | None
    replaced_at: float


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str = ""
    blocks: list[JSON] = field(default_factory=list)
    attachments: list[JSON] = field(default_factory=list)
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    metadata: JSON | None = None
    ephemeral_for: str | None = None
    source: MessageSource = "api"
    reply_broadcast: bool = False
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    deleted: bool = False
    edits: list[MessageVersion] = field(default_factory=list)
    changed: int = 0  # the workspace version of its last visible change (posted, edited, deleted)

    @property
    def is_ephemeral(self) -> bool:
        return self.ephemeral_for is not None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def replace(
        self,
        *,
        when: float,
        text: str | None = None,
        blocks: list[JSON] | None = None,
        attachments: list[JSON] | None = None,
        metadata: JSON | None = None,
    ) -> bool:
        """Apply an edit; fields left as None keep their value, as `chat.update` does. True when what
        a reader sees changed (text, blocks or attachments; block IDs and metadata are not shown)."""
        shown_before = self._shown()
        self.edits.append(
            MessageVersion(
                text=self.text,
                blocks=copy.deepcopy(self.blocks),
                attachments=copy.deepcopy(self.attachments),
                metadata=copy.deepcopy(self.metadata),
                replaced_at=when,
            )
        )
        if text is not None:
            self.text = text
        if blocks is not None:
            self.blocks = with_block_ids(blocks)
        if attachments is not None:
            self.attachments = attachments
        if metadata is not None:
            self.metadata = metadata
        return self._shown() != shown_before

    def _shown(self) -> tuple[str, list[JSON], list[JSON]]:
        blocks = [
            {k: v for k, v in block.items() if k != "block_id"}
            if isinstance(block, dict)
            else block
            for block in self.blocks
        ]
        return self.text, blocks, self.attachments


@dataclass(frozen=True)
class RecordedCall:
    """One request the emulator answered: a Web API method or a post to a response_url."""

    method: str
    args: JSON
    user_id: str | None
    transport: Literal["json", "form", "query"]
    status: int
    response: JSON

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        error = self.response.get("error")
        return error if isinstance(error, str) else None


def with_block_ids(blocks: list[JSON]) -> list[JSON]:
    """Copy blocks, giving each one without a `block_id` a random one, as Slack does."""
    alphabet = string.ascii_letters + string.digits
    result = []
    for block in blocks:
        block = copy.deepcopy(block)
        if isinstance(block, dict) and "block_id" not in block:
            block["block_id"] = "".join(secrets.choice(alphabet) for _ in range(5))
        result.append(block)
    return result


class Workspace:
    """The emulated workspace. Every change calls `notify()` so that `wait_for` re-checks."""

    def __init__(self, *, team_id: str, team_domain: str, clock: Callable[[], float]) -> None:
        self.team_id = team_id
        self.team_domain = team_domain
        self.clock = clock
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, User] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.calls: list[RecordedCall] = []
        self._messages: list[Message] = []
        self._last_ts_us = 0
        self._waiters: list[asyncio.Future[None]] = []
        self.version = 0  # bumped by every change (reads recorded included); see `Message.changed`

    # ---- ids and lookups

    def next_ts(self) -> str:
        """A message ts like Slack's (`seconds.micros`), strictly increasing."""
        now_us = max(int(self.clock() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = now_us
        return f"{now_us // 1_000_000}.{now_us % 1_000_000:06d}"

    def user_name(self, user_id: str) -> str:
        user = self.users.get(user_id)
        return user.name if user else user_id.lower()

    def ensure_user(self, user_id: str) -> User:
        """The user, added as a full member of the workspace if unknown: Slack sends payloads only
        from users that exist, so a payload from an undeclared user makes them exist."""
        user = self.users.get(user_id)
        if user is None:
            user = User(user_id, user_id.lower())
            self.users[user_id] = user
        return user

    def team_of(self, user_id: str) -> str:
        user = self.users.get(user_id)
        return user.team_id if user is not None and user.team_id else self.team_id

    def is_stranger(self, user: User) -> bool:
        """Slack's `is_stranger`: of another team and in no shared channel the app can see (a
        channel with an explicit member list that holds them)."""
        if user.stranger is not None:
            return user.stranger
        if (user.team_id or self.team_id) == self.team_id:
            return False
        return not any(
            c.members is not None and user.id in c.members and not c.is_im
            for c in self.channels.values()
        )

    def dm_channel(self, user_id: str, bot_user_id: str, *, create: bool = True) -> Channel | None:
        """The direct message channel (`D…`) between `user_id` and the bot, made on first use."""
        existing = next((c for c in self.channels.values() if c.im_user == user_id), None)
        if existing is not None or not create:
            return existing
        suffix = user_id[1:] if user_id[:1] in ("U", "W") else user_id
        channel_id = f"D{suffix}"
        while channel_id in self.channels:
            channel_id += "X"
        channel = Channel(
            channel_id,
            "directmessage",
            is_private=True,
            members={user_id, bot_user_id},
            im_user=user_id,
            created=int(self.clock()),
        )
        self.channels[channel_id] = channel
        self.notify()
        return channel

    def resolve(self, channel_id: str) -> str:
        """A channel ID as given, or for a user ID with a direct message channel, that channel's ID
        (where a message posted to a user ID lands)."""
        if channel_id in self.channels:
            return channel_id
        dm = next((c for c in self.channels.values() if c.im_user == channel_id), None)
        return dm.id if dm is not None else channel_id

    def channel(self, channel_id: str) -> Channel | None:
        if channel_id.startswith("#"):
            return next((c for c in self.channels.values() if c.name == channel_id[1:]), None)
        return self.channels.get(channel_id)

    def ensure_channel(self, channel_id: str) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = Channel(id=channel_id, name=channel_id.lower())
            self.channels[channel_id] = channel
        return channel

    def find(self, channel: str, ts: str, *, ephemeral: bool | None = False) -> Message | None:
        """The live message `ts` in `channel`; `ephemeral=None` matches either kind."""
        for message in reversed(self._messages):
            if message.channel != channel or message.ts != ts or message.deleted:
                continue
            if ephemeral is None or message.is_ephemeral == ephemeral:
                return message
        return None

    def messages(
        self,
        channel: str | None = None,
        *,
        include_ephemeral: bool = True,
        include_deleted: bool = False,
    ) -> list[Message]:
        """Messages in posting order (oldest first)."""
        return [
            m
            for m in self._messages
            if (channel is None or m.channel == channel)
            and (include_ephemeral or not m.is_ephemeral)
            and (include_deleted or not m.deleted)
        ]

    def replies(self, message: Message) -> list[Message]:
        return [
            m
            for m in self._messages
            if m.channel == message.channel
            and m.thread_ts == message.ts
            and m.is_reply
            and not m.deleted
            and not m.is_ephemeral
        ]

    # ---- changes

    def add_message(self, message: Message) -> Message:
        message.blocks = with_block_ids(message.blocks)
        self._messages.append(message)
        self.changed(message)
        return message

    def edit(
        self,
        message: Message,
        *,
        text: str | None = None,
        blocks: list[JSON] | None = None,
        attachments: list[JSON] | None = None,
        metadata: JSON | None = None,
    ) -> None:
        """Apply an edit now (see `Message.replace`); only a visible one counts as a change."""
        if message.replace(
            when=self.clock(), text=text, blocks=blocks, attachments=attachments, metadata=metadata
        ):
            self.changed(message)
        else:
            self.notify()

    def changed(self, message: Message) -> None:
        """Record that `message` changed in a way its readers see (posted, edited or deleted)."""
        self.notify()
        message.changed = self.version

    def record(self, call: RecordedCall) -> None:
        self.calls.append(call)
        self.notify()

    def to_api(self, message: Message, *, include_metadata: bool = True) -> JSON:
        """The message as Slack's Web API and interaction payloads show it."""
        body: JSON = {"type": "message", "text": message.text, "user": message.user}
        if message.bot_id:
            body["bot_id"] = message.bot_id
        if message.app_id:
            body["app_id"] = message.app_id
        body["ts"] = message.ts
        body["team"] = self.team_id
        if message.blocks:
            body["blocks"] = copy.deepcopy(message.blocks)
        if message.attachments:
            body["attachments"] = copy.deepcopy(message.attachments)
        if message.thread_ts:
            body["thread_ts"] = message.thread_ts
            if message.is_reply:
                parent = self.find(message.channel, message.thread_ts)
                if parent is not None:
                    body["parent_user_id"] = parent.user
        replies = [] if message.is_reply else self.replies(message)
        if replies:
            body["reply_count"] = len(replies)
            body["reply_users"] = sorted({r.user for r in replies})
            body["reply_users_count"] = len(body["reply_users"])
            body["latest_reply"] = replies[-1].ts
        if message.edits and not message.is_ephemeral:
            body["edited"] = {"user": message.user, "ts": self._edit_ts(message)}
        if include_metadata and message.metadata is not None:
            body["metadata"] = copy.deepcopy(message.metadata)
        return body

    @staticmethod
    def _edit_ts(message: Message) -> str:
        return f"{message.edits[-1].replaced_at:.6f}"

    # ---- waiting

    def notify(self) -> None:
        self.version += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float, what: str) -> T:
        """Re-evaluate `predicate` until it returns something truthy: after every change here,
        and every `POLL_SECONDS` for predicates that look at state outside the emulator."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, min(remaining, POLL_SECONDS))
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
