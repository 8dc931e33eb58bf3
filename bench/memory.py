"""Memory: tracemalloc's peak while the bot handles K cancels at once (ack, Zuora call, job card, notification
card) against the bare Bolt app acking the same K commands; then, once every cancelled job has ended, what is
left: pollers, in-flight maps, tasks, and the bytes still held, by owner.

tracemalloc sees the whole process, so the bot's figures include the simulators' side of its calls (the
emulator storing cards, the Zuora simulator recording requests); the breakdown by owner tells them apart. What
the bot still holds afterwards is bounded: each keep-alive connection's last request and response (aiohttp), and
one notification card reference per job it announced (what `JobCards` keeps to edit cards in place)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import BareApp, Stack, Target, burst, ratio, status_counts, wait_until
from bot.sim.slack import Delivery

FRAMES = 6  # enough to find the project frame that asked for an allocation made inside a library
LIVE_CARD_TASK = "job-cards-poller"  # the task that polls, and a task per round while it runs
_BOT = str(Path(__file__).resolve().parent.parent / "bot")
_BENCH = str(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class MemoryConfig:
    requests: int = 100
    """K: commands sent at once (the emulator's HTTP pool holds 100 connections)."""
    poll_seconds: float = 2.0
    """The bot's job-card poll interval: long enough not to poll much while the burst is handled."""
    warmup: int = 3
    settle_timeout: float = 60.0


QUICK = MemoryConfig(requests=5, poll_seconds=0.3, warmup=1, settle_timeout=20.0)


@dataclass
class Handled:
    deliveries: list[Delivery]
    peak: int
    """Bytes: the most memory allocated since tracing began that was alive at one time."""
    seconds: float


@contextlib.contextmanager
def _tracing() -> Iterator[None]:
    gc.collect()
    tracemalloc.start(FRAMES)
    try:
        yield
    finally:
        tracemalloc.stop()


async def _handle(
    send: Callable[[], Awaitable[list[Delivery]]], done: Callable[[], bool], limit: float
) -> Handled:
    """Send, wait until `done()` holds, and read the peak (tracemalloc must be tracing)."""
    tracemalloc.reset_peak()
    started = time.perf_counter()
    deliveries = await send()
    if not await wait_until(done, limit):
        raise RuntimeError("the requests were not all handled in time")
    _current, peak = tracemalloc.get_traced_memory()
    return Handled(deliveries, peak, time.perf_counter() - started)


def _owner(frames: Sequence[tracemalloc.Frame]) -> str:
    """Who asked for an allocation: the newest frame in project code decides (bot, simulators, bench)."""
    for frame in frames:
        if frame.filename.startswith(_BOT):
            return "simulators" if "/sim/" in frame.filename[len(_BOT) :] else "bot"
        if frame.filename.startswith(_BENCH):
            return "bench"
    return "libraries"


def retained_by_owner(snapshot: tracemalloc.Snapshot) -> dict[str, int]:
    owners: dict[str, int] = {"bot": 0, "simulators": 0, "bench": 0, "libraries": 0}
    for trace in snapshot.traces:
        owners[_owner(trace.traceback)] += trace.size
    return owners


def _live_card_tasks() -> int:
    return sum(1 for t in asyncio.all_tasks() if t.get_name().startswith(LIVE_CARD_TASK))


def _background_tasks() -> int:
    """Tasks other than this one and the web servers' keep-alive connections (one task each, by design)."""
    current = asyncio.current_task()
    return sum(
        1
        for t in asyncio.all_tasks()
        if t is not current and getattr(t.get_coro(), "__qualname__", "") != "RequestHandler.start"
    )


async def run(config: MemoryConfig) -> dict[str, Any]:
    k = config.requests
    async with (
        Stack(sandbox_poll_seconds=config.poll_seconds) as stack,
        BareApp(stack.slack) as bare,
    ):
        runtime = stack.runtime
        cards = runtime.cards
        if cards.notification is None:
            raise RuntimeError("the bot runs without notification cards")
        all_targets = stack.add_cancellable_jobs(config.warmup + k)
        warm, targets = all_targets[: config.warmup], all_targets[config.warmup :]

        async def end_jobs() -> bool:
            """Let the cancelled jobs finish cancelling (a minute in Zuora) and the pollers see it."""
            stack.clock.advance(120)
            return await wait_until(lambda: not cards.following, config.settle_timeout)

        # Warm both paths through a whole job lifecycle, so first-use caches are not counted as per-request.
        await burst(stack.slack, bare.events_url, _cancels(warm))
        await burst(stack.slack, stack.events_url, _cancels(warm))
        if not await stack.wait_handled(len(warm), config.settle_timeout) or not await end_jobs():
            raise RuntimeError("the warm-up cancels were not handled")

        texts = _cancels(targets)
        acked_before = bare.acked
        with _tracing():
            base = await _handle(
                lambda: burst(stack.slack, bare.events_url, texts),
                lambda: bare.acked >= acked_before + k,
                config.settle_timeout,
            )

        handled_before = stack.handled()
        tasks_before = _background_tasks()
        with _tracing():
            bot = await _handle(
                lambda: burst(stack.slack, stack.events_url, texts),
                lambda: stack.handled() >= handled_before + k,
                config.settle_timeout,
            )
            followed = len(cards.following)
            ended = await end_jobs()
            # Pollers leave their watch in a `finally`; give the loop a moment to finish those tasks.
            await wait_until(lambda: _live_card_tasks() == 0, 5.0)
            gc.collect()
            retained, _peak = tracemalloc.get_traced_memory()
            owners = retained_by_owner(tracemalloc.take_snapshot())

        operations = stack.operations()
        after = {
            "jobs_ended": ended,
            "live_watching": len(cards.following),
            "live_card_tasks": _live_card_tasks(),
            "cancels_in_flight": operations.in_flight["cancel"],
            "refreshes_in_flight": operations.in_flight["refresh"],
            "background_tasks_before": tasks_before,
            "background_tasks_after": _background_tasks(),
            "notification_cards_remembered": sum(
                1 for env_id, job_id in targets if cards.announced(env_id, job_id) is not None
            ),
        }
        cancelled = sum(
            1
            for env_id, job_id in targets
            if stack.zuora.job(env_id, job_id)["status"] == "CANCELLED"
        )

    return {
        "config": dataclasses.asdict(config),
        "sent": k,
        "statuses": {"bot": status_counts(bot.deliveries), "bare": status_counts(base.deliveries)},
        "bot": {
            "peak_bytes": bot.peak,
            "per_request_bytes": bot.peak / k,
            "seconds": bot.seconds,
            "jobs_followed_when_handled": followed,
            "retained_bytes": retained,
            "retained_per_request_bytes": retained / k,
            "retained_by_owner": owners,
        },
        "bare": {
            "peak_bytes": base.peak,
            "per_request_bytes": base.peak / k,
            "seconds": base.seconds,
        },
        "ratio_peak": ratio(bot.peak, base.peak),
        "jobs_cancelled": cancelled,
        "after_jobs_end": after,
    }


def _cancels(targets: Sequence[Target]) -> list[str]:
    return [f"cancel {env_id} {job_id}" for env_id, job_id in targets]
