"""How a benchmark's helper process (the bare app, the Zuora simulator) serves until the benchmark stops it. A
module of its own, importing nothing of the bot: the bare app's memory and start-up are the baseline."""

from __future__ import annotations

import asyncio
import signal


async def until_signalled() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
