"""`sandbox-bot demo`: the bot, a Zuora simulator and a Slack console in one process and one event loop.

Everything listens on 127.0.0.1 only, and every token and secret is made up at start with `secrets`,
so nothing is needed from the environment and nothing leaves the machine:

- the Zuora simulator (seeded environments and jobs) on the real clock, its job stages `DEMO_SPEED` times
  shorter than Zuora's: a refresh moves through its statuses in minutes, and every time shown is real;
- every `SEED_SECONDS` (and at once when nothing can be cancelled) a new refresh on an environment with no
  active job, so there is always a job to cancel and the watch has something to announce (`seed_round`);
- always a refresh scheduled `SCHEDULE_AHEAD_SECONDS` ahead on a fifth environment, *training*, with a lead
  time of a minute of its own in SANDBOX_REMIND_BEFORE (`DEMO_REMIND_BEFORE`): its card in #sandbox-audit gets
  a reminder in its thread (also sent to the channel) at the first watch round after start (a catch-up for
  24h and 1h), another a minute before it starts, and a line when it starts; then the next is scheduled;
- the Slack emulator with the console page on the port asked for (`http://127.0.0.1:<port>/`), which
  also serves the bot's `/healthz` and `/metrics`; its example commands name jobs that exist now;
- the bot in HTTP mode, pointed at both.

Tests use `Demo` directly: ``async with Demo() as demo: ...`` gives `demo.url`, `demo.slack`,
`demo.zuora` and `demo.runtime`; with a `ManualClock` and `seed_tick=None` they drive `seed_round` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import webbrowser
from types import TracebackType
from typing import Any

from bot import logs
from bot.config import SETTING_NAMES, Settings, load_settings
from bot.runtime import EVENTS_PATH, Runtime
from bot.sim.clock import Clock, SystemClock
from bot.sim.slack import SlackEmulator
from bot.sim.slack_console import Persona, SlackConsole
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import (
    ENV_DEV,
    ENV_QA,
    ENV_STAGING,
    ENV_TRAINING,
    ENV_UAT,
    Reseeder,
    add_training_environment,
)
from bot.sim.zuora_state import Job

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

# Job stages 20 times shorter than Zuora's: the seeded staging job stays cancellable for about 2 min 40 s
# after start (54 of Zuora's minutes of EXPORTING and SCRUBBING left), a whole refresh takes about
# 6 minutes, and its progress moves by a percent every few seconds. A cancel takes 3 seconds.
DEMO_SPEED = 20.0
# A new refresh every 2 minutes: a fresh one is cancellable for about 3, so one always is.
SEED_SECONDS = 120.0
SEED_TICK_SECONDS = 1.0  # how often the demo's loop asks whether one is due
POLL_SECONDS = 3.0
WATCH_SECONDS = 5.0
# The scheduled refresh on training starts 2.5 minutes after it is scheduled (at start, and again each time
# the last one has run); reminders 24h and 1h before (due at once: one catch-up) and 1m before.
SCHEDULE_AHEAD_SECONDS = 150.0
DEMO_REMIND_BEFORE = (24 * 3600.0, 3600.0, 60.0)

WORK_CHANNEL = "C0SANDBOXOPS"
AUDIT_CHANNEL = "C0SANDBOXAUD"
ALLOWED_USER = "U0ALICE"
GROUP_USER = "U0BOB"
OUTSIDER = "U0CAROL"
GROUP = "S0PLATFORM"
GROUP_HANDLE = "platform-team"
ROTATION = {"staging": ENV_STAGING, "uat": ENV_UAT, "qa": ENV_QA, "dev": ENV_DEV}
ALIASES = {**ROTATION, "training": ENV_TRAINING}


class Demo:
    def __init__(
        self,
        *,
        port: int = 0,
        speed: float = DEMO_SPEED,
        poll_seconds: float = POLL_SECONDS,
        watch_seconds: float | None = WATCH_SECONDS,
        clock: Clock | None = None,
        seed_seconds: float = SEED_SECONDS,
        seed_tick: float | None = SEED_TICK_SECONDS,
        schedule_ahead: float | None = SCHEDULE_AHEAD_SECONDS,
    ) -> None:
        """`port`: the console's (0 picks a free one); the simulator and the bot always take free ones.
        `speed`: how many times shorter than Zuora's the job stages are. `clock`: the simulator's and
        the bot's (tests pass a `ManualClock`); by default real time. `seed_seconds`: between two
        refreshes the demo starts, on `clock`; `seed_tick`: how often (real seconds) its loop calls
        `seed_round`, None for no loop (a test calls it). `schedule_ahead`: how far ahead the scheduled
        refresh on training is put (on `clock`), None for none."""
        self.port = port
        self.speed = speed
        self.poll_seconds = poll_seconds
        self.watch_seconds = watch_seconds  # None: no watch
        self.seed_tick = seed_tick
        self._bot_token = f"xoxb-demo-{secrets.token_hex(16)}"
        self._signing_secret = secrets.token_hex(32)
        self._zuora_client_id = secrets.token_hex(16)
        self._zuora_client_secret = secrets.token_urlsafe(32)
        self.zuora = ZuoraSimulator(
            clock or SystemClock(),
            speed=speed,
            client_id=self._zuora_client_id,
            client_secret=self._zuora_client_secret,
        )
        add_training_environment(self.zuora.state)
        self.seeder = Reseeder(
            self.zuora.state,
            list(ROTATION.values()),
            interval=seed_seconds,
            schedule_on=ENV_TRAINING if schedule_ahead is not None else None,
            schedule_ahead=schedule_ahead or SCHEDULE_AHEAD_SECONDS,
        )
        self.slack = SlackEmulator(
            bot_token=self._bot_token,
            signing_secret=self._signing_secret,
            team_domain="sandbox-demo",
        )
        self.console = SlackConsole(
            self.slack,
            personas=[
                Persona(ALLOWED_USER, "allowed: on SANDBOX_ALLOWED_USERS"),
                Persona(GROUP_USER, f"allowed: member of @{GROUP_HANDLE}"),
                Persona(OUTSIDER, "not allowed"),
            ],
            channels=[WORK_CHANNEL, AUDIT_CHANNEL],
            usergroups={GROUP: GROUP_HANDLE},
            hints=self.hints,
            title="sandbox-bot demo",
            notice=(
                f"Zuora here is a local simulator whose jobs run {speed:g}x faster than Zuora's (every "
                "time shown is real); it starts a new refresh every few minutes, and keeps one scheduled on "
                "training a few minutes ahead (its reminders go to #sandbox-audit). Slack is this page. "
                "Switch users to see who may do what; notifications go to #sandbox-audit."
            ),
        )
        self._setup_workspace()
        self.runtime: Runtime | None = None
        self._seeding: asyncio.Task[None] | None = None

    @property
    def secrets(self) -> list[str]:
        """The made-up secrets, for the log redactor."""
        return [
            self._bot_token,
            self._signing_secret,
            self._zuora_client_id,
            self._zuora_client_secret,
        ]

    @property
    def url(self) -> str:
        """The console: `http://127.0.0.1:<port>/`."""
        return self.console.url

    @property
    def health_url(self) -> str:
        """The bot's `/healthz`, on the console's port."""
        return self.console.url + "healthz"

    @property
    def metrics_url(self) -> str:
        """The bot's `/metrics`, on the console's port."""
        return self.console.url + "metrics"

    # ---- staying alive

    def seed_round(self) -> Job | None:
        """Keep a refresh scheduled on training (`Reseeder.keep_scheduled`), and start a refresh if one is
        due (`Reseeder.seed_round`; that one is returned); the demo's loop calls it."""
        scheduled = self.seeder.keep_scheduled()
        if scheduled is not None:
            log.info(
                "demo refresh scheduled",
                extra={"environment": scheduled.env_id, "job_id": scheduled.id},
            )
        return self.seeder.seed_round()

    async def _keep_alive(self, tick: float) -> None:
        while True:
            try:
                job = self.seed_round()
            except Exception:  # a bug here must not end the demo's supply of jobs
                log.exception("the demo could not start a refresh")
            else:
                if job is not None:
                    log.info(
                        "demo refresh started",
                        extra={"environment": job.env_id, "job_id": job.id},
                    )
            await asyncio.sleep(tick)

    def hints(self) -> list[str]:
        """Example commands that name what exists now: the newest job that can be cancelled, and an
        environment that may be refreshed now."""
        state = self.zuora.state
        now = state.clock.now()
        alias_of = {env_id: alias for alias, env_id in ALIASES.items()}
        hints = ["/sandbox help", "/sandbox envs"]
        job = next((j for j in self.seeder.cancellable(now) if j.env_id in alias_of), None)
        if job is None:
            hints.append("/sandbox jobs staging")
        else:
            alias = alias_of[job.env_id]
            hints += [f"/sandbox jobs {alias}", f"/sandbox status {alias} {job.id}"]
        for alias, env_id in ALIASES.items():
            env = state.environments.get(env_id)
            if env is None or env.status != "ACTIVE" or state.active_job(env) is not None:
                continue
            allowed_from = state.next_refresh_time(env)
            if allowed_from is None or allowed_from <= now:
                hints.append(f"/sandbox refresh {alias}")
                break
        return hints

    def _setup_workspace(self) -> None:
        self.slack.add_user(ALLOWED_USER, "alice")
        self.slack.add_user(GROUP_USER, "bob")
        self.slack.add_user(OUTSIDER, "carol")
        self.slack.set_usergroup(GROUP, [GROUP_USER])
        self.slack.add_channel(WORK_CHANNEL, "sandbox-ops")
        self.slack.add_channel(AUDIT_CHANNEL, "sandbox-audit")

    def settings(self) -> Settings:
        """The bot's configuration: every Slack, Zuora and sandbox setting is given here, so nothing in the
        shell's environment (a real SLACK_APP_TOKEN, say) can reach the demo."""
        values: dict[str, Any] = {
            "slack_bot_token": self._bot_token,
            "slack_signing_secret": self._signing_secret,
            "slack_app_token": None,
            "slack_api_url": self.slack.api_url,
            "port": 0,
            "host": HOST,
            "zuora_base_url": self.zuora.base_url,
            "zuora_client_id": self._zuora_client_id,
            "zuora_client_secret": self._zuora_client_secret,
            "sandbox_allowed_users": ALLOWED_USER,
            "sandbox_allowed_usergroups": GROUP,
            "sandbox_environments": ",".join(f"{a}={i}" for a, i in ALIASES.items()),
            "sandbox_notify_channel": AUDIT_CHANNEL,
            "sandbox_poll_seconds": self.poll_seconds,
            # The platform team hears of reminders and of jobs started outside the bot.
            "sandbox_remind_before": DEMO_REMIND_BEFORE,
            "sandbox_notify_mention": GROUP,
        }
        if self.watch_seconds is not None:
            # The watch announces every job in the audit channel, as a tenant's would be.
            values["sandbox_watch_environments"] = "all"
            values["sandbox_watch_seconds"] = self.watch_seconds
        for name in SETTING_NAMES:
            if name not in values and name.startswith(("slack_", "zuora_", "sandbox_")):
                values[name] = None  # the default, whatever the shell's environment says
        return load_settings(demo=True, env_file=None, **values)

    # ---- lifecycle

    async def start(self) -> None:
        try:
            await self.slack.start(HOST, self.port)
            await self.zuora.start(HOST, 0)
            # One clock for Zuora and the bot's rules about times (a refresh is in the future, ...).
            self.runtime = Runtime(self.settings(), host=HOST, now=self.zuora.clock.now)
            await self.runtime.start()
        except BaseException:
            await self.stop()
            raise
        events_url = self.runtime.events_url
        self.console.attach(events_url, pages_url=events_url.removesuffix(EVENTS_PATH))
        if self.seed_tick is not None:
            self._seeding = asyncio.create_task(self._keep_alive(self.seed_tick), name="demo-seed")

    async def stop(self) -> None:
        if self._seeding is not None:
            self._seeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._seeding
            self._seeding = None
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None
        await self.slack.stop()
        await self.zuora.stop()

    async def __aenter__(self) -> Demo:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _log_level() -> str:
    """WARNING unless LOG_LEVEL says otherwise: the console is the demo's output, and a line per Zuora call
    would push its URL off the screen."""
    level = os.environ.get("LOG_LEVEL", "WARNING").strip().upper()
    return level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "WARNING"


def _configure_logs(demo: Demo, verbose: bool) -> None:
    """Standard error, redacted as the bot's; `verbose`: the bot's lines and audit records from INFO up
    (the simulators' and the libraries' stay at the level LOG_LEVEL gives)."""
    level = _log_level()
    log_format = "json" if os.environ.get("LOG_FORMAT", "").strip().lower() == "json" else "text"
    logs.configure(level, log_format, demo.secrets)
    if verbose and logging.getLevelNamesMapping()[level] > logging.INFO:
        for name in ("bot", "sandbox_bot"):
            logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger("bot.sim").setLevel(level)


def _banner(demo: Demo, verbose: bool) -> list[str]:
    seeding = f"a new refresh every {demo.seeder.interval.total_seconds() / 60:g} minutes"
    if demo.seeder.schedule_on is not None:
        ahead = demo.seeder.schedule_ahead.total_seconds() / 60
        seeding += (
            f", one scheduled on training {ahead:g} minutes ahead (reminders in #sandbox-audit)"
        )
    return [
        f"sandbox-bot demo: the Slack console is at {demo.url}",
        f"  the bot's health: {demo.health_url}  metrics: {demo.metrics_url}",
        f"  Zuora simulator at {demo.zuora.base_url}: job stages {demo.speed:g}x faster than "
        f"Zuora's, every time real; {seeding}.",
        "  The bot's log and audit lines follow here; press Ctrl-C to stop."
        if verbose
        else "  --verbose shows the bot's log and audit lines; press Ctrl-C to stop.",
    ]


async def _serve(port: int, open_browser: bool, verbose: bool) -> int:
    demo = Demo(port=port)
    _configure_logs(demo, verbose)
    try:
        await demo.start()
    except OSError as error:
        print(
            f"sandbox-bot demo: cannot listen on {HOST}:{port} ({error.strerror or error}). "
            "Choose another port with --port N, or --port 0 for any free one.",
            file=sys.stderr,
        )
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        print("\n".join(_banner(demo, verbose)), flush=True)
        if open_browser:
            await asyncio.to_thread(webbrowser.open, demo.url)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await demo.stop()
    print("sandbox-bot demo: stopped.", flush=True)
    return 0


def run_demo(port: int = 3000, open_browser: bool = False, verbose: bool = False) -> int:
    """Run the demo until Ctrl-C or SIGTERM; 0 after a clean stop, 1 when the port is taken."""
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(port, open_browser, verbose))
    return 0
