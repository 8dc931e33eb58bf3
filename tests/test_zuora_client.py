"""The Zuora client against respx: headers, auth, retries, every error shape and fault kind."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from bot.secret import Secret
from bot.zuora.auth import OAuthClientCredentials, StaticToken
from bot.zuora.client import ZuoraClient
from bot.zuora.errors import (
    ZuoraAuthenticationError,
    ZuoraConnectionError,
    ZuoraError,
    ZuoraMalformedResponseError,
    ZuoraNotFoundError,
    ZuoraPermissionError,
    ZuoraRateLimitedError,
    ZuoraRejectedError,
    ZuoraServerError,
    ZuoraTimeoutError,
)
from bot.zuora.models import JobStatus
from bot.zuora.responses import parse_retry_after
from bot.zuora.retry import RetryPolicy
from bot.zuora.trackid import InvalidTrackIdError

BASE = "https://zuora.test"
ENV = "0123456789abcdef0123456789abcdef"
JOB = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "c" * 36
SECRET = "top-secret-value-never-shown"
JOB_URL = f"{BASE}/test-environments/{ENV}/jobs/{JOB}"
ACTION_URL = f"{JOB_URL}/actions"


def job_body(status: str = "QUEUED", **extra: object) -> dict[str, object]:
    return {
        "id": JOB,
        "testEnvironmentId": ENV,
        "jobType": "REFRESH",
        "status": status,
        "progressPercentage": 10,
        "createTime": "2026-11-29T10:00:00Z",
        **extra,
    }


def token_route(router: respx.MockRouter, expires_in: int = 3599) -> respx.Route:
    counter = {"n": 0}

    def issue(request: httpx.Request) -> httpx.Response:
        counter["n"] += 1
        return httpx.Response(
            200,
            json={
                "access_token": f"tok-{counter['n']}",
                "token_type": "bearer",
                "expires_in": expires_in,
            },
        )

    return router.post(f"{BASE}/oauth/token").mock(side_effect=issue)


class Sleeps:
    """A sleep that records its delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def router() -> respx.MockRouter:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(
    http: httpx.AsyncClient,
    sleeps: Sleeps,
    *,
    clock: object = None,
    **kw: object,
) -> ZuoraClient:
    auth_kw = {"clock": clock} if clock is not None else {}
    auth = OAuthClientCredentials(
        http=http, base_url=BASE, client_id=CLIENT_ID, client_secret=Secret(SECRET), **auth_kw
    )
    return ZuoraClient(
        base_url=BASE,
        auth=auth,
        http=http,
        sleep=sleeps,
        retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05),
        **kw,  # type: ignore[arg-type]
    )


# -- headers and bodies ---------------------------------------------------------------------------------------


async def test_cancel_sends_one_correct_request(router, http, sleeps) -> None:
    token_route(router)
    route = router.post(ACTION_URL).respond(200, json=job_body("CANCELLING"))
    client = make_client(http, sleeps, entity_id="entity-1")

    job = await client.cancel_job(ENV, JOB, track_id="trace-abc")

    assert job.status is JobStatus.CANCELLING
    assert route.call_count == 1
    request = route.calls.last.request
    assert json.loads(request.content) == {"jobAction": "CANCEL"}
    assert request.headers["Authorization"] == "Bearer tok-1"
    assert request.headers["Zuora-Track-Id"] == "trace-abc"
    assert request.headers["Zuora-Entity-Ids"] == "entity-1"
    assert request.headers["Accept-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "application/json"


async def test_fresh_valid_track_id_on_every_call_and_no_entity_header_by_default(
    router, http, sleeps
) -> None:
    token_route(router)
    route = router.get(JOB_URL).respond(200, json=job_body())
    client = make_client(http, sleeps)
    await client.get_job(ENV, JOB)
    await client.get_job(ENV, JOB)
    first, second = (call.request.headers["Zuora-Track-Id"] for call in route.calls)
    assert first != second
    for track in (first, second):
        assert len(track) <= 64 and track.isascii()
        assert not set(track) & set(":;\"'")
    assert "Zuora-Entity-Ids" not in route.calls.last.request.headers


@pytest.mark.parametrize("bad", ["a:b", "a;b", 'a"b', "a'b", "x" * 65, "café", "tab\there", ""])
async def test_invalid_caller_track_id_is_refused_before_any_request(
    router, http, sleeps, bad
) -> None:
    tokens = token_route(router)
    route = router.get(JOB_URL).respond(200, json=job_body())
    client = make_client(http, sleeps)
    with pytest.raises(InvalidTrackIdError):
        await client.get_job(ENV, JOB, track_id=bad)
    assert route.call_count == 0 and tokens.call_count == 0


async def test_gzip_request_bodies_when_enabled(router, http, sleeps) -> None:
    token_route(router)
    route = router.post(f"{BASE}/test-environments/{ENV}/jobs").respond(200, json=job_body("NEW"))
    client = make_client(http, sleeps, gzip_requests=True)
    await client.create_refresh_job(ENV)
    request = route.calls.last.request
    assert request.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(request.content)) == {"jobType": "REFRESH"}


async def test_gzipped_response_is_decoded(router, http, sleeps) -> None:
    token_route(router)
    jobs = {"result": [job_body(status="EXPORTING") for _ in range(30)], "size": 30}
    router.get(f"{BASE}/test-environments/{ENV}/jobs").respond(
        200, content=gzip.compress(json.dumps(jobs).encode()), headers={"Content-Encoding": "gzip"}
    )
    result = await make_client(http, sleeps).list_jobs(ENV)
    assert len(result) == 30 and result[0].status is JobStatus.EXPORTING


async def test_path_segments_are_percent_encoded(router, http, sleeps) -> None:
    token_route(router)
    route = router.get(url__regex=r".*/jobs/.*").respond(404)
    with pytest.raises(ZuoraNotFoundError):
        await make_client(http, sleeps).get_job(ENV, "../../oauth/token")
    assert "/jobs/..%2F..%2Foauth%2Ftoken" in str(route.calls.last.request.url)


async def test_unknown_enum_values_and_extra_fields_are_kept(router, http, sleeps) -> None:
    token_route(router)
    router.get(JOB_URL).respond(200, json=job_body("TELEPORTING", jobType="CLONE", shinyNewField=7))
    job = await make_client(http, sleeps).get_job(ENV, JOB)
    assert job.status == "TELEPORTING" and job.job_type == "CLONE"
    assert not job.is_cancellable and not job.is_terminal
    assert job.model_extra == {"shinyNewField": 7}


async def test_scheduled_refresh_sends_iso_time(router, http, sleeps) -> None:
    from datetime import UTC, datetime

    token_route(router)
    route = router.post(f"{BASE}/test-environments/{ENV}/jobs").respond(
        201, json=job_body("SCHEDULED")
    )
    when = datetime(2026, 12, 24, 6, 30, tzinfo=UTC)
    await make_client(http, sleeps).create_refresh_job(ENV, scheduled_at=when)
    body = json.loads(route.calls.last.request.content)
    assert body["jobType"] == "REFRESH"
    assert datetime.fromisoformat(body["scheduledRefreshTime"]) == when


# -- authentication ---------------------------------------------------------------------------------------------


async def test_fifty_concurrent_calls_with_cold_cache_make_one_token_request(
    router, http, sleeps
) -> None:
    async def slow_token(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)  # the token answer takes a while: every call is waiting for it
        return httpx.Response(200, json={"access_token": "tok", "expires_in": 3599})

    tokens = router.post(f"{BASE}/oauth/token").mock(side_effect=slow_token)
    router.get(JOB_URL).respond(200, json=job_body())
    client = make_client(http, sleeps)
    results = await asyncio.gather(*(client.get_job(ENV, JOB) for _ in range(50)))
    assert len(results) == 50
    assert tokens.call_count == 1
    form = dict(httpx.QueryParams(tokens.calls.last.request.content.decode()))
    assert form == {
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "grant_type": "client_credentials",
    }


async def test_token_renewed_shortly_before_expiry(router, http, sleeps) -> None:
    now = [1000.0]
    tokens = token_route(router, expires_in=3599)
    api = router.get(JOB_URL).respond(200, json=job_body())
    client = make_client(http, sleeps, clock=lambda: now[0])
    await client.get_job(ENV, JOB)
    now[0] += 3599 - 61  # just outside the 60 s renewal margin: still used
    await client.get_job(ENV, JOB)
    assert tokens.call_count == 1
    now[0] += 2  # inside the margin: renewed before Zuora would refuse it
    await client.get_job(ENV, JOB)
    assert tokens.call_count == 2
    assert api.calls.last.request.headers["Authorization"] == "Bearer tok-2"


async def test_401_renews_once_and_retries_once(router, http, sleeps) -> None:
    tokens = token_route(router)
    api = router.get(JOB_URL).mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json=job_body())]
    )
    job = await make_client(http, sleeps).get_job(ENV, JOB)
    assert job.id == JOB
    assert tokens.call_count == 2 and api.call_count == 2
    assert api.calls[1].request.headers["Authorization"] == "Bearer tok-2"


async def test_401_twice_is_an_authentication_error(router, http, sleeps) -> None:
    tokens = token_route(router)
    api = router.get(JOB_URL).respond(401, headers={"Zuora-Request-Id": "r" * 36})
    with pytest.raises(ZuoraAuthenticationError) as caught:
        await make_client(http, sleeps).get_job(ENV, JOB)
    assert tokens.call_count == 2 and api.call_count == 2
    assert caught.value.status == 401 and caught.value.request_id == "r" * 36


async def test_burst_of_401s_for_one_token_renews_it_once(router, http, sleeps) -> None:
    tokens = token_route(router)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer tok-1":
            return httpx.Response(401)
        return httpx.Response(200, json=job_body())

    router.get(JOB_URL).mock(side_effect=answer)
    client = make_client(http, sleeps)
    await asyncio.gather(*(client.get_job(ENV, JOB) for _ in range(20)))
    assert tokens.call_count == 2


async def test_static_token_is_sent_and_a_401_is_not_retried(router, http, sleeps) -> None:
    api = router.get(JOB_URL).respond(401)
    client = ZuoraClient(
        base_url=BASE, auth=StaticToken(Secret("static-tok")), http=http, sleep=sleeps
    )
    with pytest.raises(ZuoraAuthenticationError):
        await client.get_job(ENV, JOB)
    assert api.call_count == 1
    assert api.calls.last.request.headers["Authorization"] == "Bearer static-tok"


@pytest.mark.parametrize("status", [400, 401])
async def test_bad_credentials_never_show_the_secret(router, http, sleeps, status) -> None:
    router.post(f"{BASE}/oauth/token").respond(status, json={"error": "invalid_client"})
    with pytest.raises(ZuoraAuthenticationError) as caught:
        await make_client(http, sleeps).get_job(ENV, JOB)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value.__dict__)
    assert caught.value.operation == "createToken"


# -- errors -------------------------------------------------------------------------------------------------------

CLASSIC = {
    "success": False,
    "processId": "ABC",
    "reasons": [{"code": 53100020, "message": "Job can not be cancelled in status RESETTING"}],
    "requestId": "r",
}
SYSTEM = {"reasons": [{"code": "SystemError", "message": "Something went wrong"}]}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ZuoraRejectedError),
        (403, ZuoraPermissionError),
        (404, ZuoraNotFoundError),
        (409, ZuoraRejectedError),
        (500, ZuoraServerError),
    ],
)
@pytest.mark.parametrize(
    ("body", "reasons"),
    [
        (b"", ()),
        (
            json.dumps(CLASSIC).encode(),
            (("53100020", "Job can not be cancelled in status RESETTING"),),
        ),
        (json.dumps(SYSTEM).encode(), (("SystemError", "Something went wrong"),)),
        (b"<html>Bad Gateway</html>", ()),
        (b"[1, 2]", ()),
        (b'{"reasons": "not a list"}', ()),
    ],
)
async def test_every_status_and_body_shape_maps_to_an_error(
    router, http, sleeps, status, kind, body, reasons
) -> None:
    token_route(router)
    router.post(ACTION_URL).respond(status, content=body, headers={"Zuora-Request-Id": "req-1"})
    with pytest.raises(kind) as caught:
        await make_client(http, sleeps).cancel_job(ENV, JOB, track_id="t-1")
    error = caught.value
    assert error.status == status
    assert error.operation == "performActionOfJob"
    assert [(r.code, r.message) for r in error.reasons] == [tuple(r) for r in reasons]
    assert error.track_id == "t-1" and error.request_id == "req-1"
    assert "t-1" in str(error) and "req-1" in str(error)


async def test_garbage_success_body_is_a_malformed_response(router, http, sleeps) -> None:
    token_route(router)
    router.get(JOB_URL).respond(200, content=b"\x00garbage{", headers={"Zuora-Request-Id": "req-9"})
    with pytest.raises(ZuoraMalformedResponseError) as caught:
        await make_client(http, sleeps).get_job(ENV, JOB, track_id="t-9")
    assert (caught.value.status, caught.value.track_id, caught.value.request_id) == (
        200,
        "t-9",
        "req-9",
    )


async def test_wrong_shape_success_body_is_a_malformed_response(router, http, sleeps) -> None:
    token_route(router)
    router.get(JOB_URL).respond(200, json={"status": {"nested": "object"}})
    with pytest.raises(ZuoraMalformedResponseError):
        await make_client(http, sleeps).get_job(ENV, JOB)


# -- retries --------------------------------------------------------------------------------------------------------


async def test_get_retries_429_honouring_retry_after(router, http, sleeps) -> None:
    token_route(router)
    api = router.get(JOB_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(200, json=job_body()),
        ]
    )
    await make_client(http, sleeps).get_job(ENV, JOB)
    assert api.call_count == 2
    assert len(sleeps.delays) == 1 and 2.0 <= sleeps.delays[0] < 2.1


async def test_retry_after_beyond_the_cap_is_not_waited_out(router, http, sleeps) -> None:
    token_route(router)
    api = router.get(JOB_URL).respond(429, headers={"Retry-After": "3600"})
    with pytest.raises(ZuoraRateLimitedError) as caught:
        await make_client(http, sleeps).get_job(ENV, JOB)
    assert api.call_count == 1 and sleeps.delays == []
    assert caught.value.retry_after == 3600


async def test_persistent_429_gives_up_after_the_attempts(router, http, sleeps) -> None:
    token_route(router)
    api = router.get(JOB_URL).respond(429, headers={"Retry-After": "1"})
    with pytest.raises(ZuoraRateLimitedError):
        await make_client(http, sleeps).get_job(ENV, JOB)
    assert api.call_count == 4 and len(sleeps.delays) == 3


def _failures(kind: str) -> httpx.Response | Exception:
    return {
        "429": httpx.Response(429, headers={"Retry-After": "0"}),
        "500": httpx.Response(500),
        "502": httpx.Response(502),
        "503": httpx.Response(503),
        "504": httpx.Response(504),
        "connect": httpx.ConnectError("refused"),
        "connect-timeout": httpx.ConnectTimeout("slow connect"),
        "read-timeout": httpx.ReadTimeout("slow answer"),
        "dropped": httpx.RemoteProtocolError("server disconnected"),
    }[kind]


# (failure, retried for GET, retried for CANCEL, retried for create)
RETRY_TABLE = [
    ("429", True, True, True),
    ("500", False, False, False),
    ("502", True, False, False),
    ("503", True, True, False),
    ("504", True, False, False),
    ("connect", True, True, True),
    ("connect-timeout", True, True, True),
    ("read-timeout", True, False, False),
    ("dropped", True, False, False),
]


@pytest.mark.parametrize(("failure", "get", "cancel", "create"), RETRY_TABLE)
@pytest.mark.parametrize("operation", ["get", "cancel", "create"])
async def test_retry_rules_per_operation(
    router, http, sleeps, failure, get, cancel, create, operation
) -> None:
    token_route(router)
    expected_retry = {"get": get, "cancel": cancel, "create": create}[operation]
    method, url = {
        "get": ("GET", JOB_URL),
        "cancel": ("POST", ACTION_URL),
        "create": ("POST", f"{BASE}/test-environments/{ENV}/jobs"),
    }[operation]
    route = router.route(method=method, url=url).mock(
        side_effect=[_failures(failure), httpx.Response(200, json=job_body())]
    )
    client = make_client(http, sleeps)
    call = {
        "get": lambda: client.get_job(ENV, JOB),
        "cancel": lambda: client.cancel_job(ENV, JOB),
        "create": lambda: client.create_refresh_job(ENV),
    }[operation]
    if expected_retry:
        await call()
        assert route.call_count == 2
    else:
        with pytest.raises(ZuoraError):
            await call()
        assert route.call_count == 1


@pytest.mark.parametrize(
    ("failure", "kind", "sent"),
    [
        (httpx.ConnectError("refused"), ZuoraConnectionError, False),
        (httpx.ConnectTimeout("t"), ZuoraTimeoutError, False),
        (httpx.ReadTimeout("t"), ZuoraTimeoutError, True),
        (httpx.RemoteProtocolError("dropped"), ZuoraConnectionError, True),
    ],
)
async def test_transport_failures_map_to_unavailable_errors(
    router, http, sleeps, failure, kind, sent
) -> None:
    token_route(router)
    router.post(ACTION_URL).mock(side_effect=failure)
    client = ZuoraClient(
        base_url=BASE,
        auth=StaticToken(Secret("t")),
        http=http,
        sleep=sleeps,
        retry=RetryPolicy(attempts=1),
    )
    with pytest.raises(kind) as caught:
        await client.cancel_job(ENV, JOB, track_id="t-2")
    assert caught.value.status is None and caught.value.track_id == "t-2"
    assert caught.value.request_sent is sent


async def test_backoff_grows_and_stays_within_the_cap(router, http, sleeps) -> None:
    token_route(router)
    router.get(JOB_URL).respond(503)
    client = ZuoraClient(
        base_url=BASE,
        auth=StaticToken(Secret("t")),
        http=http,
        sleep=sleeps,
        retry=RetryPolicy(attempts=6, base_delay=1.0, max_delay=4.0),
    )
    with pytest.raises(ZuoraServerError):
        await client.get_job(ENV, JOB)
    assert len(sleeps.delays) == 5
    caps = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(0 <= delay <= cap for delay, cap in zip(sleeps.delays, caps, strict=True))


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0


async def test_corrupt_gzip_body_is_a_malformed_response_over_loopback(sleeps: Sleeps) -> None:
    """httpx raises DecodingError (not a TransportError) for a body that claims gzip but is not."""
    from aiohttp import web

    async def broken(request: web.Request) -> web.Response:
        return web.Response(
            body=b"not gzip at all",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    app = web.Application()
    app.router.add_get("/test-environments/{env}/jobs/{job}", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with httpx.AsyncClient() as client:
            zuora = ZuoraClient(
                base_url=base, auth=StaticToken(Secret("t")), http=client, sleep=sleeps
            )
            with pytest.raises(ZuoraMalformedResponseError) as caught:
                await zuora.get_job(ENV, JOB, track_id="t-gz")
        assert caught.value.track_id == "t-gz"
    finally:
        await runner.cleanup()


async def test_no_attempt_starts_after_the_deadline(router, http) -> None:
    token_route(router)
    api = router.get(JOB_URL).respond(503)

    async def slow_sleep(seconds: float) -> None:
        await asyncio.sleep(0.2)  # every pause takes a while, whatever the backoff asked

    # The deadline runs on tenacity's monotonic clock, which the client does not let a test replace,
    # so the margins are wide instead: with at least 0.2 s per pause, at most 2.0 / 0.2 + 1 = 11
    # attempts start within the deadline however slow the machine, and only a first attempt slower
    # than 2 s could prevent the retry.
    client = ZuoraClient(
        base_url=BASE,
        auth=StaticToken(Secret("t")),
        http=http,
        sleep=slow_sleep,
        retry=RetryPolicy(attempts=50, base_delay=0.01, deadline=2.0),
    )
    with pytest.raises(ZuoraServerError):
        await client.get_job(ENV, JOB)
    assert 2 <= api.call_count <= 11  # retried, but stopped by the deadline, not by the attempts
