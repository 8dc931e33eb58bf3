"""`python -m bench.zuora_server --latency S`: the Zuora simulator for the process benchmark, in a process of its
own, behind a proxy that counts the TCP connections opened to it, with a small control API for the benchmark.

The real Zuora is not in the process that plays Slack: run in the benchmark's process (even on a thread of its
own, under the same interpreter lock) the simulator and the proxy shared that process's event loop with the
client that sends the commands and times their acks, so the bot's Zuora traffic slowed the clock that timed its
acks, and the bare app, which calls no Zuora, did not pay it.

It prints one JSON line, `{"zuora": URL, "control": URL}`, then serves until SIGTERM. Control:
- `POST /seed?count=N`: N new environments, each with one running (EXPORTING) refresh job; answers
  `[[env_id, job_id], ...]`;
- `GET /stats`: `{"by_operation": {...}, "token_requests": n, "connections": n}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections import Counter

from aiohttp import web

from bench.common import ZUORA_CLIENT_ID, ZUORA_CLIENT_SECRET
from bench.signals import until_signalled
from bot.sim.clock import ManualClock
from bot.sim.zuora import ZuoraSimulator

CANCEL = "performActionOfJob"


class ConnectionCounter:
    """A TCP proxy on loopback in front of the simulator that counts the connections opened through it."""

    def __init__(self, port: int) -> None:
        self._target = port
        self.opened = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    with contextlib.suppress(Exception):
        sink.close()


async def serve(latency: float) -> None:
    zuora = ZuoraSimulator(
        ManualClock(), client_id=ZUORA_CLIENT_ID, client_secret=ZUORA_CLIENT_SECRET
    )
    await zuora.start()
    zuora.inject("latency", operation=CANCEL, seconds=latency, count=None)
    proxy = ConnectionCounter(int(zuora.base_url.rsplit(":", 1)[1]))
    zuora_url = await proxy.start()

    async def seed(request: web.Request) -> web.Response:
        pairs = []
        for _ in range(int(request.query.get("count", "1"))):
            env_id = str(zuora.add_environment()["id"])
            pairs.append([env_id, str(zuora.add_job(env_id, status="EXPORTING")["id"])])
        return web.json_response(pairs)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "by_operation": dict(Counter(r.operation or "unknown" for r in zuora.requests)),
                "token_requests": zuora.token_requests,
                "connections": proxy.opened,
            }
        )

    control = web.Application()
    control.router.add_post("/seed", seed)
    control.router.add_get("/stats", stats)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"zuora": zuora_url, "control": f"http://127.0.0.1:{port}"}), flush=True)

    await until_signalled()
    await runner.cleanup()
    await proxy.stop()
    await zuora.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.zuora_server")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds every cancel takes")
    asyncio.run(serve(parser.parse_args().latency))
    sys.exit(0)


if __name__ == "__main__":
    main()
