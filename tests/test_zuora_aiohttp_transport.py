"""The Zuora calls' transport (httpx carried by aiohttp), against raw servers on loopback: what it sends, what it
gives back, and each way an exchange fails, as the httpx error the Zuora client expects."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from bot.zuora.aiohttp_transport import AiohttpTransport

Conversation = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Conversation], Awaitable[str]]]:
    """A TCP server on a free loopback port that talks as `conversation` says; gives its base URL."""
    servers: list[asyncio.Server] = []

    async def start(conversation: Conversation) -> str:
        server = await asyncio.start_server(conversation, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[list[bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")[:-2]
    length = next(
        (int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:")),
        0,
    )
    return lines, await reader.readexactly(length)


def answer(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def client(timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits=httpx.Limits(max_connections=2)),
        timeout=httpx.Timeout(timeout),
    )


async def test_a_call_carries_its_headers_and_body_once_and_gets_the_answer(
    raw_server: Callable[[Conversation], Awaitable[str]],
) -> None:
    seen: list[tuple[list[bytes], bytes]] = []

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        body = gzip.compress(json.dumps({"id": "job-1"}).encode())
        writer.write(
            answer(
                "200 OK",
                body,
                "Content-Encoding: gzip",
                "Zuora-Request-Id: r-1",
                "X-Two: a",
                "X-Two: b",
            )
        )
        await writer.drain()

    url = await raw_server(talk)
    async with client() as http:
        response = await http.post(
            url + "/test-environments/e/jobs/j/actions",
            content=b'{"jobAction":"CANCEL"}',
            headers={
                "User-Agent": "sandbox-bot/test",
                "Accept": "application/json",
                "Zuora-Track-Id": "t-1",
            },
        )
    assert response.status_code == 200
    assert response.json() == {"id": "job-1"}  # gzip undone by httpx
    assert response.headers["Zuora-Request-Id"] == "r-1"
    assert response.headers.get_list("X-Two") == ["a", "b"]
    ((lines, body),) = seen
    assert lines[0] == b"POST /test-environments/e/jobs/j/actions HTTP/1.1"
    names = [line.split(b":")[0].lower() for line in lines[1:]]
    for name in (b"user-agent", b"accept", b"zuora-track-id", b"content-length", b"host"):
        assert names.count(name) == 1, name
    assert b"User-Agent: sandbox-bot/test" in lines
    assert body == b'{"jobAction":"CANCEL"}'


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once it is closed
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")


async def test_a_connection_closed_without_an_answer_is_a_protocol_error(
    raw_server: Callable[[Conversation], Awaitable[str]],
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    url = await raw_server(hang_up)
    async with client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url + "/")


async def test_an_answer_that_is_not_http_is_a_protocol_error(
    raw_server: Callable[[Conversation], Awaitable[str]],
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"\x00\x01 this is not HTTP at all\r\n\r\n")
        await writer.drain()
        writer.close()

    url = await raw_server(garbage)
    async with client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url + "/")


async def test_no_answer_within_the_read_timeout_is_a_read_timeout(
    raw_server: Callable[[Conversation], Awaitable[str]],
) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()
        writer.close()

    url = await raw_server(silent)
    try:
        async with client(timeout=0.2) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(url + "/")
    finally:
        release.set()


async def test_a_body_cut_short_is_a_protocol_error(
    raw_server: Callable[[Conversation], Awaitable[str]],
) -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"id":')
        await writer.drain()
        writer.close()

    url = await raw_server(short)
    async with client() as http:
        with pytest.raises(httpx.RemoteProtocolError):  # as httpx's own transport says it
            await http.get(url + "/")


async def test_a_malformed_chunk_after_the_first_ends_the_read(
    raw_server: Callable[[Conversation], Awaitable[str]],
) -> None:
    """aiohttp's C parser stops its read timer when a chunk is malformed: the body's own timer ends the read."""
    got_first = asyncio.Event()

    async def bad_chunk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"id"\r\n')
        await writer.drain()
        await got_first.wait()  # the client is reading the body: now the bad chunk
        writer.write(b"ZZZ\r\nnot a chunk\r\n")
        await writer.drain()
        writer.close()

    url = await raw_server(bad_chunk)
    chunks: list[bytes] = []

    async def read_all(http: httpx.AsyncClient) -> None:
        async with http.stream("GET", url + "/") as response:
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                got_first.set()

    async with client(timeout=0.3) as http, asyncio.timeout(20):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadTimeout)):
            await read_all(http)
    assert chunks == [b'{"id"']


def test_an_error_of_the_pure_python_parser_is_a_protocol_error_without_its_cause() -> None:
    from aiohttp.http_exceptions import TransferEncodingError

    from bot.zuora.aiohttp_transport import _as_httpx_errors

    with pytest.raises(httpx.RemoteProtocolError) as raised, _as_httpx_errors():
        raise TransferEncodingError("Proxy-Authorization: Basic c2VjcmV0")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert "c2VjcmV0" not in str(raised.value)


def test_a_socks_proxy_is_refused_when_the_transport_is_built() -> None:
    with pytest.raises(ValueError, match="only HTTP proxies"):
        AiohttpTransport(proxy=httpx.Proxy("socks5://127.0.0.1:1080"))


async def test_a_proxy_gets_the_call_and_its_credentials_not_in_the_url(
    raw_server: Callable[[Conversation], Awaitable[str]],
) -> None:
    seen: list[list[bytes]] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines, _body = await read_request(reader)
        seen.append(lines)
        writer.write(answer("200 OK", b"{}", "Content-Type: application/json"))
        await writer.drain()

    proxy_url = await raw_server(proxy)
    transport = AiohttpTransport(proxy=httpx.Proxy(proxy_url.replace("http://", "http://user:pw@")))
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.get("http://zuora.invalid/test-environments")
    assert response.json() == {}
    ((lines),) = seen
    assert lines[0] == b"GET http://zuora.invalid/test-environments HTTP/1.1"
    assert b"Proxy-Authorization: Basic dXNlcjpwdw==" in lines  # user:pw


async def test_a_call_whose_kept_alive_connection_drops_is_not_sent_again(
    raw_server: Callable[[Conversation], Awaitable[str]],
) -> None:
    """The Zuora client's retry policy decides a second try, not aiohttp behind it."""
    requests: list[bytes] = []

    async def once_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                lines, _body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            requests.append(lines[0])
            if len(requests) > 1:
                writer.close()  # every later request: dropped unanswered
                return
            writer.write(answer("200 OK", b"{}"))
            await writer.drain()

    url = await raw_server(once_then_drop)
    async with client() as http:
        assert (await http.get(url + "/first")).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url + "/second")
    assert requests == [b"GET /first HTTP/1.1", b"GET /second HTTP/1.1"]
