"""Zuora client overhead: `ZuoraClient.get_job` (track ID, retry policy, pydantic model, metrics observer) against
raw `httpx.AsyncClient` GETs of the same URL with the same headers and a `.json()`, through one shared connection
pool to the simulator (on its own thread, as Zuora is elsewhere). Sequential calls compare per-call latency;
concurrent bursts compare wall time. Both sides include the round trip, so the ratio understates the client's own
cost; `overhead_per_call_seconds` gives it in absolute terms."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.common import (
    ZUORA_CLIENT_ID,
    ZUORA_CLIENT_SECRET,
    ZuoraThread,
    bench_settings,
    ratio,
    summarize,
)
from bot.metrics import Metrics
from bot.runtime import zuora_http_client
from bot.sim.clock import ManualClock
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_STAGING, JOB_CANCELLABLE
from bot.zuora.auth import OAuthClientCredentials
from bot.zuora.client import USER_AGENT, ZuoraClient
from bot.zuora.responses import TRACK_ID_HEADER
from bot.zuora.trackid import new_track_id

GET_JOB = "getJobOfTestEnvironment"

Call = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ClientConfig:
    calls: int = 200
    """Sequential calls per side per round."""
    concurrency: int = 40
    """Calls per concurrent burst (one burst per side per round); the pool allows 20 connections, like the bot."""
    rounds: int = 5
    warmup: int = 10


QUICK = ClientConfig(calls=10, concurrency=5, rounds=1, warmup=2)


async def _sequential(call: Call, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def _concurrent(call: Call, count: int) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(call() for _ in range(count)))
    return time.perf_counter() - started


async def run(config: ClientConfig) -> dict[str, Any]:
    sim = ZuoraSimulator(
        ManualClock(), client_id=ZUORA_CLIENT_ID, client_secret=ZUORA_CLIENT_SECRET
    )
    server = ZuoraThread(sim)
    await server.start()
    try:
        settings = bench_settings(sim.base_url, "https://slack.invalid/api/")
        async with zuora_http_client(settings) as http:
            auth = OAuthClientCredentials(
                http=http,
                base_url=sim.base_url,
                client_id=ZUORA_CLIENT_ID,
                client_secret=settings.zuora_client_secret,
            )
            client = ZuoraClient(
                base_url=sim.base_url, auth=auth, http=http, observer=Metrics().observe_zuora
            )
            token = await auth.get()
            url = f"{sim.base_url}/test-environments/{ENV_STAGING}/jobs/{JOB_CANCELLABLE}"

            async def raw() -> None:
                headers = {
                    "Authorization": f"Bearer {token}",
                    TRACK_ID_HEADER: new_track_id(),
                    "Accept": "application/json",
                    "Accept-Encoding": "gzip",
                    "User-Agent": USER_AGENT,
                }
                response = await http.get(url, headers=headers)
                response.raise_for_status()
                if response.json()["id"] != JOB_CANCELLABLE:
                    raise AssertionError("the simulator answered another job")

            async def typed() -> None:
                job = await client.get_job(ENV_STAGING, JOB_CANCELLABLE)
                if job.id != JOB_CANCELLABLE:
                    raise AssertionError("the client returned another job")

            sides = {"client": typed, "raw": raw}
            for call in sides.values():
                await _sequential(call, config.warmup)
                await _concurrent(call, config.concurrency)
            seen_before = sum(1 for r in sim.requests if r.operation == GET_JOB)

            sequential: dict[str, list[float]] = {name: [] for name in sides}
            bursts: dict[str, list[float]] = {name: [] for name in sides}
            for round_number in range(config.rounds):
                # Alternate which side goes first, so a drift of the machine hits both alike.
                order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
                for name in order:
                    sequential[name] += await _sequential(sides[name], config.calls)
                    bursts[name].append(await _concurrent(sides[name], config.concurrency))
            seen = sum(1 for r in sim.requests if r.operation == GET_JOB) - seen_before
    finally:
        await server.stop()

    seq = {name: summarize(samples) for name, samples in sequential.items()}
    conc = {name: summarize(samples) for name, samples in bursts.items()}
    return {
        "config": dataclasses.asdict(config),
        "sequential": {
            **seq,
            "ratio": {k: ratio(seq["client"][k], seq["raw"][k]) for k in ("p50", "p95", "mean")},
        },
        "concurrent": {
            **conc,
            "ratio": {k: ratio(conc["client"][k], conc["raw"][k]) for k in ("p50", "max")},
        },
        "overhead_per_call_seconds": seq["client"]["mean"] - seq["raw"]["mean"],
        "calls": {
            name: len(sequential[name]) + config.concurrency * len(bursts[name]) for name in sides
        },
        "simulator_get_job_requests": seen,
    }
