"""Ack latency under load: bursts of signed `/sandbox` commands against the bot (Zuora made slow) and against a
bare Bolt app that only acks, in the same process. The bot acks before it calls Zuora, so its ack latency should
stay close to the bare app's, and far below Zuora's latency, however slow Zuora is."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.common import (
    ACK_BUDGET,
    BareApp,
    Stack,
    Target,
    burst,
    ratio,
    status_counts,
    summarize,
)
from bot.sim.zuora_seed import JOB_CANCELLABLE

CANCEL_OPERATION = "performActionOfJob"


@dataclass(frozen=True)
class AckConfig:
    requests: int = 100
    """Commands per burst (one burst per side per round, all sent at once)."""
    rounds: int = 3
    zuora_latency: float = 1.0
    """Seconds the simulator holds every API call (not token requests)."""
    mix: tuple[str, ...] = ("cancel", "cancel", "status", "jobs")
    """Command kinds, cycled through a burst."""
    warmup: int = 2
    drain_timeout: float = 60.0
    """At most this long for the bot to deliver every reply of a burst."""


# Quick (CI) runs make Zuora slower than Slack's ack budget: an ack that waited for Zuora would time
# out, so every command acked is one acked before Zuora answered, however busy the machine.
QUICK = AckConfig(
    requests=8, rounds=1, warmup=1, drain_timeout=20.0, zuora_latency=ACK_BUDGET + 1.0
)


def command_texts(mix: tuple[str, ...], count: int, targets: Iterator[Target]) -> list[str]:
    """`count` command texts cycling through `mix`; each cancel takes a fresh job from `targets`."""
    texts = []
    for number in range(count):
        kind = mix[number % len(mix)]
        if kind == "cancel":
            env_id, job_id = next(targets)
            texts.append(f"cancel {env_id} {job_id}")
        elif kind == "status":
            texts.append(f"status staging {JOB_CANCELLABLE}")
        elif kind == "jobs":
            texts.append("jobs staging")
        else:
            raise ValueError(f"unknown command kind {kind!r}")
    return texts


async def run(config: AckConfig) -> dict[str, Any]:
    cancels_per_round = sum(
        1 for n in range(config.requests) if config.mix[n % len(config.mix)] == "cancel"
    )
    async with Stack() as stack, BareApp(stack.slack) as bare:
        targets = iter(stack.add_cancellable_jobs(cancels_per_round * config.rounds))

        # Warm both (Bolt's first request asks auth.test; the bot fetches its Zuora token) before measuring.
        warm = ["help", "jobs staging"] * config.warmup
        await burst(stack.slack, bare.events_url, warm)
        await burst(stack.slack, stack.events_url, warm)
        if not await stack.wait_handled(len(warm), config.drain_timeout):
            raise RuntimeError("the bot did not answer its warm-up commands")
        handled_before = stack.handled()
        zuora_before = len(stack.zuora.requests)

        stack.zuora.inject("latency", seconds=config.zuora_latency, count=None)
        bot, base, drains = [], [], []
        kinds: dict[str, list[float]] = {}
        for round_number in range(config.rounds):
            texts = command_texts(config.mix, config.requests, targets)
            base += await burst(stack.slack, bare.events_url, texts)
            started = time.perf_counter()
            delivered = await burst(stack.slack, stack.events_url, texts)
            bot += delivered
            for text, delivery in zip(texts, delivered, strict=True):
                kinds.setdefault(text.split()[0], []).append(delivery.elapsed)
            expected = handled_before + (round_number + 1) * config.requests
            await stack.wait_handled(expected, config.drain_timeout)
            drains.append(time.perf_counter() - started)
        stack.zuora.clear_faults()

        handled = stack.handled() - handled_before
        zuora_cancels = sum(
            1 for r in stack.zuora.requests[zuora_before:] if r.operation == CANCEL_OPERATION
        )

    bot_summary = summarize([d.elapsed for d in bot])
    bare_summary = summarize([d.elapsed for d in base])
    return {
        "config": dataclasses.asdict(config),
        "sent": len(bot),
        "statuses": {"bot": status_counts(bot), "bare": status_counts(base)},
        "bot": bot_summary,
        "bare": bare_summary,
        "ratio": {k: ratio(bot_summary[k], bare_summary[k]) for k in ("p50", "p95", "max")},
        "bot_by_kind": {kind: summarize(samples) for kind, samples in sorted(kinds.items())},
        "handled": handled,
        "zuora_cancels": zuora_cancels,
        "expected_cancels": cancels_per_round * config.rounds,
        "drain_seconds": drains,
        "bot_p95_below_zuora_latency": bot_summary["p95"] < config.zuora_latency,
    }
