"""The Zuora client against the simulator over real loopback HTTP: every operation, the cancellation and
refresh rules as Zuora states them, token expiry, and each fault kind mapped to its exception."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web

from bot.secret import Secret
from bot.sim.clock import ManualClock
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import (
    ENV_DEV,
    ENV_QA,
    ENV_STAGING,
    ENV_UAT,
    JOB_CANCELLABLE,
    JOB_PAST_RESETTING,
)
from bot.zuora.auth import OAuthClientCredentials, StaticToken
from bot.zuora.client import ZuoraClient
from bot.zuora.errors import (
    ZuoraConnectionError,
    ZuoraMalformedResponseError,
    ZuoraNotFoundError,
    ZuoraPermissionError,
    ZuoraRejectedError,
    ZuoraServerError,
    ZuoraTimeoutError,
)
from bot.zuora.models import JobStatus
from bot.zuora.retry import RetryPolicy
from tests.conftest import ZUORA_CLIENT_ID, ZUORA_CLIENT_SECRET, Handler


async def no_sleep(seconds: float) -> None:
    return None


TIMEOUT = httpx.Timeout(10.0)  # generous: a busy machine is slow, not broken


def make_client(
    zuora: ZuoraSimulator, http: httpx.AsyncClient, token_http: httpx.AsyncClient | None = None
) -> tuple[ZuoraClient, OAuthClientCredentials]:
    """The client and its token source (on ``token_http`` when given, else on ``http``)."""
    auth = OAuthClientCredentials(
        http=token_http or http,
        base_url=zuora.base_url,
        client_id=ZUORA_CLIENT_ID,
        client_secret=Secret(ZUORA_CLIENT_SECRET),
    )
    client = ZuoraClient(
        base_url=zuora.base_url,
        auth=auth,
        http=http,
        gzip_requests=True,
        retry=RetryPolicy(attempts=3, base_delay=0.01),
        sleep=no_sleep,
    )
    return client, auth


@pytest.fixture
async def client(
    zuora: ZuoraSimulator,
) -> AsyncIterator[tuple[ZuoraClient, OAuthClientCredentials]]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        yield make_client(zuora, http)


async def test_every_operation(
    client: tuple[ZuoraClient, OAuthClientCredentials], clock: ManualClock
) -> None:
    zuora, _ = client
    environments = await zuora.list_test_environments()
    assert {e.id for e in environments} >= {ENV_STAGING, ENV_UAT, ENV_QA, ENV_DEV}
    dev = await zuora.get_test_environment(ENV_DEV)
    assert dev.environment_type == "DEVELOPER"
    jobs = await zuora.list_jobs(ENV_STAGING)
    assert JOB_CANCELLABLE in {j.id for j in jobs}
    job = await zuora.get_job(ENV_STAGING, JOB_CANCELLABLE)
    assert job.status is JobStatus.EXPORTING and job.is_cancellable
    cancelled = await zuora.cancel_job(ENV_STAGING, JOB_CANCELLABLE, track_id="sandbox-bot-test-1")
    assert cancelled.status is JobStatus.CANCELLING
    again = await zuora.cancel_job(ENV_STAGING, JOB_CANCELLABLE)  # cancelling twice is harmless
    assert again.status is JobStatus.CANCELLING
    clock.advance(120)
    assert (await zuora.get_job(ENV_STAGING, JOB_CANCELLABLE)).status is JobStatus.CANCELLED
    created = await zuora.create_refresh_job(ENV_QA)
    assert created.status in (JobStatus.NEW, JobStatus.QUEUED)
    assert created.id in {j.id for j in await zuora.list_jobs(ENV_QA)}


async def test_cancel_past_the_reset_stage_is_rejected_with_zuoras_reasons(
    client: tuple[ZuoraClient, OAuthClientCredentials],
) -> None:
    zuora, _ = client
    with pytest.raises(ZuoraRejectedError) as caught:
        await zuora.cancel_job(ENV_UAT, JOB_PAST_RESETTING, track_id="sandbox-bot-past")
    error = caught.value
    assert error.status == 400 and error.reasons and len(error.reasons[0].code) == 8
    assert error.track_id == "sandbox-bot-past" and error.request_id and len(error.request_id) == 36


async def test_unknown_job_is_not_found_and_second_refresh_is_refused(
    client: tuple[ZuoraClient, OAuthClientCredentials],
) -> None:
    zuora, _ = client
    with pytest.raises(ZuoraNotFoundError):
        await zuora.get_job(ENV_STAGING, "no-such-job")
    with pytest.raises(ZuoraPermissionError) as caught:
        await zuora.create_refresh_job(
            ENV_DEV
        )  # refreshed 3 days ago; a Developer Sandbox waits 14
    assert caught.value.status == 403 and caught.value.reasons


async def test_expired_tokens_are_renewed_once(
    client: tuple[ZuoraClient, OAuthClientCredentials], zuora: ZuoraSimulator
) -> None:
    api, auth = client
    await api.get_job(ENV_STAGING, JOB_CANCELLABLE)
    zuora.expire_tokens()
    await api.get_job(ENV_STAGING, JOB_CANCELLABLE)
    assert auth.requests_made == 2


@pytest.mark.parametrize(
    ("fault", "params", "kind"),
    [
        ("status", {"status": 500, "body": "classic"}, ZuoraServerError),
        ("garbage", {}, ZuoraMalformedResponseError),
        ("drop", {}, ZuoraConnectionError),
    ],
)
async def test_each_fault_on_cancel_maps_to_its_exception_without_a_blind_retry(
    client: tuple[ZuoraClient, OAuthClientCredentials],
    zuora: ZuoraSimulator,
    fault: str,
    params: dict[str, object],
    kind: type[Exception],
) -> None:
    api, _ = client
    zuora.inject(fault, operation="performActionOfJob", count=None, **params)  # type: ignore[arg-type]
    with pytest.raises(kind) as caught:
        await api.cancel_job(ENV_STAGING, JOB_CANCELLABLE, track_id="sandbox-bot-fault")
    assert caught.value.track_id == "sandbox-bot-fault"  # type: ignore[attr-defined]
    if fault in ("status", "garbage"):
        assert caught.value.request_id  # type: ignore[attr-defined]
    if fault == "status":
        assert caught.value.reasons  # type: ignore[attr-defined]
    # None of these is retried for a cancel: Zuora may have acted (or answered, for 500).
    assert len([r for r in zuora.requests if r.operation == "performActionOfJob"]) == 1


async def test_latency_past_the_timeout_on_cancel_is_a_timeout_without_a_blind_retry(
    zuora: ZuoraSimulator,
) -> None:
    # Only the cancel has the short timeout (the token comes on a patient client), and Zuora's
    # latency is far beyond it, so the timeout is certain however busy the machine.
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as http,
        httpx.AsyncClient(timeout=TIMEOUT) as token_http,
    ):
        api, _ = make_client(zuora, http, token_http)
        zuora.inject("latency", operation="performActionOfJob", count=None, seconds=30.0)
        with pytest.raises(ZuoraTimeoutError) as caught:
            await api.cancel_job(ENV_STAGING, JOB_CANCELLABLE, track_id="sandbox-bot-fault")
    assert caught.value.track_id == "sandbox-bot-fault"
    # Not retried: Zuora may have acted on the cancel.
    assert len([r for r in zuora.requests if r.operation == "performActionOfJob"]) == 1


async def test_rate_limit_and_503_are_retried_for_a_get(
    client: tuple[ZuoraClient, OAuthClientCredentials], zuora: ZuoraSimulator
) -> None:
    api, _ = client
    zuora.inject("rate_limit", operation="getJobOfTestEnvironment", retry_after=0)
    zuora.inject("status", operation="getJobOfTestEnvironment", status=503, body="empty")
    job = await api.get_job(ENV_STAGING, JOB_CANCELLABLE)
    assert job.id == JOB_CANCELLABLE
    assert len([r for r in zuora.requests if r.operation == "getJobOfTestEnvironment"]) == 3


async def test_a_401_renews_the_token_even_when_the_pool_is_full(zuora: ZuoraSimulator) -> None:
    """The refused request's connection goes back to the pool before the token request needs one: with a
    pool of one connection, the renewal and the second try still get through."""
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, pool=2.0), limits=limits) as http:
        client, auth = make_client(zuora, http)
        await client.list_test_environments()
        zuora.inject("status", operation="getAllTestEnvironments", status=401, count=1)
        observed: list[tuple[str, str]] = []
        client._observer = lambda operation, outcome, seconds: observed.append((operation, outcome))
        assert await client.list_test_environments()
        assert auth.requests_made == 2
        assert observed == [("getAllTestEnvironments", "401"), ("getAllTestEnvironments", "200")]


async def test_an_answer_that_trickles_in_ends_at_the_call_deadline(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """httpx's timeouts are per read: a server sending a byte every 0.2 s would hold the call for ever."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(600):
                await response.write(b" ")
                await asyncio.sleep(0.2)
        return response

    base = await serve(trickle)
    async with httpx.AsyncClient(timeout=httpx.Timeout(1.0)) as http:
        client = ZuoraClient(
            base_url=base,
            auth=StaticToken(Secret("t")),
            http=http,
            retry=RetryPolicy(attempts=1),
        )
        started = time.monotonic()
        with pytest.raises(ZuoraTimeoutError):
            await client.list_test_environments()
        assert time.monotonic() - started < 20  # the deadline (2 s here), not 600 trickles


async def test_an_answer_far_too_large_is_not_read_whole(
    zuora: ZuoraSimulator, client: tuple[ZuoraClient, OAuthClientCredentials]
) -> None:
    api, _auth = client
    zuora.inject(
        "garbage", operation="getAllTestEnvironments", body=b"[" + b"0," * 4_000_000 + b"0]"
    )
    with pytest.raises(ZuoraMalformedResponseError, match="far too large"):
        await api.list_test_environments()
