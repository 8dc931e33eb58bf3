"""Who holds *Refresh Central Sandbox* in this bot: an allowlist of users and of Slack user groups.

Deny by default. Group membership comes from `usergroups.users.list`, cached per group for a short TTL with
one lookup in flight per group; when Slack cannot answer, the check fails closed (the user is refused and told
why) rather than guessing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Looks up the members of one user group; raises on any failure.
MemberLookup = Callable[[str], Awaitable[Iterable[str]]]


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


class Permissions:
    def __init__(
        self,
        *,
        users: Iterable[str],
        usergroups: Iterable[str],
        lookup: MemberLookup,
        access_help: str | None = None,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._listed = tuple(dict.fromkeys(users))  # in the configured order, for refusals
        self._users = frozenset(self._listed)
        self._groups = tuple(dict.fromkeys(usergroups))
        self._access_help = access_help or None
        self._lookup = lookup
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._inflight: dict[str, asyncio.Task[frozenset[str]]] = {}

    @property
    def grantors(self) -> Grantors:
        """Whom a refusal tells the user to ask (the message itself is built by `bot.blocks`)."""
        return Grantors(self._listed, self._groups, self._access_help)

    async def check(self, user_id: str) -> Decision:
        if user_id in self._users:
            return Decision(True, "listed in SANDBOX_ALLOWED_USERS", via="user")
        if not self._groups:
            if not self._users:
                return Decision(
                    False, "Nobody is allowed yet: the bot has no allowlist configured."
                )
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
            return Decision(
                False,
                "Slack did not answer when the bot checked your user-group membership, so it refused to be safe. "
                "Try again in a moment.",
            )
        return Decision(False, "You are not on the bot's allowlist, nor in one of its user groups.")

    async def _members(self, group: str) -> frozenset[str]:
        cached = self._cache.get(group)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        task = self._inflight.get(group)
        if task is None:
            task = asyncio.ensure_future(self._fetch(group))
            self._inflight[group] = task
            task.add_done_callback(lambda _t: self._inflight.pop(group, None))
        return await asyncio.shield(task)

    async def _fetch(self, group: str) -> frozenset[str]:
        members = frozenset(await self._lookup(group))
        self._cache[group] = (self._clock(), members)
        return members
