"""`sandbox-bot demo`: the bot, a Zuora simulator and a Slack console in one process and one event loop.

Everything listens on 127.0.0.1 only, and every token and secret is made up at start with `secrets`,
so nothing is needed from the environment and nothing leaves the machine:

- the Zuora simulator (seeded environments and jobs) on a clock running `DEMO_SPEED` times faster;
- the Slack emulator with the console page on the port asked for (`http://127.0.0.1:<port>/`);
- the bot in HTTP mode, pointed at both.

Tests use `Demo` directly: ``async with Demo() as demo: ...`` gives `demo.url`, `demo.slack`,
`demo.zuora` and `demo.runtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import webbrowser
from types import TracebackType
from typing import Any

from bot import logs
from bot.config import Settings, load_settings
from bot.runtime import Runtime
from bot.sim.clock import Clock, SystemClock
from bot.sim.slack import SlackEmulator
from bot.sim.slack_console import Persona, SlackConsole
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_DEV, ENV_QA, ENV_STAGING, ENV_UAT, JOB_CANCELLABLE

HOST = "127.0.0.1"

# At 20x the seeded staging job stays cancellable for about 2 min 40 s after start (it has 54 simulated
# minutes of EXPORTING and SCRUBBING left), a whole refresh takes about 6 minutes, and its progress moves
# by a percent every few seconds. A cancel takes one simulated minute: 3 seconds.
DEMO_SPEED = 20.0
POLL_SECONDS = 3.0
WATCH_SECONDS = 5.0

WORK_CHANNEL = "C0SANDBOXOPS"
AUDIT_CHANNEL = "C0SANDBOXAUD"
ALLOWED_USER = "U0ALICE"
GROUP_USER = "U0BOB"
OUTSIDER = "U0CAROL"
GROUP = "S0PLATFORM"
GROUP_HANDLE = "platform-team"
ALIASES = {"staging": ENV_STAGING, "uat": ENV_UAT, "qa": ENV_QA, "dev": ENV_DEV}


class Demo:
    def __init__(
        self,
        *,
        port: int = 0,
        speed: float = DEMO_SPEED,
        poll_seconds: float = POLL_SECONDS,
        watch_seconds: float | None = WATCH_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        """`port`: the console's (0 picks a free one); the simulator and the bot always take free ones.
        `clock`: the simulator's (tests pass a `ManualClock`); by default real time `speed` times faster."""
        self.port = port
        self.speed = speed
        self.poll_seconds = poll_seconds
        self.watch_seconds = watch_seconds  # None: no watch
        self._bot_token = f"xoxb-demo-{secrets.token_hex(16)}"
        self._signing_secret = secrets.token_hex(32)
        self._zuora_client_id = secrets.token_hex(16)
        self._zuora_client_secret = secrets.token_urlsafe(32)
        self.zuora = ZuoraSimulator(
            clock or SystemClock(speed=speed),
            client_id=self._zuora_client_id,
            client_secret=self._zuora_client_secret,
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
            hints=[
                "/sandbox help",
                "/sandbox envs",
                "/sandbox jobs staging",
                f"/sandbox status staging {JOB_CANCELLABLE}",
                "/sandbox refresh qa",
            ],
            title="sandbox-bot demo",
            notice=(
                f"Zuora here is a local simulator running {speed:g}x faster than real time; Slack is "
                "this page. Switch users to see who may do what; notifications go to #sandbox-audit."
            ),
        )
        self._setup_workspace()
        self.runtime: Runtime | None = None

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
        }
        if self.watch_seconds is not None:
            # The watch announces every job in the audit channel, as a tenant's would be.
            values["sandbox_watch_environments"] = "all"
            values["sandbox_watch_seconds"] = self.watch_seconds
        for name, field in Settings.model_fields.items():
            if name not in values and name.startswith(("slack_", "zuora_", "sandbox_")):
                values[name] = field.get_default(call_default_factory=True)
        return load_settings(demo=True, env_file=None, **values)

    # ---- lifecycle

    async def start(self) -> None:
        try:
            await self.slack.start(HOST, self.port)
            await self.zuora.start(HOST, 0)
            self.runtime = Runtime(self.settings(), host=HOST)
            await self.runtime.start()
        except BaseException:
            await self.stop()
            raise
        self.console.attach(self.runtime.events_url)

    async def stop(self) -> None:
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


async def _serve(port: int, open_browser: bool) -> int:
    demo = Demo(port=port)
    log_format = "json" if os.environ.get("LOG_FORMAT", "").strip().lower() == "json" else "text"
    logs.configure(_log_level(), log_format, demo.secrets)
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
        print(f"sandbox-bot demo: the Slack console is at {demo.url}", flush=True)
        print(
            f"  Zuora simulator at {demo.zuora.base_url} ({demo.speed:g}x speed); "
            "press Ctrl-C to stop.",
            flush=True,
        )
        if open_browser:
            await asyncio.to_thread(webbrowser.open, demo.url)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await demo.stop()
    print("sandbox-bot demo: stopped.", flush=True)
    return 0


def run_demo(port: int = 3000, open_browser: bool = False) -> int:
    """Run the demo until Ctrl-C or SIGTERM; 0 after a clean stop, 1 when the port is taken."""
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(port, open_browser))
    return 0
