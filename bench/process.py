"""The bot and a bare Bolt app as processes of their own, side by side in one run, on loopback.

Both get the same bursts of N signed `/sandbox cancel` commands (each for a job of its own environment, as Zuora
holds one active job per environment), in alternating rounds; Zuora (the simulator, in a process of its own:
bench/zuora_server.py) takes `zuora_latency` seconds for every cancel. This process plays Slack: it sends the
commands, times their acks and receives the bot's Web API calls. Reported for both: ack p50/p95/p99 (median and spread over the
rounds), the time until every result was delivered (the bot: every job's card in the channel; the bare app
delivers nothing, so its acks), peak RSS of the process and start-up time to a healthy `/healthz`; for the bot
also Zuora requests, token requests, TCP connections opened to Zuora (through a counting proxy) and Slack Web API
calls by method. Then two in-process measurements: Zuora calls per environment per hour with four watched
environments each with a followed job, and Slack calls over one job's life (QUEUED, cancel, CANCELLING,
CANCELLED).
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import gc
import json
import math
import os
import secrets
import socket
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    ACK_BUDGET,
    BOT_TOKEN,
    CHANNEL,
    NOTIFY,
    SIGNING_SECRET,
    USER,
    ZUORA_CLIENT_ID,
    ZUORA_CLIENT_SECRET,
    Stack,
    percentile,
    ratio,
    wait_until,
)
from bot.sim.slack import SlackEmulator

CANCEL = "performActionOfJob"
CHECKOUT = Path(__file__).resolve().parent.parent  # the tree whose bot is measured


@dataclass(frozen=True)
class ProcessConfig:
    sizes: tuple[int, ...] = (100, 200)
    rounds: int = 5
    zuora_latency: float = 1.0
    pool: int = 20
    poll_window: float = 6.0
    """Seconds of polling measured for the calls-per-environment figure."""
    startups: int = 3
    """Starts of each process timed (the median is reported)."""


QUICK = ProcessConfig(
    sizes=(8,), rounds=1, zuora_latency=ACK_BUDGET + 1.0, poll_window=2.0, startups=2
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    proc: asyncio.subprocess.Process
    url: str
    startup: float

    def peak_rss(self) -> int:
        """VmHWM of the process: the most resident memory it has had, in bytes."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    async def stop(self) -> int | None:
        if self.proc.returncode is None:
            self.proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 30)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        return self.proc.returncode


def compile_bot(tree: Path) -> None:
    """Byte-compile the bot's modules in `tree`, as installing the package does (pip compiles them; the image's
    bot starts from bytecode). A checkout run with PYTHONDONTWRITEBYTECODE, as on this machine, would otherwise
    compile its fifty modules at every start (a quarter of a second), which the bare app, made only of
    installed libraries, never does."""
    if not compileall.compile_dir(str(tree / "bot"), quiet=1):
        raise RuntimeError(f"the bot's modules in {tree} did not compile")


async def spawn(name: str, args: Sequence[str], env: dict[str, str], port: int) -> Process:
    """Start a process and wait for its `/healthz` to answer 200; the wait is its start-up time."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() - started < 60:
            if proc.returncode is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} before it was healthy")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return Process(name, proc, url, time.perf_counter() - started)
            await asyncio.sleep(0.02)  # the polling interval of a readiness probe
    proc.kill()
    raise RuntimeError(f"{name} did not become healthy within 60 s")


def bot_environment(zuora_url: str, slack: SlackEmulator, port: int, pool: int) -> dict[str, str]:
    keep = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ZUORA_", "SANDBOX_"))
    }
    return {
        **keep,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ZUORA_BASE_URL": zuora_url,
        "ZUORA_CLIENT_ID": ZUORA_CLIENT_ID,
        "ZUORA_CLIENT_SECRET": ZUORA_CLIENT_SECRET,
        "ZUORA_MAX_CONNECTIONS": str(pool),
        "SANDBOX_ALLOWED_USERS": USER,
        "SANDBOX_NOTIFY_CHANNEL": NOTIFY,
        "SANDBOX_POLL_SECONDS": "3600",  # the burst's results, not the polling after it, are measured here
        "LOG_LEVEL": "WARNING",
    }


class Cards:
    """Counts the bot's CANCELLING cards in the channel as Slack receives them, reading only new calls."""

    def __init__(self, slack: SlackEmulator) -> None:
        self._slack = slack
        self._seen = len(slack.calls)
        self.count = 0

    def update(self) -> int:
        calls = self._slack.calls
        for call in calls[self._seen :]:
            if (
                call.method == "chat.postMessage"
                and call.args.get("channel") == CHANNEL
                and "CANCELLING" in str(call.args.get("text", ""))
            ):
                self.count += 1
        self._seen = len(calls)
        return self.count


async def bot_metrics(url: str) -> dict[str, float]:
    """What the bot's `/metrics` says: commands handled (their records written too), acks timed, acks over 1 s."""
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as answer:
        text = await answer.text()
    wanted = {
        "sandbox_commands_total": "handled",
        "sandbox_ack_seconds_count": "acks",
        "sandbox_acks_over_1s_total": "acks_over_1s",
    }
    found = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                found[wanted[sample.name]] += sample.value
    return found


async def one_burst(
    slack: SlackEmulator, url: str, texts: Sequence[str], *, handled: int | None
) -> dict[str, Any]:
    """Send `texts` at once and time their acks. `handled`: for the bot, how many commands it will have handled
    in all once this burst is (the round ends when it has, and when every card is in the channel); None for
    the bare app, which delivers nothing."""
    cards = Cards(slack)
    # This process's own garbage collector does not run while it times acks (a full collection of the
    # emulator's records took 235 ms once, in the middle of a burst): collected before, paused during.
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        deliveries = await asyncio.gather(
            *(
                slack.send_command(url + "/slack/events", t, USER, CHANNEL, timeout=None)
                for t in texts
            )
        )
    finally:
        gc.enable()
    acks = [d.elapsed for d in deliveries]
    delivered = max(acks)
    if handled is not None:
        if not await wait_until(lambda: cards.update() >= len(texts), 120.0):
            raise RuntimeError(f"only {cards.count} of {len(texts)} results were delivered")
        delivered = time.perf_counter() - started
        # The next round starts once the bot has finished this one (the notification cards and audit lines
        # after the last card), so that no round's acks compete with the work of the round before.
        deadline = time.perf_counter() + 60.0
        while (await bot_metrics(url))["handled"] < handled:
            if time.perf_counter() > deadline:
                raise RuntimeError("the bot did not finish the round's commands")
            await asyncio.sleep(0.02)
    return {
        "p50": percentile(acks, 50),
        "p95": percentile(acks, 95),
        "p99": percentile(acks, 99),
        "over_1s": sum(1 for a in acks if a > 1.0),
        "not_200": sum(1 for d in deliveries if d.status != 200),
        "delivered": delivered,
    }


def spread(rounds: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """The median, the extremes and every round's value, in the order the rounds ran."""
    values = [r[key] for r in rounds]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "rounds": values,
    }


class ZuoraProcess:
    """The Zuora simulator and its connection-counting proxy in a process of their own (bench/zuora_server.py),
    as the real Zuora is: not in the process that plays Slack and times the acks."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self._control = ""
        self._session: aiohttp.ClientSession | None = None

    async def start(self, latency: float) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.zuora_server", "--latency", str(latency),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the Zuora simulator did not start")
        urls = json.loads(line)
        self.url, self._control = urls["zuora"], urls["control"]
        self._session = aiohttp.ClientSession()

    async def seed(self, count: int) -> list[tuple[str, str]]:
        """`count` new environments with one running refresh each: (environment ID, job ID)."""
        assert self._session is not None
        async with self._session.post(f"{self._control}/seed", params={"count": count}) as answer:
            return [(env, job) for env, job in await answer.json()]

    async def stats(self) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.get(f"{self._control}/stats") as answer:
            found: dict[str, Any] = await answer.json()
            return found

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 30)
            if self._proc.returncode is None:
                self._proc.kill()
                await self._proc.wait()


async def bursts(config: ProcessConfig) -> dict[str, Any]:
    zuora = ZuoraProcess()
    slack = SlackEmulator(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET)
    await slack.start()
    processes: list[Process] = []
    try:
        await zuora.start(config.zuora_latency)
        bot_port, bare_port = free_port(), free_port()
        env = bot_environment(zuora.url, slack, bot_port, config.pool)
        compile_bot(CHECKOUT)
        bot_args = ["-m", "bot"]
        bare_args = ["-m", "bench.bare_app", "--port", str(bare_port)]
        # Start-up is timed over several starts, in alternation (one is as noisy as the machine); the last
        # start of each serves the bursts.
        startups: dict[str, list[float]] = {"bot": [], "bare": []}
        for _ in range(config.startups - 1):
            for name, args, port in (("bot", bot_args, bot_port), ("bare", bare_args, bare_port)):
                trial = await spawn(name, args, env, port)
                startups[name].append(trial.startup)
                await trial.stop()
        bot = await spawn("bot", bot_args, env, bot_port)
        bare = await spawn("bare", bare_args, env, bare_port)
        startups["bot"].append(bot.startup)
        startups["bare"].append(bare.startup)
        processes = [bot, bare]
        sent_to_bot = 0
        by_size: dict[str, Any] = {}
        for size in config.sizes:
            sides: dict[str, list[dict[str, Any]]] = {"bot": [], "bare": []}
            for number in range(config.rounds):
                for side in (bot, bare) if number % 2 == 0 else (bare, bot):
                    texts = [f"cancel {env} {job}" for env, job in await zuora.seed(size)]
                    if side is bot:
                        sent_to_bot += len(texts)
                    handled = sent_to_bot if side is bot else None
                    result = await one_burst(slack, side.url, texts, handled=handled)
                    sides[side.name].append(result)
            summary: dict[str, Any] = {
                name: {key: spread(rounds, key) for key in ("p50", "p95", "p99", "delivered")}
                | {
                    "over_1s": sum(r["over_1s"] for r in rounds),
                    "not_200": sum(r["not_200"] for r in rounds),
                }
                for name, rounds in sides.items()
            }
            bound = math.ceil(size / config.pool) * config.zuora_latency + 1.0
            summary["ratio_p99"] = ratio(
                summary["bot"]["p99"]["median"], summary["bare"]["p99"]["median"]
            )
            summary["ratio_p50"] = ratio(
                summary["bot"]["p50"]["median"], summary["bare"]["p50"]["median"]
            )
            summary["delivery_bound"] = bound
            by_size[str(size)] = summary
        calls = Counter(call.method for call in slack.calls)
        stats = await zuora.stats()
        result = {
            "config": {
                "sizes": list(config.sizes),
                "rounds": config.rounds,
                "zuora_latency": config.zuora_latency,
                "pool": config.pool,
            },
            "bursts": by_size,
            "startup": {
                "bot": statistics.median(startups["bot"]),
                "bare": statistics.median(startups["bare"]),
                "ratio": ratio(
                    statistics.median(startups["bot"]), statistics.median(startups["bare"])
                ),
                "samples": startups,
            },
            "peak_rss": {
                "bot": bot.peak_rss(),
                "bare": bare.peak_rss(),
                "ratio": ratio(bot.peak_rss(), bare.peak_rss()),
            },
            "zuora_requests": stats["by_operation"],
            "token_requests": stats["token_requests"],
            "zuora_connections": stats["connections"],
            "bot_metrics": await bot_metrics(bot.url),
            "slack_calls": dict(sorted(calls.items())),
        }
        result["exit_codes"] = {p.name: await p.stop() for p in processes}
        return result
    finally:
        for process in processes:
            await process.stop()
        await zuora.stop()
        await slack.stop()


async def polling(window: float) -> dict[str, Any]:
    """Four watched environments, each with a followed job, polled and watched every second: Zuora calls per
    environment per hour. Before the shared view it was one GET per followed job per poll plus the watch's
    list per environment per round: two a second per environment."""
    jobs = [(secrets.token_hex(16), str(uuid.uuid4())) for _ in range(4)]
    envs = [env for env, _job in jobs]
    async with Stack(
        sandbox_poll_seconds=1.0,
        sandbox_watch_seconds=1.0,
        sandbox_watch_environments=",".join(envs),
    ) as stack:
        for env_id, job_id in jobs:
            stack.zuora.add_environment(env_id=env_id)
            stack.zuora.add_job(env_id, status="EXPORTING", job_id=job_id)
            await stack.slack.send_command(
                stack.events_url, f"cancel {env_id} {job_id}", USER, CHANNEL
            )
        await wait_until(lambda: len(stack.runtime.cards.following) == len(envs), 20.0)
        before = len(stack.zuora.requests)
        await asyncio.sleep(window)  # a window of steady state, measured (not a synchronisation)
        made = [r for r in stack.zuora.requests[before:] if r.operation != "createToken"]
    return {
        "environments": len(envs),
        "interval": 1.0,
        "window": window,
        "calls_per_environment_per_hour": len(made) / len(envs) / window * 3600,
        "before_per_environment_per_hour": 2 * 3600.0,
        "by_operation": dict(Counter(str(r.operation) for r in made)),
    }


async def lifecycle() -> dict[str, Any]:
    """Slack calls over one job's life: QUEUED, a cancel, CANCELLING, CANCELLED."""
    async with Stack(sandbox_poll_seconds=0.1) as stack:
        env_id = str(stack.zuora.add_environment()["id"])
        job_id = str(stack.zuora.add_job(env_id, status="QUEUED")["id"])
        start = len(stack.slack.calls)
        await stack.slack.send_command(stack.events_url, f"cancel {env_id} {job_id}", USER, CHANNEL)
        await wait_until(lambda: stack.handled() >= 1, 20.0)
        stack.clock.advance(120)

        def ended() -> bool:
            texts = [str(c.args.get("text", "")) for c in stack.slack.calls[start:]]
            return sum("ended" in t for t in texts) >= 2 and not stack.runtime.cards.following

        await wait_until(ended, 30.0)
        calls = Counter(c.method for c in stack.slack.calls[start:] if c.method != "auth.test")
    return {"slack_calls": dict(sorted(calls.items())), "total": sum(calls.values())}


async def run(config: ProcessConfig) -> dict[str, Any]:
    result = await bursts(config)
    result["polling"] = await polling(config.poll_window)
    result["lifecycle"] = await lifecycle()
    return result
