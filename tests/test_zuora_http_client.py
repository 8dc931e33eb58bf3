"""The Zuora HTTP client builds its connection pool on the first call: against real servers on loopback, the
calls it carries (through aiohttp), its connection limit and the proxies from the environment."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from bot.config import load_settings
from bot.runtime import zuora_http_client
from bot.zuora.http_client import BuiltOnFirstUse
from tests.conftest import Handler


def client_for(base_url: str, **overrides: object) -> httpx.AsyncClient:
    settings = load_settings(
        env_file=None,
        demo=True,
        zuora_base_url=base_url,
        zuora_client_id="client-id",
        zuora_client_secret="client-secret",
        **overrides,
    )
    return zuora_http_client(settings)


def direct_transport(client: httpx.AsyncClient) -> BuiltOnFirstUse:
    # The pieces of httpx inside that are looked at: which transports it holds.
    transport = client._transport
    assert isinstance(transport, BuiltOnFirstUse)
    return transport


async def test_the_pool_is_built_by_the_first_call_which_it_carries(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    url = await serve(answer)
    async with client_for(url) as client:
        transport = direct_transport(client)
        assert not transport.built
        response = await client.get(url + "/test-environments")
        assert response.json() == {"path": "/test-environments"}
        assert transport.built
        again = await client.get(url + "/again")
        assert again.json() == {"path": "/again"}


async def test_a_client_closed_before_any_call_builds_nothing() -> None:
    client = client_for("http://127.0.0.1:9")
    transport = direct_transport(client)
    await client.aclose()
    assert not transport.built
    assert client.is_closed


async def test_the_connection_limit_holds_for_the_pool_built_later(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """ZUORA_MAX_CONNECTIONS=2: four calls at once reach the server over two connections, not four."""
    peers: set[object] = set()
    arrived = 0
    pair = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        nonlocal arrived
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        arrived += 1
        if arrived >= 2:
            pair.set()
        # The first call waits for a second at the server: the pool opened two connections at once.
        await pair.wait()
        return web.json_response({"ok": True})

    url = await serve(hold)
    async with client_for(url, zuora_max_connections=2) as client:
        answers = await asyncio.wait_for(
            asyncio.gather(*(client.get(f"{url}/{n}") for n in range(4))), 30
        )
    assert [a.status_code for a in answers] == [200] * 4
    assert len(peers) == 2


async def test_a_proxy_from_the_environment_still_carries_the_calls(
    serve: Callable[[Handler], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY set: the call to Zuora's host goes to the proxy, through a proxy transport built by it."""
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.json_response({"via": "proxy"})

    proxy_url = await serve(proxy)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    # The settings' URL only has to be valid: each call names its own.
    async with client_for(proxy_url) as client:
        proxies = [t for t in client._mounts.values() if t is not None]
        assert proxies and all(isinstance(t, BuiltOnFirstUse) for t in proxies)
        assert not any(isinstance(t, BuiltOnFirstUse) and t.built for t in proxies)
        response = await client.get("http://zuora.invalid/test-environments")
        assert any(isinstance(t, BuiltOnFirstUse) and t.built for t in proxies)
    assert response.json() == {"via": "proxy"}
    assert seen == ["http://zuora.invalid/test-environments"]


async def test_a_pool_that_cannot_be_set_up_is_a_failed_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SSL_CERT_FILE naming no file: each call fails as an `httpx.ConnectError` (which the Zuora client reports
    as a failed connection), and the log says what to check."""
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    async with client_for("http://127.0.0.1:9") as client:
        with pytest.raises(httpx.ConnectError, match="could not be set up"):
            await client.get("https://zuora.invalid/")
    assert "SSL_CERT_FILE" in caplog.text


def printed_by_a_fresh_interpreter(code: str) -> list[str]:
    """The words `code` prints, run by this interpreter in a process of its own, from the checkout."""
    return subprocess.run(  # noqa: S603  # this interpreter, code written in this file
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.split()


def test_a_bot_built_and_not_yet_calling_zuora_has_not_loaded_httpcore() -> None:
    """What start-up saves: building every part of the bot (as `Runtime` does before it serves) leaves the
    connection pool's library unloaded, in a fresh interpreter."""
    code = (
        "import sys; from bench.common import bench_settings; from bot.runtime import build; "
        "build(bench_settings('http://127.0.0.1:9', 'http://127.0.0.1:9/api/')); "
        "print('httpx' in sys.modules, 'httpcore' in sys.modules)"
    )
    shown = printed_by_a_fresh_interpreter(code)
    assert shown == ["True", "False"]


def test_zuora_calls_never_load_httpcore_or_anyio() -> None:
    """What the aiohttp transport saves (2.6 MB): a call made, in a fresh interpreter, and httpx's own transport
    stack (httpcore, h11, anyio) still not loaded; aiohttp carried it."""
    code = (
        "import asyncio, sys\n"
        "from aiohttp import web\n"
        "from bot.config import load_settings\n"
        "from bot.runtime import zuora_http_client\n"
        "async def main():\n"
        "    app = web.Application()\n"
        "    app.router.add_get('/', lambda request: web.json_response({'ok': True}))\n"
        "    runner = web.AppRunner(app); await runner.setup()\n"
        "    site = web.TCPSite(runner, '127.0.0.1', 0); await site.start()\n"
        "    url = f'http://127.0.0.1:{runner.addresses[0][1]}'\n"
        "    settings = load_settings(env_file=None, demo=True, zuora_base_url=url,\n"
        "        zuora_client_id='i', zuora_client_secret='s')\n"
        "    async with zuora_http_client(settings) as http:\n"
        "        answer = (await http.get(url + '/')).json()\n"
        "    await runner.cleanup()\n"
        "    print(answer['ok'], *(name in sys.modules for name in ('httpcore', 'h11', 'anyio')))\n"
        "asyncio.run(main())\n"
    )
    shown = printed_by_a_fresh_interpreter(code)
    assert shown == ["True", "False", "False", "False"]


def test_the_bot_serves_before_pydantic_is_loaded_and_loads_it_once_it_serves() -> None:
    """What start-up saves (a third of a bare Bolt app's start): in a fresh interpreter the bot is built with
    pydantic and tenacity unloaded; once it serves, both are loaded, the models' validators built, and Zuora
    read."""
    code = (
        "import asyncio, sys\n"
        "import aiohttp\n"
        "from aiohttp import web\n"
        "from bot.config import load_settings\n"
        "from bot.runtime import Runtime\n"
        "JOB = {'id': 'J1', 'testEnvironmentId': 'E1', 'status': 'QUEUED', 'jobType': 'REFRESH'}\n"
        "async def main():\n"
        "    app = web.Application()\n"
        "    app.router.add_post('/api/auth.test', lambda request: web.json_response({'ok': True}))\n"
        "    app.router.add_post('/oauth/token',\n"
        "        lambda request: web.json_response({'access_token': 't', 'expires_in': 3600}))\n"
        "    app.router.add_get('/test-environments/E1/jobs/J1', lambda request: web.json_response(JOB))\n"
        "    runner = web.AppRunner(app); await runner.setup()\n"
        "    site = web.TCPSite(runner, '127.0.0.1', 0); await site.start()\n"
        "    url = f'http://127.0.0.1:{runner.addresses[0][1]}'\n"
        "    settings = load_settings(env_file=None, slack_bot_token='xoxb-1', slack_signing_secret='s',\n"
        "        slack_api_url=url + '/api/', port=0, host='127.0.0.1', zuora_base_url=url,\n"
        "        zuora_client_id='i', zuora_client_secret='s')\n"
        "    bot = Runtime(settings)\n"
        "    built = any(name in sys.modules for name in ('pydantic', 'tenacity'))\n"
        "    await bot.start()\n"
        "    async with aiohttp.ClientSession() as session:\n"
        "        async with session.get(f'http://127.0.0.1:{bot.port}/healthz') as health:\n"
        "            status = health.status\n"
        "    await bot.zuora_models_loaded()\n"
        "    from bot.zuora.models import Job, JobList, Token\n"
        "    ready = all(model.__pydantic_complete__ for model in (Job, JobList, Token))\n"
        "    ready = ready and 'tenacity' in sys.modules\n"
        "    job = await bot.components.zuora.get_job('E1', 'J1')\n"
        "    print(built, status, ready, job.status)\n"
        "    await bot.stop(); await runner.cleanup()\n"
        "asyncio.run(main())\n"
    )
    shown = printed_by_a_fresh_interpreter(code)
    assert shown == ["False", "200", "True", "QUEUED"]
