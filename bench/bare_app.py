"""`python -m bench.bare_app --port N`: the baseline as a process of its own, a Bolt AsyncApp that acks `/sandbox`
and does nothing else, served like the bot (aiohttp, the same signing secret, `/healthz`).

It imports nothing of the bot (its memory and start-up are the baseline): the token, the signing secret and the
Slack API URL come from the same environment variables as the bot's."""

from __future__ import annotations

import argparse
import asyncio
import os

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bench.signals import until_signalled

EVENTS_PATH = (
    "/slack/events"  # the bot's (bot.server.EVENTS_PATH), written out so as not to import the bot
)


def build() -> web.Application:
    # The same Web API client as the bot's (it calls no method: the same cost of being built, nothing more).
    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ.get("SLACK_API_URL", "")
    )
    app = AsyncApp(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )

    @app.command("/sandbox")
    async def sandbox(ack: AsyncAck) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    web_app = web.Application(client_max_size=1024 * 1024)
    web_app.router.add_post(EVENTS_PATH, events)
    web_app.router.add_get("/healthz", healthz)
    return web_app


async def serve(port: int) -> None:
    runner = web.AppRunner(build(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await until_signalled()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
