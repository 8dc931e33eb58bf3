"""Permissions: deny by default, allowlisted users, user groups through a cached single-flight lookup that
fails closed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from bot.permissions import Grantors, Permissions, Profile

ALICE = "U0ALICE01"
BOB = "U0BOB0002"
CAROL = "U0CAROL03"
PLATFORM = "S0PLATFORM"
OPS = "S0OPS0001"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLookup:
    """`usergroups.users.list` stand-in: records calls; can fail, or hold answers until released.

    `started` is set when a lookup begins. Every check task created before then has run up to its
    wait by that time (asyncio runs ready tasks in order), so awaiting it sees every check parked."""

    def __init__(self, groups: dict[str, list[str]]) -> None:
        self.groups = groups
        self.calls: list[str] = []
        self.failing: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self, group: str) -> Iterable[str]:
        self.calls.append(group)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if group in self.failing:
            raise RuntimeError("usergroups.users.list: internal_error")
        return list(self.groups.get(group, []))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lookup() -> FakeLookup:
    return FakeLookup({PLATFORM: [BOB], OPS: [CAROL]})


def permissions(
    lookup: FakeLookup,
    clock: FakeClock,
    *,
    users: Iterable[str] = (),
    groups: Iterable[str] = (PLATFORM,),
) -> Permissions:
    return Permissions(users=users, usergroups=groups, lookup=lookup, ttl=60.0, clock=clock)


async def test_nobody_is_allowed_by_default(lookup: FakeLookup, clock: FakeClock) -> None:
    perms = permissions(lookup, clock, groups=())
    decision = await perms.check(ALICE)
    assert not decision.allowed
    assert "no allowlist" in decision.reason
    assert decision.via is None
    assert lookup.calls == []


async def test_allowlisted_user_is_allowed_without_a_lookup(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    perms = permissions(lookup, clock, users=[ALICE])
    decision = await perms.check(ALICE)
    assert decision.allowed
    assert decision.via == "user"
    assert lookup.calls == []


async def test_user_not_on_the_list_is_refused(lookup: FakeLookup, clock: FakeClock) -> None:
    perms = permissions(lookup, clock, users=[ALICE], groups=())
    decision = await perms.check(BOB)
    assert not decision.allowed
    assert "allowlist" in decision.reason
    assert lookup.calls == []


async def test_group_member_is_allowed_via_the_group(lookup: FakeLookup, clock: FakeClock) -> None:
    perms = permissions(lookup, clock, users=[ALICE])
    decision = await perms.check(BOB)
    assert decision.allowed
    assert decision.via == PLATFORM
    assert lookup.calls == [PLATFORM]


async def test_non_member_is_refused_after_checking_every_group(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    perms = permissions(lookup, clock, groups=[PLATFORM, OPS])
    decision = await perms.check(ALICE)
    assert not decision.allowed
    assert "user groups" in decision.reason
    assert lookup.calls == [PLATFORM, OPS]


async def test_membership_is_cached_within_the_ttl(lookup: FakeLookup, clock: FakeClock) -> None:
    perms = permissions(lookup, clock)
    assert (await perms.check(BOB)).allowed
    clock.now += 59.9
    assert (await perms.check(BOB)).allowed
    assert not (await perms.check(ALICE)).allowed
    assert lookup.calls == [PLATFORM]


async def test_membership_is_fetched_again_after_the_ttl(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    perms = permissions(lookup, clock)
    assert not (await perms.check(ALICE)).allowed
    lookup.groups[PLATFORM] = [ALICE]  # Alice joins, Bob leaves
    clock.now += 30
    assert not (await perms.check(ALICE)).allowed  # still the cached membership
    clock.now += 30
    assert (await perms.check(ALICE)).allowed
    assert not (await perms.check(BOB)).allowed
    assert lookup.calls == [PLATFORM, PLATFORM]


async def test_concurrent_checks_share_one_lookup(lookup: FakeLookup, clock: FakeClock) -> None:
    lookup.gate = asyncio.Event()
    perms = permissions(lookup, clock)
    checks = [asyncio.create_task(perms.check(user)) for user in (BOB, ALICE, BOB, CAROL, BOB)]
    await asyncio.wait_for(lookup.started.wait(), timeout=10)
    assert lookup.calls == [PLATFORM]
    lookup.gate.set()
    decisions = await asyncio.wait_for(asyncio.gather(*checks), timeout=10)
    assert [d.allowed for d in decisions] == [True, False, True, False, True]
    assert lookup.calls == [PLATFORM]


async def test_a_cancelled_check_does_not_cancel_the_shared_lookup(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    lookup.gate = asyncio.Event()
    perms = permissions(lookup, clock)
    first = asyncio.create_task(perms.check(BOB))
    second = asyncio.create_task(perms.check(BOB))
    await asyncio.wait_for(lookup.started.wait(), timeout=10)
    first.cancel()
    lookup.gate.set()
    decision = await asyncio.wait_for(second, timeout=10)
    assert decision.allowed
    assert lookup.calls == [PLATFORM]
    assert first.cancelled()


async def test_lookup_failure_fails_closed_and_a_later_check_retries(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    lookup.failing.add(PLATFORM)
    perms = permissions(lookup, clock)
    refused = await perms.check(BOB)
    assert not refused.allowed
    assert "Slack did not answer" in refused.reason
    assert "internal_error" not in refused.reason  # plain words for the user, details in the log

    lookup.failing.clear()
    allowed = await perms.check(BOB)  # no clock change: a failure is not cached
    assert allowed.allowed
    assert lookup.calls == [PLATFORM, PLATFORM]


async def test_concurrent_checks_during_a_failure_are_all_refused(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    lookup.failing.add(PLATFORM)
    lookup.gate = asyncio.Event()
    perms = permissions(lookup, clock)
    checks = [asyncio.create_task(perms.check(BOB)) for _ in range(3)]
    await asyncio.wait_for(lookup.started.wait(), timeout=10)
    lookup.gate.set()
    decisions = await asyncio.wait_for(asyncio.gather(*checks), timeout=10)
    assert not any(d.allowed for d in decisions)
    assert lookup.calls == [PLATFORM]


async def test_a_failing_group_does_not_stop_another_from_granting(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    lookup.failing.add(PLATFORM)
    perms = permissions(lookup, clock, groups=[PLATFORM, OPS])
    granted = await perms.check(CAROL)
    assert granted.allowed
    assert granted.via == OPS

    # Someone in neither group is refused as a failure (fail closed), not as "not a member".
    refused = await perms.check(ALICE)
    assert not refused.allowed
    assert "Slack did not answer" in refused.reason


def test_grantors_name_the_groups_and_the_listed_users(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    """Whom a refusal says to ask: the groups once each, the users in the configured order (the text is
    `bot.blocks.whom_to_ask`'s; it used to say "members of <!subteam^…>" and "1 listed user")."""
    perms = permissions(
        lookup, clock, users=iter([BOB, ALICE, BOB]), groups=[PLATFORM, OPS, PLATFORM]
    )
    assert perms.grantors == Grantors(users=(BOB, ALICE), groups=(PLATFORM, OPS))


def test_the_operators_sentence_goes_with_the_grantors(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    perms = Permissions(
        users=[ALICE], usergroups=(), lookup=lookup, access_help="Ask in #platform-help."
    )
    assert perms.grantors == Grantors(users=(ALICE,), access_help="Ask in #platform-help.")
    blank = Permissions(users=[ALICE], usergroups=(), lookup=lookup, access_help="")
    assert blank.grantors.access_help is None


async def test_users_given_as_an_iterator_are_still_allowed(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    perms = permissions(lookup, clock, users=iter([ALICE]), groups=())
    assert (await perms.check(ALICE)).allowed


# -- roles: operators and viewers --------------------------------------------------------------------------------

HOME = "T0HOME001"
DAVE = "U0DAVE004"  # a guest
ERIN = "U0ERIN005"  # of another team, through Slack Connect
FRANK = "U0FRANK06"  # unknown to users.info


class FakeProfiles:
    """`users.info` and `auth.test` stand-ins, counting calls; `failing` makes users.info raise."""

    def __init__(self) -> None:
        self.profiles = {
            ALICE: Profile(team_id=HOME, guest=False, stranger=False),
            CAROL: Profile(team_id=HOME, guest=False, stranger=False),
            DAVE: Profile(team_id=HOME, guest=True, stranger=False),
            ERIN: Profile(team_id="T0OTHER01", guest=False, stranger=True),
        }
        self.calls: list[str] = []
        self.failing = False

    async def profile(self, user_id: str) -> Profile:
        self.calls.append(user_id)
        if self.failing:
            raise RuntimeError("users.info: ratelimited")
        if user_id not in self.profiles:
            raise RuntimeError("users.info: user_not_found")
        return self.profiles[user_id]

    async def team(self) -> str:
        self.calls.append("auth.test")
        return HOME


def roles(
    lookup: FakeLookup,
    clock: FakeClock,
    profiles: FakeProfiles,
    *,
    viewers: Iterable[str] = (),
    viewer_groups: Iterable[str] = (),
) -> Permissions:
    return Permissions(
        users=(BOB,),
        usergroups=(),
        lookup=lookup,
        viewer_users=viewers,
        viewer_usergroups=viewer_groups,
        profile=profiles.profile,
        home_team=profiles.team,
        ttl=60.0,
        clock=clock,
    )


async def test_operators_are_viewers_too_and_viewers_only_look(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    perms = roles(lookup, clock, FakeProfiles(), viewers=(ALICE,), viewer_groups=(OPS,))
    bob, alice, carol, dave = [await perms.standing(u) for u in (BOB, ALICE, CAROL, "U0DAVE004")]
    assert bob.role == "operator" and bob.may("viewer") and bob.may("operator")
    assert alice.role == "viewer" and alice.may("viewer") and not alice.may("operator")
    assert (carol.role, carol.via) == ("viewer", OPS)
    assert dave.role is None and not dave.may("viewer")


async def test_every_member_admits_full_members_of_the_home_team_only(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    profiles = FakeProfiles()
    perms = roles(lookup, clock, profiles, viewers=("*",))
    assert (await perms.standing(ALICE)).role == "viewer"
    guest, stranger, unknown = [await perms.standing(u) for u in (DAVE, ERIN, FRANK)]
    assert guest.role is None and "guests" in guest.reason
    assert stranger.role is None and "another organisation" in stranger.reason
    assert unknown.role is None and "did not answer" in unknown.reason  # fails closed
    assert (await perms.standing(ALICE)).role == "viewer"
    assert profiles.calls.count(ALICE) == 1  # cached for the TTL
    assert profiles.calls.count("auth.test") == 1
    clock.now += 61
    await perms.standing(ALICE)
    assert profiles.calls.count(ALICE) == 2


async def test_every_member_fails_closed_when_slack_does_not_answer(
    lookup: FakeLookup, clock: FakeClock
) -> None:
    profiles = FakeProfiles()
    profiles.failing = True
    perms = roles(lookup, clock, profiles, viewers=("*",))
    refused = await perms.standing(ALICE)
    assert refused.role is None and "Try again" in refused.reason
    profiles.failing = False  # a failure is not cached
    assert (await perms.standing(ALICE)).role == "viewer"


async def test_nobody_has_a_role_by_default(lookup: FakeLookup, clock: FakeClock) -> None:
    perms = Permissions(users=(), usergroups=(), lookup=lookup, clock=clock)
    standing = await perms.standing(ALICE)
    assert standing.role is None and "Nobody is allowed yet" in standing.reason


def test_every_member_needs_the_lookups(lookup: FakeLookup) -> None:
    with pytest.raises(ValueError, match=r"users\.info"):
        Permissions(users=(), usergroups=(), lookup=lookup, viewer_users=("*",))
