"""Socket Mode in the Slack emulator.

`apps.connections.open` hands out `ws://…/link/?ticket=…&app_id=…`. On connect the emulator sends
`hello` like Slack, answers pings (aiohttp's autoping), and delivers envelopes
`{"envelope_id", "type", "payload", "accepts_response_payload"}` to one connection at a time,
round-robin, waiting for the client's ack `{"envelope_id", "payload"?}`.
"""

# ruff: noqa: ASYNC109  # waiting helpers take a timeout argument by design (test API)

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

JSON = dict[str, Any]
MAX_CONNECTIONS = 10


class SocketHub:
    def __init__(self, app_id: str, notify: Callable[[], None]) -> None:
        self.app_id = app_id
        self.notify = notify
        self.connections: list[web.WebSocketResponse] = []
        self._tickets: set[str] = set()
        self._pending: dict[str, asyncio.Future[JSON]] = {}
        self._next = 0

    def issue_url(self, ws_base: str) -> str:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return f"{ws_base}link/?ticket={ticket}&app_id={self.app_id}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        if len(self.connections) >= MAX_CONNECTIONS:
            await ws.send_json(self._disconnect_message("too_many_websockets"))
            await ws.close()
            return ws
        self.connections.append(ws)
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self.connections),
                    "debug_info": {
                        "host": "applink-emulator",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.app_id},
                }
            )
            self.notify()
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_text(message.data)
        finally:
            self.connections.remove(ws)
            self.notify()
        return ws

    def _on_text(self, data: str) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            return
        if not isinstance(ack, dict):
            return
        future = self._pending.get(str(ack.get("envelope_id")))
        if future is not None and not future.done():
            future.set_result(ack)

    async def deliver(
        self,
        kind: str,
        payload: JSON,
        *,
        accepts_response_payload: bool,
        timeout: float,
        extra: JSON | None = None,
    ) -> JSON:
        """Send one envelope to one connection and return the client's ack. `extra`: more envelope
        fields (`events_api` envelopes carry `retry_attempt` and `retry_reason`)."""
        live = [c for c in self.connections if not c.closed]
        if not live:
            raise RuntimeError("no Socket Mode client is connected")
        connection = live[self._next % len(live)]
        self._next += 1
        envelope_id = str(uuid.uuid4())
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._pending[envelope_id] = future
        try:
            await connection.send_json(
                {
                    "envelope_id": envelope_id,
                    "payload": payload,
                    "type": kind,
                    "accepts_response_payload": accepts_response_payload,
                    **(extra or {}),
                }
            )
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(f"no ack for the {kind} envelope within {timeout}s") from None
        finally:
            del self._pending[envelope_id]

    def _disconnect_message(self, reason: str) -> JSON:
        return {
            "type": "disconnect",
            "reason": reason,
            "debug_info": {"host": "applink-emulator"},
        }

    async def disconnect_all(self, reason: str) -> None:
        """Ask clients to reconnect, as Slack does (`warning`, `refresh_requested`, …)."""
        for connection in list(self.connections):
            if not connection.closed:
                await connection.send_json(self._disconnect_message(reason))

    async def close(self) -> None:
        for connection in list(self.connections):
            await connection.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        self._tickets.clear()
