"""Who may do what in this bot: two roles, each an allowlist of users and of Slack user groups.

**Operators** (`SANDBOX_ALLOWED_*`) hold *Refresh Central Sandbox*: they may act and look. **Viewers**
(`SANDBOX_VIEWER_*`) may look. `*` among the viewer users admits every full member of the installing
workspace, decided from `users.info` (the user's team against `auth.test`'s; not a guest, not a stranger of
another team), never from a payload's `team_id`.

Deny by default. Group membership and profiles come from Slack, cached for a short TTL with one lookup in
flight per key; when Slack cannot answer, the check fails closed (the user is refused and told why) rather
than guessing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

log = logging.getLogger(__name__)

Role = Literal["viewer", "operator"]
EVERY_MEMBER = "*"
T = TypeVar("T")

# Looks up the members of one user group; raises on any failure.
MemberLookup = Callable[[str], Awaitable[Iterable[str]]]


@dataclass(frozen=True, slots=True)
class Profile:
    """What `users.info` says about a user, as far as a role depends on it."""

    team_id: str | None
    guest: bool  # a multi- or single-channel guest
    stranger: bool  # a user of another team (Slack Connect)
    deleted: bool = False
    bot: bool = False


# Looks up one user's profile (`users.info`); and the installing workspace's team (`auth.test`). Both raise on
# any failure.
ProfileLookup = Callable[[str], Awaitable[Profile]]
TeamLookup = Callable[[], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Grantors:
    """Whom a refused user can ask: the users and user groups that hold the permission, or the operators'
    own sentence (`SANDBOX_ACCESS_HELP`, raw text: escaped where it is shown), which takes their place."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    access_help: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str  # for the refusal message and the audit log; plain words, no secrets
    via: str | None = None  # "user" or the user-group ID that granted it


@dataclass(frozen=True, slots=True)
class Standing:
    """A user's role (None: neither) and why, in plain words for the refusal and the audit log."""

    role: Role | None
    reason: str
    via: str | None = None

    def may(self, need: Role) -> bool:
        return self.role == "operator" or self.role == need


class Permissions:
    def __init__(
        self,
        *,
        users: Iterable[str],
        usergroups: Iterable[str],
        lookup: MemberLookup,
        viewer_users: Iterable[str] = (),
        viewer_usergroups: Iterable[str] = (),
        profile: ProfileLookup | None = None,
        home_team: TeamLookup | None = None,
        access_help: str | None = None,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._listed = tuple(dict.fromkeys(users))  # in the configured order, for refusals
        self._users = frozenset(self._listed)
        self._groups = tuple(dict.fromkeys(usergroups))
        viewers = tuple(dict.fromkeys(viewer_users))
        self._every_member = EVERY_MEMBER in viewers
        self._viewers = frozenset(v for v in viewers if v != EVERY_MEMBER)
        self._viewer_groups = tuple(g for g in dict.fromkeys(viewer_usergroups))
        self._access_help = access_help or None
        self._lookup = lookup
        self._profile = profile
        self._home_team = home_team
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, object]] = {}
        self._inflight: dict[str, asyncio.Task[object]] = {}
        if self._every_member and (profile is None or home_team is None):
            raise ValueError("SANDBOX_VIEWER_USERS=* needs the users.info and auth.test lookups")

    @property
    def has_viewers(self) -> bool:
        return bool(self._every_member or self._viewers or self._viewer_groups)

    @property
    def grantors(self) -> Grantors:
        """Whom a refusal tells the user to ask (the message itself is built by `bot.blocks`)."""
        return Grantors(self._listed, self._groups, self._access_help)

    async def standing(self, user_id: str) -> Standing:
        """The user's role: operator (which includes looking), viewer, or neither, and why."""
        operator = await self.check(user_id)
        if operator.allowed:
            return Standing("operator", operator.reason, operator.via)
        unsure = operator.reason == _SLACK_DID_NOT_ANSWER
        if user_id in self._viewers:
            return Standing("viewer", "listed in SANDBOX_VIEWER_USERS", via="user")
        for group in self._viewer_groups:
            try:
                members = await self._members(group)
            except Exception:  # any failure of Slack: fail closed, but keep checking
                log.warning("user-group lookup failed", extra={"usergroup": group}, exc_info=True)
                unsure = True
                continue
            if user_id in members:
                return Standing("viewer", f"member of user group {group}", via=group)
        if self._every_member:
            try:
                if await self._is_full_member(user_id):
                    return Standing("viewer", "a full member of this workspace", via=EVERY_MEMBER)
            except Exception:
                log.warning("users.info or auth.test failed", exc_info=True)
                unsure = True
        if unsure:
            return Standing(None, _SLACK_DID_NOT_ANSWER)
        if not self._users and not self._groups and not self.has_viewers:
            return Standing(None, _NOBODY)
        if self._every_member:
            return Standing(
                None,
                "You are not on the bot's lists, and only full members of this workspace may look "
                "(not guests, not users of another organisation).",
            )
        return Standing(None, "You are not on the bot's lists of operators or viewers.")

    async def _is_full_member(self, user_id: str) -> bool:
        profile_of, home_team = self._profile, self._home_team
        if profile_of is None or home_team is None:  # refused in __init__ when `*` is configured
            return False
        home, profile = await asyncio.gather(
            self._cached("team:", home_team),
            self._cached(f"user:{user_id}", lambda: profile_of(user_id)),
        )
        return (
            isinstance(profile, Profile)
            and profile.team_id is not None
            and profile.team_id == home
            and not (profile.guest or profile.stranger or profile.deleted or profile.bot)
        )

    async def check(self, user_id: str) -> Decision:
        if user_id in self._users:
            return Decision(True, "listed in SANDBOX_ALLOWED_USERS", via="user")
        if not self._groups:
            if not self._users:
                return Decision(False, _NOBODY)
            return Decision(False, "You are not on the bot's allowlist.")
        failed = []
        for group in self._groups:
            try:
                members = await self._members(group)
            except (
                Exception
            ):  # any failure of Slack: fail closed, but keep checking the other groups
                log.warning("user-group lookup failed", extra={"usergroup": group}, exc_info=True)
                failed.append(group)
                continue
            if user_id in members:
                return Decision(True, f"member of user group {group}", via=group)
        if failed:
            return Decision(False, _SLACK_DID_NOT_ANSWER)
        return Decision(False, "You are not on the bot's allowlist, nor in one of its user groups.")

    async def _members(self, group: str) -> frozenset[str]:
        async def fetch() -> frozenset[str]:
            return frozenset(await self._lookup(group))

        members = await self._cached(f"group:{group}", fetch)
        assert isinstance(members, frozenset)
        return members

    async def _cached(self, key: str, fetch: Callable[[], Awaitable[T]]) -> object:
        """`fetch()`'s answer, cached for the TTL, with one lookup in flight per key; failures are not cached."""
        cached = self._cache.get(key)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch(key, fetch))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _fetch(self, key: str, fetch: Callable[[], Awaitable[T]]) -> object:
        value = await fetch()
        self._cache[key] = (self._clock(), value)
        return value


_NOBODY = "Nobody is allowed yet: the bot has no allowlist configured."
_SLACK_DID_NOT_ANSWER = (
    "Slack did not answer when the bot checked your user-group membership or profile, so it refused to be "
    "safe. Try again in a moment."
)
