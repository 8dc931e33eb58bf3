"""The App Home tab: every environment and its active or scheduled jobs, for viewers and operators.

Opening it costs at most one Zuora round: the environments and the jobs of every environment already known
(aliases, the environments last listed) are read at once, through the shared per-environment view, so a Home
tab opened while cards and the watch poll the same environments often costs no call at all. Only on a cold
start, when no environment is known yet, do the jobs wait for the environments.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot import view_blocks
from bot.commands import EnvRef
from bot.env_view import EnvironmentView, Listing
from bot.permissions import Permissions
from bot.slack_surface import SlackSurface
from bot.view_blocks import HomeEnvironment, View
from bot.zuora.errors import ZuoraError

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import TestEnvironment


log = logging.getLogger(__name__)


class HomeTab:
    def __init__(
        self,
        *,
        permissions: Permissions,
        view: EnvironmentView,
        slack: SlackSurface,
        aliases: Mapping[str, str],
        max_age: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._permissions = permissions
        self._view = view
        self._slack = slack
        self._aliases = dict(aliases)
        self._max_age = max_age
        self._now = now

    async def publish(self, user_id: str, *, fresh: bool = False) -> None:
        """Publish `user_id`'s Home tab; `fresh` (Reload, after an action) reads Zuora anew."""
        await self._slack.publish_home(user_id, await self.view_for(user_id, fresh=fresh))

    async def view_for(self, user_id: str, *, fresh: bool = False) -> View:
        standing = await self._permissions.standing(user_id)
        if standing.role is None:
            return view_blocks.home_without_role(self._permissions.grantors)
        max_age = 0.0 if fresh else self._max_age
        known = list(
            dict.fromkeys(
                [*self._aliases.values(), *(e.id for e in self._view.environments_seen() if e.id)]
            )
        )
        # One round: the environments and the jobs of every environment already known, at once.
        environments = asyncio.ensure_future(self._view.environments(max_age=max_age))
        jobs: list[Listing | BaseException] = await asyncio.gather(
            *(self._view.jobs(env_id, max_age=max_age) for env_id in known),
            return_exceptions=True,
        )
        read_at = self._now()
        try:
            listed = await environments
        except ZuoraError as error:
            return view_blocks.home_view(
                [], may_act=standing.may("operator"), read_at=read_at, problem=_problem(error)
            )
        by_env: dict[str, Listing | BaseException] = dict(zip(known, jobs, strict=True))
        missing = [e.id for e in listed if e.id and e.id not in by_env]
        if missing and not known:  # a cold start: nothing was known to read at once
            more = await asyncio.gather(
                *(self._view.jobs(env_id, max_age=max_age) for env_id in missing),
                return_exceptions=True,
            )
            by_env.update(zip(missing, more, strict=True))
        items = [
            self._item(env, by_env.get(env.id or "")) for env in _ordered(listed, self._aliases)
        ]
        return view_blocks.home_view(items, may_act=standing.may("operator"), read_at=read_at)

    def _item(
        self, environment: TestEnvironment, listing: Listing | BaseException | None
    ) -> HomeEnvironment:
        env_id = environment.id or "unknown"
        alias = next((a for a, i in self._aliases.items() if i == env_id), None)
        ref = EnvRef(id=env_id, alias=alias)
        if isinstance(listing, Listing):
            return HomeEnvironment(environment, ref, listing.jobs)
        if isinstance(listing, ZuoraError):
            return HomeEnvironment(environment, ref, None, _problem(listing))
        if isinstance(listing, BaseException):
            log.error("home tab: listing jobs failed", exc_info=listing)
            return HomeEnvironment(environment, ref, None, "an unexpected error")
        return HomeEnvironment(environment, ref, None, "new since the last look")


def _ordered(
    environments: Sequence[TestEnvironment], aliases: Mapping[str, str]
) -> list[TestEnvironment]:
    """Aliased environments first, in the configured order; then the others as Zuora listed them."""
    rank = {env_id: n for n, env_id in enumerate(aliases.values())}
    return sorted(environments, key=lambda e: rank.get(e.id or "", len(rank)))


def _problem(error: ZuoraError) -> str:
    status = f" (HTTP {error.status})" if error.status else ""
    return (
        f"Zuora could not be read: {error.summary}{status}. Zuora-Track-Id "
        f"{error.track_id or 'none'}. Reload to try again."
    )
