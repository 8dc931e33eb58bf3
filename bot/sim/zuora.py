"""A simulator of Zuora's test-environment API (Central Sandbox jobs) over real HTTP.

Run it: ``python -m bot.sim.zuora --port 8090 [--speed 60]`` (job stages 60 times faster than
Zuora's, on the real clock). Use it in tests::

    async with ZuoraSimulator(clock=ManualClock()) as sim:
        client = httpx.AsyncClient(base_url=sim.base_url)

It is an independent implementation of Zuora's published contract (it shares no code with
``bot.zuora``), so tests of the client against it mean something. Implemented: OAuth client
credentials, the six test-environment and job operations, ``Zuora-Track-Id`` rules and echo,
``Zuora-Request-Id``, gzip both ways, the refresh lifecycle and rules, fault injection, and holds
(a request kept waiting until the test lets it through).
Not implemented: the e-mail notification operations, rate limiting by volume, ``Zuora-Entity-Ids``
(accepted and ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import re
import secrets
import signal
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self, get_args
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from bot.sim.clock import Clock, ManualClock, SystemClock
from bot.sim.zuora_seed import (
    ENV_DEV,
    ENV_QA,
    ENV_STAGING,
    ENV_UAT,
    JOB_CANCELLABLE,
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_PAST_RESETTING,
    seed_environments,
)
from bot.sim.zuora_state import JOB_RESOURCE, UI_USER_ID, SimApiError, ZuoraState, reason_code

__all__ = [
    "ENV_DEV",
    "ENV_QA",
    "ENV_STAGING",
    "ENV_UAT",
    "JOB_CANCELLABLE",
    "JOB_CANCELLED",
    "JOB_COMPLETED",
    "JOB_FAILED",
    "JOB_PAST_RESETTING",
    "OPERATIONS",
    "TOKEN_OPERATION",
    "Fault",
    "FaultKind",
    "Hold",
    "ManualClock",
    "RecordedRequest",
    "SystemClock",
    "ZuoraSimulator",
    "main",
]

log = logging.getLogger(__name__)

TOKEN_OPERATION = "createToken"
OPERATIONS = (
    TOKEN_OPERATION,
    "getAllTestEnvironments",
    "getTestEnvironment",
    "createTestEnvironmentJob",
    "getAllJobsOfTestEnvironment",
    "getJobOfTestEnvironment",
    "performActionOfJob",
)
_ROUTES = (
    ("POST", "/oauth/token", TOKEN_OPERATION),
    ("GET", "/test-environments", "getAllTestEnvironments"),
    ("GET", "/test-environments/{id}", "getTestEnvironment"),
    ("POST", "/test-environments/{id}/jobs", "createTestEnvironmentJob"),
    ("GET", "/test-environments/{id}/jobs", "getAllJobsOfTestEnvironment"),
    ("GET", "/test-environments/{id}/jobs/{jobId}", "getJobOfTestEnvironment"),
    ("POST", "/test-environments/{id}/jobs/{jobId}/actions", "performActionOfJob"),
)

GZIP_THRESHOLD = 1000
TRACK_ID_MAX = 64
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7E]*")
_TRACK_ID_FORBIDDEN = frozenset(":;\"'")

# Classic codes outside the test-environment resources.
GENERIC_RESOURCE = 900000
AUTH_ERROR = reason_code(GENERIC_RESOURCE, 11)
TRACK_ID_ERROR = reason_code(GENERIC_RESOURCE, 20)
NOT_FOUND_ERROR = reason_code(GENERIC_RESOURCE, 40)
MALFORMED_ERROR = reason_code(JOB_RESOURCE, 90)
INVALID_VALUE_ERROR = reason_code(JOB_RESOURCE, 20)
RATE_LIMIT_ERROR = reason_code(GENERIC_RESOURCE, 70)

FaultKind = Literal["latency", "status", "rate_limit", "garbage", "drop", "drop_after"]
_FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    "latency": {"seconds": 1.0},
    "status": {"status": 500, "body": "classic", "retry_after": None},
    "rate_limit": {"retry_after": 1},
    "garbage": {
        "body": b"<html><body><h1>Service Temporarily Unavailable</h1></body></html>",
        "content_type": "application/json",
    },
    "drop": {},
    "drop_after": {},
}
_STATUS_BODIES = ("classic", "system", "empty")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator received it (body decompressed and parsed)."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    raw_body: bytes
    body: Any
    """Parsed JSON, a dict for a form, or None when empty or unparseable."""
    operation: str | None
    """The OpenAPI operationId, or None for an unknown path."""
    request_id: str
    received_at: datetime


@dataclass
class Fault:
    """An injected failure for the next ``remaining`` matching calls (None: until cleared)."""

    kind: FaultKind
    operation: str | None
    env_id: str | None
    job_id: str | None
    remaining: int | None
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    def matches(self, operation: str | None, env_id: str | None, job_id: str | None) -> bool:
        return _targets(self.operation, operation) and (
            (self.env_id is None or env_id == self.env_id)
            and (self.job_id is None or job_id == self.job_id)
        )


class Hold:
    """The next request for ``operation``, kept waiting on arrival until :meth:`release`.

    Made by :meth:`ZuoraSimulator.hold`. Use it on the simulator's event loop (asyncio events
    are not thread-safe).
    """

    def __init__(self, operation: str | None) -> None:
        self.operation = operation
        self.request: RecordedRequest | None = None
        """The request held, once it has arrived."""
        self._reached = asyncio.Event()
        self._released = asyncio.Event()

    @property
    def reached(self) -> bool:
        """Whether the request has arrived (it is in ``sim.requests`` then)."""
        return self._reached.is_set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    async def wait_reached(self, timeout: float = 10.0) -> RecordedRequest:  # noqa: ASYNC109
        """Wait for the request to arrive and return it; ``timeout`` only bounds a hang."""
        await asyncio.wait_for(self._reached.wait(), timeout)
        assert self.request is not None
        return self.request

    def release(self) -> None:
        """Let the request through (now or, if it has not arrived, as soon as it does)."""
        self._released.set()

    def matches(self, operation: str | None) -> bool:
        return not self.reached and _targets(self.operation, operation)

    async def _catch(self, request: RecordedRequest) -> None:
        self.request = request
        self._reached.set()
        await self._released.wait()


def _targets(wanted: str | None, operation: str | None) -> bool:
    """Whether a fault or hold for ``wanted`` (None: any) applies to a call of ``operation``.

    The token endpoint is hit only when targeted: a client's first call fetches a token, and an
    untargeted fault or hold is meant for the API call.
    """
    if wanted is None:
        return operation != TOKEN_OPERATION
    return operation == wanted


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), headers=headers or {})


def _classic(status: int, code: int, message: str, request_id: str) -> _Reply:
    return _json_reply(
        status,
        {
            "success": False,
            "processId": secrets.token_hex(8).upper(),
            "reasons": [{"code": code, "message": message}],
            "requestId": request_id,
        },
    )


def _user_id(client_id: str) -> str:
    """A stable 32-hex Zuora user ID for an OAuth client."""
    return hashlib.sha256(client_id.encode()).hexdigest()[:32]


def _track_id_problem(value: str) -> str | None:
    if len(value) > TRACK_ID_MAX:
        return f"Zuora-Track-Id is longer than {TRACK_ID_MAX} characters."
    if not _PRINTABLE_ASCII.fullmatch(value):
        return "Zuora-Track-Id must contain printable US-ASCII characters only."
    if _TRACK_ID_FORBIDDEN.intersection(value):
        return "Zuora-Track-Id must not contain : ; \" or '."
    return None


def _parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    if content_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ZuoraSimulator:
    """Zuora's test-environment API on loopback; see the module docstring.

    ``clock`` drives the job lifecycle (default: real time); ``speed`` makes every job stage that
    many times shorter than Zuora's (the demo's 20: a refresh in six minutes), the clock untouched,
    so every time the API shows is the clock's. Tokens expire ``token_ttl`` seconds after issue on
    ``token_clock`` (default: real time), not on ``clock``: tests jump ``clock`` hours ahead, and
    that should not expire a client's token under it. A test of expiry passes a ``ManualClock`` as
    ``token_clock`` (or the same one as ``clock``).
    With ``client_id``/``client_secret`` only that pair gets a token; otherwise any does.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        speed: float = 1.0,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_ttl: float = 3599,
        token_clock: Clock | None = None,
        seed: bool = True,
    ) -> None:
        if (client_id is None) != (client_secret is None):
            raise ValueError("give both client_id and client_secret, or neither")
        self.clock: Clock = clock or SystemClock()
        self.state = ZuoraState(self.clock, speed=speed)
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self.token_ttl = token_ttl
        self.token_clock: Clock = token_clock or SystemClock()
        self._credentials = (client_id, client_secret) if client_id is not None else None
        self._tokens: dict[str, tuple[datetime, str]] = {}  # token -> (expiry, user id)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._operations: dict[str, Callable[[_Call], _Reply]] = {
            "getAllTestEnvironments": self._list_environments,
            "getTestEnvironment": self._get_environment,
            "createTestEnvironmentJob": self._create_job,
            "getAllJobsOfTestEnvironment": self._list_jobs,
            "getJobOfTestEnvironment": self._get_job,
            "performActionOfJob": self._perform_action,
        }
        if seed:
            seed_environments(self.state)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False
    ) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the base URL."""
        if self._runner is not None:
            raise RuntimeError("the simulator is running already")
        app = web.Application()
        for method, path, name in _ROUTES:
            app.router.add_route(method, path, self._handle, name=name)
        app.router.add_route("*", "/{tail:.*}", self._handle, name="unknown")
        runner = web.AppRunner(
            app,
            access_log=log if access_log else None,
            auto_decompress=False,  # gzip bodies are decoded here, to answer errors Zuora's way
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._base_url = f"http://{host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Release every hold (a held request is answered, if its client still waits), then stop."""
        for hold in self.holds:
            hold.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the simulator has not been started")
        return self._base_url

    # --- helpers for tests ------------------------------------------------------------------------

    def add_environment(
        self,
        *,
        env_id: str | None = None,
        name: str = "Central Sandbox",
        environment_type: str = "TEST",
        data_copy_type: str = "FULL",
        status: str = "ACTIVE",
        last_refresh_time: datetime | None = None,
    ) -> dict[str, Any]:
        """Add a test environment (random 32-hex ID by default) and return its JSON."""
        env = self.state.add_environment(
            env_id=env_id,
            name=name,
            environment_type=environment_type,
            data_copy_type=data_copy_type,
            status=status,
            last_refresh_time=last_refresh_time,
        )
        return self.state.environment_json(env)

    def add_job(
        self,
        env_id: str,
        *,
        status: str = "QUEUED",
        job_type: str = "REFRESH",
        job_id: str | None = None,
        created_at: datetime | None = None,
        created_by: str = UI_USER_ID,
        scheduled_refresh_time: datetime | None = None,
    ) -> dict[str, Any]:
        """Add a job that is in ``status`` now, as if started in Zuora's UI; return its JSON.

        See :meth:`ZuoraState.add_job` for how it is backdated.
        """
        job = self.state.add_job(
            env_id,
            status=status,
            job_type=job_type,
            job_id=job_id,
            created_at=created_at,
            created_by=created_by,
            scheduled_refresh_time=scheduled_refresh_time,
        )
        return self.state.job_json(job)

    def environment(self, env_id: str) -> dict[str, Any]:
        return self.state.environment_json(self.state.environment(env_id))

    def job(self, env_id: str, job_id: str) -> dict[str, Any]:
        """The job as the API would return it now."""
        return self.state.job_json(self.state.job(env_id, job_id))

    def fail_job(self, env_id: str, job_id: str) -> dict[str, Any]:
        """Make a running job FAIL now."""
        return self.state.job_json(self.state.fail(env_id, job_id))

    def reschedule_job(self, env_id: str, job_id: str, when: datetime) -> dict[str, Any]:
        """Move a SCHEDULED refresh to ``when`` (ahead of the clock), as someone could in Zuora's UI."""
        return self.state.job_json(self.state.reschedule(env_id, job_id, when))

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far."""
        self._tokens.clear()

    @property
    def token_requests(self) -> int:
        """How many requests reached ``POST /oauth/token`` (granted or not)."""
        return sum(1 for r in self.requests if r.operation == TOKEN_OPERATION)

    def inject(
        self,
        kind: FaultKind,
        *,
        operation: str | None = None,
        env_id: str | None = None,
        job_id: str | None = None,
        count: int | None = 1,
        **params: Any,
    ) -> Fault:
        """Fail the next ``count`` calls that match (None filters match anything).

        ``operation`` is an operationId from :data:`OPERATIONS`; the token endpoint
        (``"createToken"``) is affected only when named. Kinds and their parameters:

        - ``latency``: ``seconds`` (1.0) of real delay, then the normal answer;
        - ``status``: ``status`` (500), ``body`` "classic" | "system" | "empty", ``retry_after``;
        - ``rate_limit``: 429 with ``Retry-After: retry_after`` (1);
        - ``garbage``: 200 with a non-JSON ``body`` labelled ``content_type`` (application/json);
        - ``drop``: the connection closes with no response; the operation does not run;
        - ``drop_after``: the operation RUNS, then the connection closes with no response
          (a CANCEL that took effect although the caller saw a network error).

        Every fault except ``drop_after`` applies before authentication and the operation.
        At most one fault of each of these two groups applies to a call: the earliest injected.
        """
        if kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {kind!r}")
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None for no limit)")
        unknown = set(params) - set(_FAULT_DEFAULTS[kind])
        if unknown:
            raise TypeError(f"{kind} takes no parameter {', '.join(sorted(unknown))}")
        merged = {**_FAULT_DEFAULTS[kind], **params}
        if kind == "status" and merged["body"] not in _STATUS_BODIES:
            raise ValueError(f"body must be one of {_STATUS_BODIES}")
        fault = Fault(kind, operation, env_id, job_id, count, merged)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def hold(self, operation: str | None = None) -> Hold:
        """Keep the next call of ``operation`` (None: any but the token endpoint) waiting.

        The request is recorded in :attr:`requests` on arrival, as any, and ``hold.reached``
        turns true; it is handled only on ``hold.release()``, then exactly as without the hold
        (faults included), so the operation runs at release time. A hold catches one request;
        holds for the same call catch successive requests. :meth:`stop` releases every hold.
        """
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        hold = Hold(operation)
        self.holds.append(hold)
        return hold

    # --- HTTP ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        route_name = request.match_info.route.name
        operation = route_name if route_name in OPERATIONS else None
        env_id = request.match_info.get("id")
        job_id = request.match_info.get("jobId")
        raw = await request.read()
        encoding_problem: str | None = None
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding == "gzip":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error):
                encoding_problem = "The request body is not valid gzip data."
        elif encoding not in ("", "identity"):
            encoding_problem = "Only gzip is supported as request Content-Encoding."
        body = None if encoding_problem else _parse_body(request.content_type, raw)
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            raw_body=raw,
            body=body,
            operation=operation,
            request_id=request_id,
            received_at=self.clock.now(),
        )
        self.requests.append(recorded)
        hold = next((h for h in self.holds if h.matches(operation)), None)
        if hold is not None:
            await hold._catch(recorded)

        track_id = request.headers.get("Zuora-Track-Id")
        problem = _track_id_problem(track_id) if track_id is not None else None
        if problem is not None:
            track_id = None
            reply = _classic(400, TRACK_ID_ERROR, problem, request_id)
            return self._send(request, reply, request_id, track_id)

        fault = self._take_fault(operation, env_id, job_id, after=False)
        if fault is not None and fault.kind == "latency":
            await asyncio.sleep(float(fault.params["seconds"]))
        elif fault is not None and fault.kind == "drop":
            return self._drop(request)
        elif fault is not None:
            return self._send(request, self._fault_reply(fault, request_id), request_id, track_id)

        call = _Call(request, operation, env_id, job_id, raw, request_id, encoding_problem)
        reply = self._answer(call)
        if self._take_fault(operation, env_id, job_id, after=True) is not None:
            return self._drop(request)
        return self._send(request, reply, request_id, track_id)

    def _answer(self, call: _Call) -> _Reply:
        if call.operation == TOKEN_OPERATION:
            return self._issue_token(call)
        user_id = self._authenticate(call.request)
        if user_id is None:
            return _classic(
                401,
                AUTH_ERROR,
                "This resource is protected, please sign in first.",
                call.request_id,
            )
        call.user_id = user_id
        handler = self._operations.get(call.operation or "")
        if handler is None:
            return _classic(
                404, NOT_FOUND_ERROR, f"No such resource: {call.request.path}", call.request_id
            )
        try:
            return handler(call)
        except SimApiError as error:
            return _classic(error.status, error.code, error.message, call.request_id)

    def _send(
        self, request: web.Request, reply: _Reply, request_id: str, track_id: str | None
    ) -> web.Response:
        headers = {"Zuora-Request-Id": request_id, **reply.headers}
        if track_id:
            headers["Zuora-Track-Id"] = track_id
        body = reply.body
        accepted = {
            part.split(";")[0].strip().lower()
            for part in request.headers.get("Accept-Encoding", "").split(",")
        }
        if "gzip" in accepted and len(body) > GZIP_THRESHOLD:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if reply.content_type is not None:
            headers["Content-Type"] = reply.content_type
        return web.Response(status=reply.status, body=body, headers=headers)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        """Close the connection; the response returned is never written."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=204)

    def _take_fault(
        self, operation: str | None, env_id: str | None, job_id: str | None, *, after: bool
    ) -> Fault | None:
        for fault in self.faults:
            if (fault.kind == "drop_after") == after and fault.matches(operation, env_id, job_id):
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_reply(fault: Fault, request_id: str) -> _Reply:
        params = fault.params
        if fault.kind == "rate_limit":
            reply = _classic(
                429, RATE_LIMIT_ERROR, "Too many requests: the rate limit is exceeded.", request_id
            )
            reply.headers["Retry-After"] = str(params["retry_after"])
            return reply
        if fault.kind == "garbage":
            raw = params["body"]
            data = raw.encode() if isinstance(raw, str) else bytes(raw)
            return _Reply(200, data, content_type=str(params["content_type"]))
        status = int(params["status"])
        temporary = status in (502, 503, 504)
        message = "Service temporarily unavailable." if temporary else "An internal error occurred."
        if params["body"] == "empty":
            reply = _Reply(status, b"", content_type=None)
        elif params["body"] == "system":
            reply = _json_reply(status, {"reasons": [{"code": "SystemError", "message": message}]})
        else:
            code = reason_code(GENERIC_RESOURCE, 61 if temporary else 60)
            reply = _classic(status, code, message, request_id)
        if params["retry_after"] is not None:
            reply.headers["Retry-After"] = str(params["retry_after"])
        return reply

    # --- OAuth --------------------------------------------------------------------------------

    def _issue_token(self, call: _Call) -> _Reply:
        form = _parse_body("application/x-www-form-urlencoded", call.raw)
        form = form if isinstance(form, dict) else {}
        grant_type = form.get("grant_type")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if not grant_type or not client_id or not client_secret:
            return _oauth_error(
                400, "invalid_request", "client_id, client_secret and grant_type are required."
            )
        if grant_type != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Use client_credentials.")
        if self._credentials is not None and not (
            secrets.compare_digest(client_id, self._credentials[0] or "")
            and secrets.compare_digest(client_secret, self._credentials[1] or "")
        ):
            return _oauth_error(401, "invalid_client", "Bad client credentials.")
        now = self.token_clock.now()
        self._tokens = {t: entry for t, entry in self._tokens.items() if entry[0] > now}
        token = secrets.token_hex(16)
        user_id = _user_id(client_id)
        self._tokens[token] = (now + timedelta(seconds=self.token_ttl), user_id)
        return _json_reply(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_ttl,
                "scope": f"user.{user_id} entity.1a2b7a37-3e7d-4cb3-b0e2-883de9e766cc "
                "platform.write service.sandbox-refresh.read service.sandbox-refresh.write "
                "tenant.10000000",
                "jti": secrets.token_hex(16),
            },
        )

    def _authenticate(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        entry = self._tokens.get(token.strip())
        if entry is None or entry[0] <= self.token_clock.now():
            return None
        return entry[1]

    # --- operations ---------------------------------------------------------------------------

    def _list_environments(self, call: _Call) -> _Reply:
        envs = [self.state.environment_json(env) for env in self.state.environments.values()]
        return _json_reply(200, {"result": envs, "size": len(envs)})

    def _get_environment(self, call: _Call) -> _Reply:
        return _json_reply(200, self.state.environment_json(self.state.environment(call.env)))

    def _list_jobs(self, call: _Call) -> _Reply:
        jobs = [self.state.job_json(job) for job in self.state.jobs(call.env)]
        return _json_reply(200, {"result": jobs, "size": len(jobs)})

    def _get_job(self, call: _Call) -> _Reply:
        return _json_reply(200, self.state.job_json(self.state.job(call.env, call.job)))

    def _create_job(self, call: _Call) -> _Reply:
        body = call.json_object()
        if body.get("jobType") != "REFRESH":
            raise SimApiError(
                400, INVALID_VALUE_ERROR, "Invalid value for field jobType: expected REFRESH."
            )
        scheduled = None
        if body.get("scheduledRefreshTime") is not None:
            scheduled = _parse_time(body["scheduledRefreshTime"])
            if scheduled is None:
                raise SimApiError(
                    400,
                    INVALID_VALUE_ERROR,
                    "Invalid value for field scheduledRefreshTime: expected an ISO-8601 date-time.",
                )
        job = self.state.create_refresh(call.env, scheduled, call.user_id)
        location = call.request.url.with_path(f"/test-environments/{call.env}/jobs/{job.id}")
        return _json_reply(
            200, self.state.job_json(job), {"Location": str(location.with_query(None))}
        )

    def _perform_action(self, call: _Call) -> _Reply:
        body = call.json_object()
        if body.get("jobAction") != "CANCEL":
            raise SimApiError(
                400, INVALID_VALUE_ERROR, "Invalid value for field jobAction: expected CANCEL."
            )
        job = self.state.cancel(call.env, call.job, call.user_id)
        return _json_reply(200, self.state.job_json(job))


def _oauth_error(status: int, error: str, description: str) -> _Reply:
    return _json_reply(status, {"error": error, "error_description": description})


@dataclass
class _Call:
    """One authenticated-or-not API call on its way to an operation."""

    request: web.Request
    operation: str | None
    env_id: str | None
    job_id: str | None
    raw: bytes
    request_id: str
    encoding_problem: str | None
    user_id: str = ""

    @property
    def env(self) -> str:
        assert self.env_id is not None
        return self.env_id

    @property
    def job(self) -> str:
        assert self.job_id is not None
        return self.job_id

    def json_object(self) -> dict[str, Any]:
        """The request body as a JSON object, or a 400 the way Zuora words it."""
        if self.encoding_problem is not None:
            raise SimApiError(400, MALFORMED_ERROR, self.encoding_problem)
        try:
            body = json.loads(self.raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SimApiError(400, MALFORMED_ERROR, "The request body must be a JSON object.")
        return body


# --- command line -----------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sim.zuora", description="Zuora test-environment API simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="job stages run this many times faster than Zuora's; times stay real (default 60)",
    )
    parser.add_argument("--client-id", help="the only client ID granted a token (default: any)")
    parser.add_argument("--client-secret", help="the secret that goes with --client-id")
    parser.add_argument("--no-seed", action="store_true", help="start without environments")
    args = parser.parse_args(argv)
    if (args.client_id is None) != (args.client_secret is None):
        parser.error("--client-id and --client-secret go together")
    if args.speed <= 0:
        parser.error("--speed must be positive")
    return args


async def _serve(args: argparse.Namespace) -> None:
    sim = ZuoraSimulator(
        SystemClock(),
        speed=args.speed,
        client_id=args.client_id,
        client_secret=args.client_secret,
        seed=not args.no_seed,
    )
    url = await sim.start(args.host, args.port, access_log=True)
    print(f"Zuora simulator listening on {url}", flush=True)
    for env in sim.state.environments.values():
        print(f"  {env.id}  {env.environment_type:<9}  {env.tenant_name}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
