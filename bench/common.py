"""What the benchmarks share: the simulated world (Zuora simulator, Slack emulator, the bot), a bare Bolt app to
compare with, signed bursts of slash commands, and summary statistics."""

# ruff: noqa: ASYNC109  # the wait helpers take a timeout by design

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from prometheus_client import Counter as PromCounter
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings, load_settings
from bot.operations import Operations
from bot.runtime import EVENTS_PATH, Runtime
from bot.sim.clock import ManualClock
from bot.sim.slack import Delivery, SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_STAGING, ENV_UAT

BOT_TOKEN = "xoxb-bench-bot-token-0123456789"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
ZUORA_CLIENT_ID = "0123abcd-0000-4000-8000-00000000be5c"
ZUORA_CLIENT_SECRET = "zuora-bench-secret-never-logged"
USER = "U0BENCHER1"
CHANNEL = "C0BENCH001"
NOTIFY = "C0BENCHLOG"
ACK_BUDGET = 3.0  # Slack gives up on an ack after 3 s

Target = tuple[str, str]  # (test environment ID, cancellable job ID)


# -- statistics ------------------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """count, p50, p95, max and mean of `samples` (seconds stay seconds)."""
    return {
        "count": len(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "max": max(samples),
        "mean": sum(samples) / len(samples),
    }


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the baseline is zero (no ratio to speak of)."""
    return numerator / denominator if denominator > 0 else None


# -- the simulated world ---------------------------------------------------------------------------------------


def bench_settings(zuora_url: str, slack_api_url: str, **overrides: Any) -> Settings:
    """The bot's configuration for a benchmark: HTTP mode, one allowed user, a notification channel. Every
    setting that changes behaviour is given, so variables in the caller's shell change nothing."""
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_app_token": "",
        "slack_api_url": slack_api_url,
        "port": 0,
        "zuora_base_url": zuora_url,
        "zuora_client_id": ZUORA_CLIENT_ID,
        "zuora_client_secret": ZUORA_CLIENT_SECRET,
        "zuora_timeout_seconds": 30,
        "zuora_entity_id": "",
        "zuora_gzip_requests": False,
        "sandbox_allowed_users": USER,
        "sandbox_allowed_usergroups": "",
        "sandbox_environments": f"staging={ENV_STAGING},uat={ENV_UAT}",
        "sandbox_notify_channel": NOTIFY,
        "sandbox_poll_seconds": 20.0,
        "sandbox_watch_environments": "",
    }
    values.update(overrides)
    return load_settings(env_file=None, **values)


class ZuoraThread:
    """Runs the Zuora simulator on its own event loop in a thread. The real Zuora is not in the bot's process, so
    the simulator's handling of a burst of calls should not queue on the bot's event loop (it still shares the
    interpreter lock: on a busy machine the bot's figures include some of its cost).

    The simulator's helpers (`add_job`, `inject`, `job`) are called from the main thread only while no request
    is in flight, or only read."""

    def __init__(self, sim: ZuoraSimulator) -> None:
        self.sim = sim
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="zuora-simulator", daemon=True
        )

    async def start(self) -> None:
        self._thread.start()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.sim.start(), self._loop))

    async def stop(self) -> None:
        if self._thread.is_alive():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.sim.stop(), self._loop))
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 5.0)
        if not self._loop.is_running():
            self._loop.close()


class Stack:
    """Zuora simulator (manual clock, own thread) + Slack emulator + the bot in HTTP mode, on 127.0.0.1, port 0.

    `overrides` are bot settings (e.g. `sandbox_poll_seconds=0.1`)."""

    def __init__(self, **overrides: Any) -> None:
        self.clock = ManualClock()
        self.zuora = ZuoraSimulator(
            self.clock, client_id=ZUORA_CLIENT_ID, client_secret=ZUORA_CLIENT_SECRET
        )
        self.slack = SlackEmulator(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET)
        self._zuora_thread = ZuoraThread(self.zuora)
        self._overrides = overrides
        self._runtime: Runtime | None = None

    async def __aenter__(self) -> Self:
        await self._zuora_thread.start()
        try:
            await self.slack.start()
            settings = bench_settings(self.zuora.base_url, self.slack.api_url, **self._overrides)
            self._runtime = Runtime(settings, host="127.0.0.1")
            await self._runtime.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runtime is not None:
            await self._runtime.stop()
        await self.slack.stop()
        await self._zuora_thread.stop()

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the stack is not started")
        return self._runtime

    @property
    def events_url(self) -> str:
        return self.runtime.events_url

    def add_cancellable_jobs(self, count: int) -> list[Target]:
        """`count` fresh environments with one running (EXPORTING) refresh each: Zuora allows one active job
        per environment, so every cancel of a burst reaches Zuora for real instead of being a duplicate."""
        targets: list[Target] = []
        for number in range(count):
            env_id = str(self.zuora.add_environment(name=f"Bench {number}")["id"])
            job_id = str(self.zuora.add_job(env_id, status="EXPORTING")["id"])
            targets.append((env_id, job_id))
        return targets

    def handled(self) -> int:
        """Commands whose reply the bot has delivered (its `sandbox_commands` counter)."""
        return int(counter_total(self.runtime.metrics.commands))

    async def wait_handled(self, expected: int, timeout: float) -> bool:
        return await wait_until(lambda: self.handled() >= expected, timeout)

    def operations(self) -> Operations:
        """The bot's use cases, as the running bot exposes them."""
        return self.runtime.operations


def counter_total(counter: PromCounter) -> float:
    """Sum of a labelled prometheus Counter over all its label values."""
    return sum(
        float(sample.value)
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


class BareApp:
    """The baseline: a Bolt AsyncApp that acks `/sandbox` and does nothing else, verified and served exactly like
    the bot (same signing secret, Web API client against the emulator, aiohttp on loopback)."""

    def __init__(self, slack: SlackEmulator) -> None:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        self.app = AsyncApp(
            client=client,
            signing_secret=SIGNING_SECRET,
            process_before_response=False,
            raise_error_for_unhandled_request=False,
        )
        self.acked = 0

        @self.app.command("/sandbox")
        async def sandbox(ack: AsyncAck) -> None:
            await ack()
            self.acked += 1

        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _events(self, request: web.Request) -> web.Response:
        bolt_response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def __aenter__(self) -> Self:
        web_app = web.Application(client_max_size=1024 * 1024)
        web_app.router.add_post(EVENTS_PATH, self._events)
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{EVENTS_PATH}"


async def burst(slack: SlackEmulator, events_url: str, texts: Sequence[str]) -> list[Delivery]:
    """Send every `/sandbox <text>` at once, signed, each abandoned after Slack's 3 s ack budget."""
    return list(
        await asyncio.gather(
            *(
                slack.send_command(events_url, text, USER, CHANNEL, timeout=ACK_BUDGET)
                for text in texts
            )
        )
    )


def status_counts(deliveries: Sequence[Delivery]) -> dict[str, int]:
    """How many answers had each HTTP status ("timeout" for none within the budget)."""
    counts = Counter("timeout" if d.status is None else str(d.status) for d in deliveries)
    return dict(sorted(counts.items()))
