"""PollRounds: one task runs the rounds of many keys, each after its own pause."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.poll_rounds import Next, PollRounds

WAIT = 20.0


async def until(predicate: Callable[[], bool]) -> None:
    """Wait for a condition (never for a quiet period)."""
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.005)


class Recorder:
    """A round function: the clock at each round of each key; `plan[key]` says what each round returns."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.plan: dict[str, Callable[[int], Awaitable[Next]]] = {}

    async def __call__(self, key: str) -> Next:
        self.times[key].append(time.monotonic())
        return await self.plan[key](len(self.times[key]))


def returning(*results: Next) -> Callable[[int], Awaitable[Next]]:
    async def plan(number: int) -> Next:
        return results[number - 1] if number <= len(results) else None

    return plan


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, PollRounds]]:
    record = Recorder()
    rounds = PollRounds(record, sleep=asyncio.sleep, clock=time.monotonic, name="test-rounds")
    yield record, rounds
    await rounds.close()


def ticker_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("test-rounds")]


async def test_a_thousand_keys_waiting_are_one_task(
    recorder: tuple[Recorder, PollRounds],
) -> None:
    record, rounds = recorder
    for number in range(1000):
        record.plan[f"env-{number}"] = returning()
        rounds.schedule(f"env-{number}", 3600)
    await asyncio.sleep(0)  # the ticker's first step
    assert len(ticker_tasks()) == 1
    assert all(f"env-{n}" in rounds for n in (0, 500, 999))
    await rounds.close()
    assert ticker_tasks() == [] or all(t.done() for t in ticker_tasks())
    assert "env-0" not in rounds


async def test_each_key_runs_after_its_pause_then_after_the_pause_its_round_returns(
    recorder: tuple[Recorder, PollRounds],
) -> None:
    record, rounds = recorder
    record.plan["often"] = returning((0.02, False), (0.02, False))
    record.plan["once"] = returning()
    started = time.monotonic()
    rounds.schedule("often", 0.02)
    rounds.schedule("once", 0.05)
    rounds.schedule("once", 0.0)  # already pending: not a second round, nor an earlier one
    await until(lambda: len(record.times["often"]) == 3 and len(record.times["once"]) == 1)
    often = [started, *record.times["often"]]
    # asyncio may end a sleep up to its clock's resolution early
    assert all(later - earlier >= 0.02 - 1e-6 for earlier, later in itertools.pairwise(often))
    assert record.times["once"][0] - started >= 0.05 - 1e-6
    # Their rounds returned None: nothing is pending, and the ticker is gone.
    await until(lambda: "often" not in rounds and "once" not in rounds and not ticker_tasks())
    assert (len(record.times["often"]), len(record.times["once"])) == (3, 1)


async def test_a_slow_round_holds_up_no_other_key(recorder: tuple[Recorder, PollRounds]) -> None:
    record, rounds = recorder
    release = asyncio.Event()

    async def stuck(_number: int) -> Next:
        await release.wait()
        return None

    record.plan["slow"] = stuck
    record.plan["fast"] = returning(*[(0.01, False)] * 4)
    rounds.schedule("slow", 0.0)
    rounds.schedule("fast", 0.01)
    await until(lambda: len(record.times["fast"]) == 5)
    assert len(record.times["slow"]) == 1 and not release.is_set()
    assert "slow" in rounds  # running
    release.set()
    await until(lambda: "slow" not in rounds)


async def test_wake_ends_a_wakeable_pause_and_no_other(
    recorder: tuple[Recorder, PollRounds],
) -> None:
    record, rounds = recorder
    for key in ("wakeable", "fixed", "marker"):
        record.plan[key] = returning()
    rounds.schedule("wakeable", 3600, wakeable=True)
    rounds.schedule("fixed", 3600)
    rounds.wake("wakeable")
    rounds.wake("fixed")
    await until(lambda: len(record.times["wakeable"]) == 1)
    # A round for another key makes the ticker look at every pause again: the fixed one still holds.
    rounds.schedule("marker", 0.0)
    await until(lambda: len(record.times["marker"]) == 1)
    assert record.times["fixed"] == [] and "fixed" in rounds
    rounds.wake("unknown")  # nothing pending for it: nothing happens
    assert "unknown" not in rounds


async def test_a_round_that_fails_is_logged_and_ends_that_key_only(
    recorder: tuple[Recorder, PollRounds], caplog: pytest.LogCaptureFixture
) -> None:
    record, rounds = recorder

    async def broken(_number: int) -> Next:
        raise RuntimeError("a bug in a round")

    record.plan["broken"] = broken
    record.plan["healthy"] = returning((0.01, False))
    with caplog.at_level(logging.ERROR, logger="bot.poll_rounds"):
        rounds.schedule("broken", 0.0)
        rounds.schedule("healthy", 0.01)
        await until(lambda: len(record.times["healthy"]) == 2 and "broken" not in rounds)
    assert any("polling round failed" in r.getMessage() for r in caplog.records)
    # The key may be scheduled again.
    record.plan["broken"] = returning()
    rounds.schedule("broken", 0.0)
    await until(lambda: len(record.times["broken"]) == 2)


async def test_close_stops_the_ticker_and_every_running_round(
    recorder: tuple[Recorder, PollRounds],
) -> None:
    record, rounds = recorder
    cancelled = asyncio.Event()

    async def long_round(_number: int) -> Next:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    record.plan["running"] = long_round
    record.plan["waiting"] = returning()
    rounds.schedule("running", 0.0)
    rounds.schedule("waiting", 3600)
    await until(lambda: len(record.times["running"]) == 1)
    await rounds.close()
    assert cancelled.is_set()
    assert "running" not in rounds and "waiting" not in rounds
    assert all(t.done() for t in ticker_tasks())


async def test_a_round_that_ends_while_close_waits_schedules_nothing(
    recorder: tuple[Recorder, PollRounds],
) -> None:
    record, rounds = recorder
    unwinding = asyncio.Event()

    async def slow_to_stop(_number: int) -> Next:
        try:
            await asyncio.Event().wait()
        finally:
            unwinding.set()
            await asyncio.sleep(0.02)  # its clean-up takes a moment (an HTTP call unwinding)
        return None

    async def quick(_number: int) -> Next:
        await unwinding.wait()  # ends on its own while close() waits for the other
        return (0.0, False)

    record.plan["slow"] = slow_to_stop
    record.plan["quick"] = quick
    rounds.schedule("slow", 0.0)
    rounds.schedule("quick", 0.0)
    await until(lambda: len(record.times["slow"]) == 1 and len(record.times["quick"]) == 1)
    await rounds.close()
    assert "quick" not in rounds and "slow" not in rounds
    assert all(t.done() for t in ticker_tasks())


async def test_pauses_are_kept_on_a_clock_that_starts_at_zero() -> None:
    """Several keys pending, on a fake clock from 0: each round at its own time."""
    now = [0.0]
    pauses: list[float] = []
    ran: list[tuple[str, float]] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1:
            await asyncio.Event().wait()  # the first pause ends only by being cut short
        await asyncio.sleep(0.005)
        now[0] += seconds

    async def run_round(key: str) -> Next:
        ran.append((key, now[0]))
        return None

    rounds = PollRounds(run_round, sleep=sleep, clock=lambda: now[0], name="test-rounds")
    rounds.schedule("later", 10.0)
    await until(lambda: pauses == [10.0])  # the ticker is in the pause for "later"
    rounds.schedule("sooner", 3.0)  # due before it: the ticker looks again
    await until(lambda: len(ran) == 2)
    assert ran == [("sooner", 3.0), ("later", 10.0)]
    assert pauses == [10.0, 3.0, 7.0]  # what was left of the first pause, not all of it again
    await rounds.close()
