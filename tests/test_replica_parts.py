"""The parts replicas share, without Redis: the leader lease, the shared replay window, the shared cards'
records, and the refresh form's state (read strictly)."""

from __future__ import annotations

import json

import pytest

from bot.coordination import CoordinationUnavailable, InProcessStore, Store
from bot.leadership import Leadership
from bot.refresh_form import BadForm, parse_state
from bot.request_gate import SharedReplayWindow
from bot.shared_cards import SharedCards
from bot.view_blocks import FormState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_one_leader_and_a_takeover_when_its_lease_runs_out() -> None:
    clock = Clock()
    store = InProcessStore(clock=clock)
    rounds: list[str] = []

    async def round_of(name: str) -> None:
        rounds.append(name)

    first = Leadership(store, ttl=9, owner="a", while_leading=lambda: round_of("a"))
    second = Leadership(store, ttl=9, owner="b", while_leading=lambda: round_of("b"))
    await first._attempt()
    await second._attempt()
    assert (first.leading, second.leading) == (True, False) and rounds == ["a"]
    clock.now += 10  # the leader died: no renewal for longer than the lease
    await second._attempt()
    assert second.leading and rounds == ["a", "b"]
    await first._attempt()
    assert not first.leading  # the old leader stands down when it comes back


class Unreachable(InProcessStore):
    async def acquire_or_renew(self, name: str, owner: str, ttl: float) -> bool:
        raise CoordinationUnavailable("redis://example:6379/0: no answer")

    async def claim(self, key: str, ttl: float, value: str = "1") -> bool:
        raise CoordinationUnavailable("redis://example:6379/0: no answer")


async def test_an_unreachable_store_means_not_leading() -> None:
    leadership = Leadership(Unreachable(), ttl=3, owner="a")
    leadership.leading = True
    await leadership._attempt()
    assert leadership.leading is False


@pytest.mark.parametrize("store", [InProcessStore(), Unreachable()], ids=["store", "unreachable"])
async def test_the_shared_replay_window_answers_once_per_payload(store: Store) -> None:
    one, two = SharedReplayWindow(store), SharedReplayWindow(store)
    payload = {"type": "block_actions", "trigger_id": "1.2.3"}
    assert await one.first_time(payload) is True
    assert await one.first_time(payload) is False  # this replica saw it
    if not isinstance(store, Unreachable):
        assert await two.first_time(payload) is False  # another replica saw it


async def test_shared_followed_jobs_merge_cards_and_forget_replaced_ones() -> None:
    shared = SharedCards(InProcessStore())
    key = ("env1", "job1")
    await shared.follow(key, {"cards": [{"channel": "C1", "ts": "1.0"}]}, 60)
    await shared.follow(key, {"cards": [{"channel": "C2", "ts": "2.0"}]}, 60)
    (record,) = (await shared.followed()).values()
    assert {c["channel"] for c in record["cards"]} == {"C1", "C2"}
    await shared.follow(
        key, {"cards": [{"channel": "C1", "ts": "3.0"}], "replaced": [["C1", "1.0"]]}, 60
    )
    (record,) = (await shared.followed()).values()
    assert {(c["channel"], c["ts"]) for c in record["cards"]} == {("C1", "3.0"), ("C2", "2.0")}


def test_the_form_state_round_trips_and_anything_else_is_refused() -> None:
    state = FormState(
        nonce="0123456789abcdef",
        known={"env1": "2030-01-01T00:00:00+00:00"},
        tz="Europe/Berlin",
        channel="C0SANDBOX1",
        home=True,
        step="confirm",
        env="env1",
        issued="2026-12-01T10:00:00+00:00",
    )
    assert parse_state(state.dumps()) == state
    data = json.loads(state.dumps())
    for broken in (
        "not json",
        json.dumps([1]),
        json.dumps({**data, "nonce": "short"}),
        json.dumps({**data, "step": "other"}),
        json.dumps({**data, "known": {"bad/id": ""}}),
        json.dumps({**data, "channel": "<!channel>"}),
        json.dumps({**data, "tz": "x" * 200}),
    ):
        with pytest.raises(BadForm):
            parse_state(broken)


def test_a_form_that_knows_too_many_environments_stays_within_slacks_limit() -> None:
    known = {f"{n:032x}": "2030-01-01T00:00:00+00:00" for n in range(200)}
    text = FormState(nonce="0123456789abcdef", known=known).dumps()
    assert len(text) <= 3000 and parse_state(text).known
