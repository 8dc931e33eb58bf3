"""The Zuora test-environment simulator, exercised over real loopback HTTP."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from bot.sim.clock import ManualClock, SystemClock
from bot.sim.zuora import (
    ENV_DEV,
    ENV_QA,
    ENV_STAGING,
    ENV_UAT,
    JOB_CANCELLABLE,
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_PAST_RESETTING,
    ZuoraSimulator,
)
from bot.sim.zuora_seed import (
    ENV_TRAINING,
    KEEP_ENDED,
    SUPPORT_USER_ID,
    Reseeder,
    add_training_environment,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX32_RE = re.compile(r"[0-9a-f]{32}")
REFRESH_SEQUENCE = [
    "NEW",
    "QUEUED",
    "INITIATED",
    "EXPORTING",
    "SCRUBBING",
    "RESETTING",
    "IMPORTING",
    "FINALIZING",
    "COMPLETED",
]
SECONDS_TO_RESETTING = 30 + 120 + 180 + 2400 + 900  # NEW..SCRUBBING in the simulator

# --- the project's own copies of Zuora's OpenAPI schemas -------------------------------------

DATE_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
INT32: dict[str, Any] = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
STRING: dict[str, Any] = {"type": "string"}
JOB_STATUSES = [
    "NEW",
    "SCHEDULED",
    "QUEUED",
    "INITIATED",
    "PROVISIONING",
    "DEPROVISIONING",
    "EXPORTING",
    "SCRUBBING",
    "RESETTING",
    "IMPORTING",
    "FINALIZING",
    "CANCELLING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
]
# additionalProperties is stricter than Zuora's schemas: the simulator must not invent fields.
JOB_RESPONSE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": STRING,
        "testEnvironmentId": STRING,
        "jobType": {"type": "string", "enum": ["REFRESH", "CREATE", "DELETE"]},
        "status": {"type": "string", "enum": JOB_STATUSES},
        "progressPercentage": INT32,
        "createTime": DATE_TIME,
        "updateTime": DATE_TIME,
        "jobStartTime": DATE_TIME,
        "jobEndTime": DATE_TIME,
        "estimatedCompletionTime": DATE_TIME,
        "scheduledRefreshTime": DATE_TIME,
        "createdById": STRING,
        "updatedById": STRING,
    },
}
JOB_ARRAY_RESPONSE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"result": {"type": "array", "items": JOB_RESPONSE}, "size": INT32},
}
TEST_ENVIRONMENT_RESPONSE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": STRING,
        "tenantId": STRING,
        "tenantName": STRING,
        "sourceTenantId": STRING,
        "status": {
            "type": "string",
            "enum": ["ACTIVE", "PROCESSING", "INACTIVE", "DEACTIVATED", "DELETED"],
        },
        "environmentType": {
            "type": "string",
            "enum": ["TEST", "ENTERPRISE", "TRIAL", "DEMO", "DEVELOPER"],
        },
        "dataCopyType": {"type": "string", "enum": ["FULL", "CONFIGURATION"]},
        "createTime": DATE_TIME,
        "updateTime": DATE_TIME,
        "provisionTime": DATE_TIME,
        "lastRefreshTime": DATE_TIME,
        "nextRefreshTime": DATE_TIME,
        "deactivationTime": DATE_TIME,
        "revenueTenantId": STRING,
        "revenueTenantName": STRING,
        "createdById": STRING,
        "updatedById": STRING,
    },
}
TEST_ENVIRONMENT_ARRAY_RESPONSE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "result": {"type": "array", "items": TEST_ENVIRONMENT_RESPONSE},
        "size": INT32,
    },
}
TOKEN_RESPONSE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "access_token": STRING,
        "token_type": STRING,
        "expires_in": {"type": "number"},
        "scope": STRING,
        "jti": STRING,
    },
}
CLASSIC_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["success", "processId", "reasons", "requestId"],
    "properties": {
        "success": {"const": False},
        "processId": STRING,
        "reasons": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "integer", "minimum": 10_000_000, "maximum": 99_999_999},
                    "message": {"type": "string", "minLength": 1},
                },
            },
        },
        "requestId": STRING,
    },
}

FORMATS = FormatChecker(formats=())
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    datetime.fromisoformat(value)
    return RFC3339.fullmatch(value) is not None


def conform(body: Any, schema: dict[str, Any]) -> Any:
    Draft7Validator(schema, format_checker=FORMATS).validate(body)
    return body


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def classic_error(response: httpx.Response, status: int, category: int) -> str:
    """Assert a classic reasons body of ``status`` and category; return its message."""
    assert response.status_code == status, response.text
    body = conform(response.json(), CLASSIC_ERROR)
    assert body["requestId"] == response.headers["Zuora-Request-Id"]
    code = body["reasons"][0]["code"]
    assert code % 100 == category, code
    message: str = body["reasons"][0]["message"]
    return message


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[ZuoraSimulator]:
    async with ZuoraSimulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def anon(sim: ZuoraSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client without a token."""
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=5) as client:
        yield client


async def fetch_token(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    data = {
        "client_id": "3f2a9c1e-0b7d-4e55-9a1c-2d8e7f6a5b4c",
        "client_secret": "s3cr3t",
        "grant_type": "client_credentials",
    }
    data.update(form)
    return await client.post("/oauth/token", data=data)


@pytest.fixture
async def api(sim: ZuoraSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a valid bearer token."""
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=5) as client:
        token = (await fetch_token(client)).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def job_path(env_id: str, job_id: str) -> str:
    return f"/test-environments/{env_id}/jobs/{job_id}"


async def cancel(api: httpx.AsyncClient, env_id: str, job_id: str) -> httpx.Response:
    return await api.post(f"{job_path(env_id, job_id)}/actions", json={"jobAction": "CANCEL"})


async def start_refresh(api: httpx.AsyncClient, env_id: str, **extra: str) -> httpx.Response:
    return await api.post(f"/test-environments/{env_id}/jobs", json={"jobType": "REFRESH", **extra})


# --- OAuth ------------------------------------------------------------------------------------


async def test_token_is_issued_and_opens_the_api(
    sim: ZuoraSimulator, anon: httpx.AsyncClient
) -> None:
    response = await fetch_token(anon)
    assert response.status_code == 200
    body = conform(response.json(), TOKEN_RESPONSE)
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3599
    assert body["access_token"] and body["jti"] and body["scope"]
    assert sim.token_requests == 1
    listed = await anon.get(
        "/test-environments", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert listed.status_code == 200


@pytest.mark.parametrize(
    "authorization", [None, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer"]
)
async def test_calls_without_a_valid_token_get_401(
    anon: httpx.AsyncClient, authorization: str | None
) -> None:
    await fetch_token(anon)  # a valid token exists, but is not sent
    headers = {"Authorization": authorization} if authorization else {}
    response = await anon.get("/test-environments", headers=headers)
    classic_error(response, 401, 11)


async def test_expire_tokens_invalidates_issued_tokens(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    assert (await api.get("/test-environments")).status_code == 200
    sim.expire_tokens()
    classic_error(await api.get("/test-environments"), 401, 11)
    fresh = (await fetch_token(api)).json()["access_token"]
    again = await api.get("/test-environments", headers={"Authorization": f"Bearer {fresh}"})
    assert again.status_code == 200


async def test_token_expires_after_its_ttl_on_the_token_clock() -> None:
    token_clock = ManualClock()
    async with (
        ZuoraSimulator(ManualClock(), token_ttl=60, token_clock=token_clock, seed=False) as sim,
        httpx.AsyncClient(base_url=sim.base_url, timeout=5) as client,
    ):
        body = (await fetch_token(client)).json()
        assert body["expires_in"] == 60
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await client.get("/test-environments", headers=headers)).status_code == 200
        token_clock.advance(59.9)
        assert (await client.get("/test-environments", headers=headers)).status_code == 200
        token_clock.advance(0.1)
        classic_error(await client.get("/test-environments", headers=headers), 401, 11)


async def test_the_simulated_clock_does_not_expire_tokens(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.advance(3 * 3600)  # hours of job lifecycle: the token is still good
    assert (await api.get("/test-environments")).status_code == 200


async def test_configured_credentials_are_the_only_ones_accepted() -> None:
    client_id = "0d6f3b1c-5a2e-4f8b-9c7d-1e2f3a4b5c6d"
    async with (
        ZuoraSimulator(client_id=client_id, client_secret="right", seed=False) as sim,
        httpx.AsyncClient(base_url=sim.base_url, timeout=5) as client,
    ):
        wrong_secret = await fetch_token(client, client_id=client_id, client_secret="wrong")
        assert wrong_secret.status_code == 401
        assert wrong_secret.json()["error"] == "invalid_client"
        wrong_id = await fetch_token(client, client_secret="right")
        assert wrong_id.status_code == 401
        right = await fetch_token(client, client_id=client_id, client_secret="right")
        assert right.status_code == 200
        assert sim.token_requests == 3


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "invalid_request"),
        ({"client_secret": ""}, "invalid_request"),
    ],
)
async def test_malformed_token_requests_get_400(
    anon: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    response = await fetch_token(anon, **form)
    assert response.status_code == 400
    assert response.json()["error"] == error


# --- headers: Zuora-Track-Id, Zuora-Request-Id ------------------------------------------------


@pytest.mark.parametrize(
    "track_id",
    [
        b"trace:1",
        b"trace;1",
        b'trace"1',
        b"trace'1",
        b"x" * 65,
        "caf\u00e9".encode(),
        b"tab\there",
    ],
    ids=["colon", "semicolon", "double-quote", "quote", "65-chars", "non-ascii", "control"],
)
async def test_invalid_track_ids_are_refused(
    sim: ZuoraSimulator, api: httpx.AsyncClient, track_id: bytes
) -> None:
    response = await api.get("/test-environments", headers={b"Zuora-Track-Id": track_id})
    classic_error(response, 400, 20)
    assert "Zuora-Track-Id" not in response.headers
    assert "Zuora-Track-Id" in sim.requests[-1].headers  # it did arrive


async def test_refused_track_id_does_not_run_the_operation(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    response = await api.post(
        f"{job_path(ENV_STAGING, JOB_CANCELLABLE)}/actions",
        json={"jobAction": "CANCEL"},
        headers={"Zuora-Track-Id": "a:b"},
    )
    classic_error(response, 400, 20)
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "EXPORTING"


async def test_valid_track_id_is_echoed_and_request_ids_are_fresh_uuids(
    api: httpx.AsyncClient,
) -> None:
    track_id = "bot-" + "7" * 60  # 64 characters, the maximum
    first = await api.get("/test-environments", headers={"Zuora-Track-Id": track_id})
    second = await api.get(f"/test-environments/{ENV_QA}")
    assert first.status_code == second.status_code == 200
    assert first.headers["Zuora-Track-Id"] == track_id
    assert "Zuora-Track-Id" not in second.headers
    ids = [r.headers["Zuora-Request-Id"] for r in (first, second)]
    assert all(len(i) == 36 and UUID_RE.fullmatch(i) for i in ids)
    assert ids[0] != ids[1]


async def test_error_responses_carry_request_and_track_ids(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/test-environments/{'0' * 32}", headers={"Zuora-Track-Id": "t-1"})
    classic_error(response, 404, 40)
    assert response.headers["Zuora-Track-Id"] == "t-1"


# --- gzip -------------------------------------------------------------------------------------


async def test_large_responses_are_gzipped_when_accepted(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    async with api.stream(
        "GET", "/test-environments", headers={"Accept-Encoding": "gzip"}
    ) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["Content-Encoding"] == "gzip"
    body = json.loads(gzip.decompress(raw))
    assert len(json.dumps(body)) > 1000
    assert body["size"] == 4

    plain = await api.get("/test-environments", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert plain.json() == body


async def test_small_responses_are_not_gzipped(api: httpx.AsyncClient) -> None:
    response = await api.get(job_path(ENV_QA, JOB_COMPLETED), headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert len(response.content) <= 1000
    assert "Content-Encoding" not in response.headers


async def test_gzipped_request_bodies_are_accepted(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    payload = gzip.compress(json.dumps({"jobAction": "CANCEL"}).encode())
    response = await api.post(
        f"{job_path(ENV_STAGING, JOB_CANCELLABLE)}/actions",
        content=payload,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLING"
    recorded = sim.requests[-1]
    assert recorded.body == {"jobAction": "CANCEL"}
    assert recorded.headers["content-encoding"] == "gzip"


async def test_corrupt_gzip_request_body_is_a_400(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    response = await api.post(
        f"{job_path(ENV_STAGING, JOB_CANCELLABLE)}/actions",
        content=b"not gzip at all",
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    classic_error(response, 400, 90)
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "EXPORTING"


# --- the refresh lifecycle ----------------------------------------------------------------------


async def test_refresh_runs_through_every_status(
    sim: ZuoraSimulator, api: httpx.AsyncClient, clock: ManualClock
) -> None:
    created = await start_refresh(api, ENV_QA)
    assert created.status_code == 200
    job = conform(created.json(), JOB_RESPONSE)
    assert (job["status"], job["progressPercentage"]) == ("NEW", 0)
    assert job["testEnvironmentId"] == ENV_QA and UUID_RE.fullmatch(job["id"])
    assert HEX32_RE.fullmatch(job["createdById"]) and job["updatedById"] == job["createdById"]
    assert "jobStartTime" not in job and "jobEndTime" not in job
    location = created.headers["Location"]
    assert location == f"{sim.base_url}{job_path(ENV_QA, job['id'])}"

    statuses: list[str] = []
    progress: list[int] = []
    env_statuses: set[str] = set()
    while True:
        current = conform((await api.get(location)).json(), JOB_RESPONSE)
        if not statuses or statuses[-1] != current["status"]:
            statuses.append(current["status"])
        progress.append(current["progressPercentage"])
        if current["status"] == "COMPLETED":
            break
        assert "jobEndTime" not in current
        assert ("jobStartTime" in current) == (current["status"] not in ("NEW", "QUEUED"))
        env_statuses.add((await api.get(f"/test-environments/{ENV_QA}")).json()["status"])
        clock.advance(30)
    assert statuses == REFRESH_SEQUENCE
    assert progress == sorted(progress) and progress[0] == 0 and progress[-1] == 100
    assert max(progress[:-1]) < 100 and len(set(progress)) > 50
    assert env_statuses == {"PROCESSING"}

    start, end = parse_time(current["jobStartTime"]), parse_time(current["jobEndTime"])
    assert parse_time(current["createTime"]) < start < end <= clock.now()
    assert parse_time(current["estimatedCompletionTime"]) == end
    env = (await api.get(f"/test-environments/{ENV_QA}")).json()
    assert env["status"] == "ACTIVE"
    assert parse_time(env["lastRefreshTime"]) == end
    assert parse_time(env["nextRefreshTime"]) == end + timedelta(days=28)


async def test_scheduled_refresh_waits_for_its_time(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    at = clock.now() + timedelta(hours=5)
    created = await start_refresh(api, ENV_QA, scheduledRefreshTime=at.isoformat())
    job = conform(created.json(), JOB_RESPONSE)
    assert job["status"] == "SCHEDULED"
    assert parse_time(job["scheduledRefreshTime"]) == at
    assert parse_time(job["estimatedCompletionTime"]) > at
    env = (await api.get(f"/test-environments/{ENV_QA}")).json()
    assert env["status"] == "ACTIVE"

    clock.advance(5 * 3600 - 1)
    assert (await api.get(created.headers["Location"])).json()["status"] == "SCHEDULED"
    clock.advance(1)
    started = (await api.get(created.headers["Location"])).json()
    assert started["status"] == "QUEUED"
    assert (await api.get(f"/test-environments/{ENV_QA}")).json()["status"] == "PROCESSING"


async def test_a_scheduled_refresh_can_be_moved_and_starts_at_its_new_time(
    sim: ZuoraSimulator, api: httpx.AsyncClient, clock: ManualClock
) -> None:
    at = clock.now() + timedelta(hours=5)
    created = await start_refresh(api, ENV_QA, scheduledRefreshTime=at.isoformat())
    job_id = created.json()["id"]
    clock.advance(60)
    later = clock.now() + timedelta(days=1)
    moved = conform(sim.reschedule_job(ENV_QA, job_id, later), JOB_RESPONSE)
    assert (moved["status"], parse_time(moved["scheduledRefreshTime"])) == ("SCHEDULED", later)
    assert parse_time(moved["updateTime"]) == clock.now()  # the move is its latest change
    assert parse_time(moved["estimatedCompletionTime"]) > later
    clock.set(at + timedelta(minutes=1))  # the old time has passed: still waiting
    assert (await api.get(created.headers["Location"])).json()["status"] == "SCHEDULED"
    sooner = clock.now() + timedelta(minutes=10)
    sim.reschedule_job(ENV_QA, job_id, sooner)  # earlier works too
    clock.set(sooner)
    started = (await api.get(created.headers["Location"])).json()
    assert started["status"] == "QUEUED" and parse_time(started["updateTime"]) == sooner


def test_only_a_scheduled_job_is_moved_and_only_ahead(
    sim: ZuoraSimulator, clock: ManualClock
) -> None:
    job = sim.add_job(
        ENV_QA, status="SCHEDULED", scheduled_refresh_time=clock.now() + timedelta(hours=1)
    )
    with pytest.raises(ValueError, match="not ahead"):
        sim.reschedule_job(ENV_QA, job["id"], clock.now())
    with pytest.raises(ValueError, match="only a SCHEDULED job"):
        sim.reschedule_job(ENV_STAGING, JOB_CANCELLABLE, clock.now() + timedelta(hours=1))


async def test_scheduled_time_in_the_past_starts_at_once(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    past = (clock.now() - timedelta(hours=1)).isoformat()
    job = (await start_refresh(api, ENV_QA, scheduledRefreshTime=past)).json()
    assert job["status"] == "NEW"


# --- CANCEL -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_type", "status"),
    [
        ("REFRESH", "NEW"),
        ("REFRESH", "SCHEDULED"),
        ("REFRESH", "QUEUED"),
        ("REFRESH", "INITIATED"),
        ("REFRESH", "EXPORTING"),
        ("REFRESH", "SCRUBBING"),
        ("CREATE", "PROVISIONING"),
        ("DELETE", "DEPROVISIONING"),
    ],
)
async def test_cancel_before_resetting_goes_through_cancelling_to_cancelled(
    sim: ZuoraSimulator, api: httpx.AsyncClient, clock: ManualClock, job_type: str, status: str
) -> None:
    env = sim.add_environment()
    before = sim.add_job(env["id"], status=status, job_type=job_type)
    response = await cancel(api, env["id"], before["id"])
    assert response.status_code == 200
    cancelling = conform(response.json(), JOB_RESPONSE)
    assert cancelling["status"] == "CANCELLING"
    assert cancelling["progressPercentage"] == before["progressPercentage"]
    assert cancelling["updatedById"] != before["createdById"]  # the API caller, not the UI user
    assert HEX32_RE.fullmatch(cancelling["updatedById"])
    assert "jobEndTime" not in cancelling
    assert sim.environment(env["id"])["status"] == "PROCESSING"

    clock.advance(30)
    assert sim.job(env["id"], before["id"])["status"] == "CANCELLING"
    clock.advance(30)
    cancelled = conform((await api.get(job_path(env["id"], before["id"]))).json(), JOB_RESPONSE)
    assert cancelled["status"] == "CANCELLED"
    assert parse_time(cancelled["jobEndTime"]) == clock.now()
    assert cancelled["progressPercentage"] == before["progressPercentage"]
    assert (await api.get(f"/test-environments/{env['id']}")).json()["status"] == "ACTIVE"
    clock.advance(3 * 3600)  # a cancelled job stays cancelled
    assert sim.job(env["id"], before["id"])["status"] == "CANCELLED"


@pytest.mark.parametrize(
    "status", ["RESETTING", "IMPORTING", "FINALIZING", "COMPLETED", "FAILED", "CANCELLED"]
)
async def test_cancel_from_resetting_on_is_refused(
    sim: ZuoraSimulator, api: httpx.AsyncClient, status: str
) -> None:
    env = sim.add_environment()
    job = sim.add_job(env["id"], status=status)
    message = classic_error(await cancel(api, env["id"], job["id"]), 400, 20)
    assert status in message and "cannot be cancelled" in message
    assert sim.job(env["id"], job["id"]) == job


async def test_cancel_boundary_is_the_start_of_resetting(
    sim: ZuoraSimulator, api: httpx.AsyncClient, clock: ManualClock
) -> None:
    first = (await start_refresh(api, ENV_QA)).json()
    clock.advance(SECONDS_TO_RESETTING - 1)
    assert sim.job(ENV_QA, first["id"])["status"] == "SCRUBBING"
    clock.advance(1)
    assert sim.job(ENV_QA, first["id"])["status"] == "RESETTING"
    classic_error(await cancel(api, ENV_QA, first["id"]), 400, 20)

    env = sim.add_environment()
    second = (await start_refresh(api, env["id"])).json()
    clock.advance(SECONDS_TO_RESETTING - 1)
    assert (await cancel(api, env["id"], second["id"])).json()["status"] == "CANCELLING"


async def test_seeded_jobs_cancel_as_their_status_says(api: httpx.AsyncClient) -> None:
    assert (await cancel(api, ENV_STAGING, JOB_CANCELLABLE)).status_code == 200
    classic_error(await cancel(api, ENV_UAT, JOB_PAST_RESETTING), 400, 20)
    classic_error(await cancel(api, ENV_QA, JOB_COMPLETED), 400, 20)
    classic_error(await cancel(api, ENV_STAGING, JOB_CANCELLED), 400, 20)
    classic_error(await cancel(api, ENV_UAT, JOB_FAILED), 400, 20)


async def test_cancelling_twice_is_harmless(
    sim: ZuoraSimulator, api: httpx.AsyncClient, clock: ManualClock
) -> None:
    first = (await cancel(api, ENV_STAGING, JOB_CANCELLABLE)).json()
    clock.advance(20)
    second = await cancel(api, ENV_STAGING, JOB_CANCELLABLE)
    assert second.status_code == 200
    assert second.json() == first
    clock.advance(40)  # the first request still decides when it ends
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "CANCELLED"


async def test_a_job_that_fails_ends_failed(
    sim: ZuoraSimulator, api: httpx.AsyncClient, clock: ManualClock
) -> None:
    job = sim.fail_job(ENV_STAGING, JOB_CANCELLABLE)
    assert job["status"] == "FAILED" and parse_time(job["jobEndTime"]) == clock.now()
    clock.advance(4 * 3600)
    assert (await api.get(job_path(ENV_STAGING, JOB_CANCELLABLE))).json() == job


# --- 404s and validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "category"),
    [
        ("GET", f"/test-environments/{'f' * 32}", 40),
        ("GET", f"/test-environments/{'f' * 32}/jobs", 40),
        ("POST", f"/test-environments/{'f' * 32}/jobs", 40),
        ("GET", job_path("f" * 32, JOB_CANCELLABLE), 40),
        ("GET", job_path(ENV_STAGING, "00000000-0000-4000-8000-000000000000"), 40),
        ("GET", job_path(ENV_QA, JOB_CANCELLABLE), 40),  # a job of another environment
        ("POST", f"{job_path(ENV_STAGING, '00000000-0000-4000-8000-000000000000')}/actions", 40),
        ("GET", "/v1/test-environments", 40),
    ],
)
async def test_unknown_resources_are_404(
    api: httpx.AsyncClient, method: str, path: str, category: int
) -> None:
    body = {"jobAction": "CANCEL"} if path.endswith("actions") else {"jobType": "REFRESH"}
    response = await api.request(method, path, json=body if method == "POST" else None)
    classic_error(response, 404, category)


@pytest.mark.parametrize(
    ("path", "content"),
    [
        (f"/test-environments/{ENV_QA}/jobs", b"{not json"),
        (f"/test-environments/{ENV_QA}/jobs", b""),
        (f"/test-environments/{ENV_QA}/jobs", b'["REFRESH"]'),
        (f"/test-environments/{ENV_QA}/jobs", b'{"jobType": "CREATE"}'),
        (
            f"/test-environments/{ENV_QA}/jobs",
            b'{"jobType": "REFRESH", "scheduledRefreshTime": "soon"}',
        ),
        (f"{job_path(ENV_STAGING, JOB_CANCELLABLE)}/actions", b'{"jobAction": "PAUSE"}'),
        (f"{job_path(ENV_STAGING, JOB_CANCELLABLE)}/actions", b"{}"),
        (f"{job_path(ENV_STAGING, JOB_CANCELLABLE)}/actions", b"CANCEL"),
    ],
)
async def test_invalid_bodies_are_400_and_change_nothing(
    sim: ZuoraSimulator, api: httpx.AsyncClient, path: str, content: bytes
) -> None:
    response = await api.post(path, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    conform(response.json(), CLASSIC_ERROR)
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "EXPORTING"
    assert len((await api.get(f"/test-environments/{ENV_QA}/jobs")).json()["result"]) == 1


# --- refresh rules --------------------------------------------------------------------------------


async def test_refresh_within_the_developer_period_is_403(api: httpx.AsyncClient) -> None:
    env = (await api.get(f"/test-environments/{ENV_DEV}")).json()
    message = classic_error(await start_refresh(api, ENV_DEV), 403, 10)
    assert env["nextRefreshTime"] in message
    last, upcoming = parse_time(env["lastRefreshTime"]), parse_time(env["nextRefreshTime"])
    assert upcoming - last == timedelta(days=14)


@pytest.mark.parametrize(("days_ago", "expected"), [(27, 403), (29, 200)])
async def test_central_sandbox_period_is_28_days(
    sim: ZuoraSimulator, api: httpx.AsyncClient, clock: ManualClock, days_ago: int, expected: int
) -> None:
    env = sim.add_environment(last_refresh_time=clock.now() - timedelta(days=days_ago))
    assert (await start_refresh(api, env["id"])).status_code == expected


async def test_refresh_scheduled_after_the_period_is_allowed(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    upcoming = parse_time(
        (await api.get(f"/test-environments/{ENV_DEV}")).json()["nextRefreshTime"]
    )
    early = (upcoming - timedelta(minutes=1)).isoformat()
    classic_error(await start_refresh(api, ENV_DEV, scheduledRefreshTime=early), 403, 10)
    created = await start_refresh(api, ENV_DEV, scheduledRefreshTime=upcoming.isoformat())
    assert created.status_code == 200 and created.json()["status"] == "SCHEDULED"


@pytest.mark.parametrize("ending", ["cancel", "fail"])
async def test_cancelled_or_failed_refreshes_do_not_count(
    sim: ZuoraSimulator, api: httpx.AsyncClient, clock: ManualClock, ending: str
) -> None:
    env = sim.add_environment()
    job = (await start_refresh(api, env["id"])).json()
    if ending == "cancel":
        assert (await cancel(api, env["id"], job["id"])).status_code == 200
    else:
        sim.fail_job(env["id"], job["id"])
    clock.advance(120)
    again = await start_refresh(api, env["id"])
    assert again.status_code == 200, again.text
    assert "lastRefreshTime" not in sim.environment(env["id"])


async def test_refresh_while_a_job_is_active_is_400(api: httpx.AsyncClient) -> None:
    message = classic_error(await start_refresh(api, ENV_STAGING), 400, 50)
    assert JOB_CANCELLABLE in message


async def test_a_scheduled_refresh_blocks_another(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    later = (clock.now() + timedelta(days=1)).isoformat()
    assert (await start_refresh(api, ENV_QA, scheduledRefreshTime=later)).status_code == 200
    classic_error(await start_refresh(api, ENV_QA), 400, 50)


async def test_inactive_environment_cannot_be_refreshed(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    env = sim.add_environment(status="INACTIVE")
    classic_error(await start_refresh(api, env["id"]), 400, 20)


# --- fault injection ------------------------------------------------------------------------------


async def test_latency_fault_delays_then_answers(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    fault = sim.inject("latency", seconds=0.3)
    started = time.monotonic()
    response = await api.get("/test-environments")
    assert time.monotonic() - started >= 0.3  # a lower bound only
    assert response.status_code == 200
    assert fault.hits == 1 and sim.faults == []  # used up: the next call is not delayed
    assert (await api.get("/test-environments")).status_code == 200
    assert fault.hits == 1


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("shape", ["classic", "system", "empty"])
async def test_status_fault_answers_each_error_shape_once(
    sim: ZuoraSimulator, api: httpx.AsyncClient, status: int, shape: str
) -> None:
    sim.inject("status", status=status, body=shape, retry_after=3)
    response = await cancel(api, ENV_STAGING, JOB_CANCELLABLE)
    assert response.status_code == status
    assert response.headers["Retry-After"] == "3"
    assert UUID_RE.fullmatch(response.headers["Zuora-Request-Id"])
    if shape == "classic":
        conform(response.json(), CLASSIC_ERROR)
    elif shape == "system":
        assert response.json()["reasons"][0]["code"] == "SystemError"
    else:
        assert response.content == b""
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "EXPORTING"  # did not run
    assert (await cancel(api, ENV_STAGING, JOB_CANCELLABLE)).status_code == 200


async def test_rate_limit_fault_is_429_with_retry_after(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    sim.inject("rate_limit", retry_after=7)
    response = await api.get("/test-environments")
    classic_error(response, 429, 70)
    assert response.headers["Retry-After"] == "7"


async def test_garbage_fault_is_200_with_a_body_that_is_not_json(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    sim.inject("garbage")
    response = await api.get(job_path(ENV_STAGING, JOB_CANCELLABLE))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_drop_fault_closes_the_connection_and_does_not_cancel(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    sim.inject("drop", operation="performActionOfJob")
    with pytest.raises(httpx.RemoteProtocolError):
        await cancel(api, ENV_STAGING, JOB_CANCELLABLE)
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "EXPORTING"
    assert (await cancel(api, ENV_STAGING, JOB_CANCELLABLE)).json()["status"] == "CANCELLING"


async def test_drop_after_fault_cancels_but_gives_no_response(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    sim.inject("drop_after", job_id=JOB_CANCELLABLE)
    with pytest.raises(httpx.RemoteProtocolError):
        await cancel(api, ENV_STAGING, JOB_CANCELLABLE)
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "CANCELLING"
    retried = await cancel(api, ENV_STAGING, JOB_CANCELLABLE)
    assert retried.status_code == 200 and retried.json()["status"] == "CANCELLING"


async def test_faults_hit_only_matching_calls_and_only_count_times(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    fault = sim.inject("status", status=503, env_id=ENV_UAT, count=2)
    assert (await api.get(f"/test-environments/{ENV_QA}")).status_code == 200
    assert (await api.get("/test-environments")).status_code == 200
    assert (await api.get(f"/test-environments/{ENV_UAT}")).status_code == 503
    assert (await api.get(f"/test-environments/{ENV_UAT}/jobs")).status_code == 503
    assert (await api.get(f"/test-environments/{ENV_UAT}")).status_code == 200
    assert fault.hits == 2 and fault.remaining == 0 and sim.faults == []


async def test_untargeted_faults_spare_the_token_endpoint(
    sim: ZuoraSimulator, anon: httpx.AsyncClient
) -> None:
    sim.inject("status", status=500)
    assert (await fetch_token(anon)).status_code == 200
    sim.clear_faults()
    sim.inject("rate_limit", operation="createToken", retry_after=2)
    limited = await fetch_token(anon)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert (await fetch_token(anon)).status_code == 200
    assert sim.token_requests == 3


async def test_unlimited_fault_lasts_until_cleared(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    sim.inject("status", status=502, count=None, operation="getAllTestEnvironments")
    for _ in range(3):
        assert (await api.get("/test-environments")).status_code == 502
    sim.clear_faults()
    assert (await api.get("/test-environments")).status_code == 200


async def test_a_held_request_arrives_and_is_answered_only_on_release(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    hold = sim.hold("performActionOfJob")
    assert not hold.reached
    sending = asyncio.create_task(cancel(api, ENV_STAGING, JOB_CANCELLABLE))
    arrived = await hold.wait_reached()
    assert hold.reached and hold.request is arrived and sim.requests[-1] is arrived
    assert arrived.operation == "performActionOfJob" and arrived.body == {"jobAction": "CANCEL"}
    # Held: other calls are answered meanwhile, the cancel has not run and has no answer.
    assert (await api.get(job_path(ENV_STAGING, JOB_CANCELLABLE))).json()["status"] == "EXPORTING"
    assert not sending.done()
    hold.release()
    response = await sending
    assert response.status_code == 200 and response.json()["status"] == "CANCELLING"
    assert response.headers["Zuora-Request-Id"] == arrived.request_id
    # A hold catches one request: the next is answered at once.
    again = await cancel(api, ENV_STAGING, JOB_CANCELLABLE)
    assert again.status_code == 200
    assert [r.operation for r in sim.requests].count("performActionOfJob") == 2


async def test_holds_catch_only_their_operation_and_one_request_each(
    sim: ZuoraSimulator, api: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    untargeted, second = sim.hold(), sim.hold()
    assert (await fetch_token(anon)).status_code == 200  # the token endpoint is spared
    first_call = asyncio.create_task(api.get("/test-environments"))
    assert (await untargeted.wait_reached()).operation == "getAllTestEnvironments"
    second_call = asyncio.create_task(api.get(f"/test-environments/{ENV_QA}"))
    assert (await second.wait_reached()).operation == "getTestEnvironment"
    second.release()
    assert (await second_call).status_code == 200  # answered although the first is still held
    assert not first_call.done()
    untargeted.release()
    assert (await first_call).status_code == 200


async def test_a_hold_released_before_its_request_lets_it_through(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    hold = sim.hold("getAllTestEnvironments")
    hold.release()
    assert (await api.get("/test-environments")).status_code == 200
    assert hold.reached and hold.request is sim.requests[-1]


async def test_a_held_request_still_meets_its_fault_on_release(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    hold = sim.hold("performActionOfJob")
    sim.inject("status", operation="performActionOfJob", status=503)
    sending = asyncio.create_task(cancel(api, ENV_STAGING, JOB_CANCELLABLE))
    await hold.wait_reached()
    assert sim.faults  # not taken while held
    hold.release()
    assert (await sending).status_code == 503
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "EXPORTING"


async def test_stopping_the_simulator_releases_its_holds() -> None:
    sim = ZuoraSimulator(ManualClock())
    await sim.start()
    try:
        async with httpx.AsyncClient(base_url=sim.base_url, timeout=10) as client:
            token = (await fetch_token(client)).json()["access_token"]
            client.headers["Authorization"] = f"Bearer {token}"
            hold, never_reached = sim.hold("getAllTestEnvironments"), sim.hold("getTestEnvironment")
            sending = asyncio.create_task(client.get("/test-environments"))
            await hold.wait_reached()
            await asyncio.wait_for(sim.stop(), timeout=10)
            assert hold.released and never_reached.released
            assert (await sending).status_code == 200  # answered, not left hanging
    finally:
        await sim.stop()


def test_hold_rejects_an_unknown_operation() -> None:
    sim = ZuoraSimulator(clock=ManualClock(), seed=False)
    with pytest.raises(ValueError, match="unknown operation"):
        sim.hold("cancel")


@pytest.mark.parametrize(
    ("kind", "kwargs", "error"),
    [
        ("explode", {}, ValueError),
        ("latency", {"secs": 1}, TypeError),
        ("status", {"body": "html"}, ValueError),
        ("drop", {"operation": "cancel"}, ValueError),
        ("drop", {"count": 0}, ValueError),
    ],
)
def test_inject_rejects_mistakes(kind: str, kwargs: dict[str, Any], error: type[Exception]) -> None:
    sim = ZuoraSimulator(clock=ManualClock(), seed=False)
    with pytest.raises(error):
        sim.inject(kind, **kwargs)  # type: ignore[arg-type]


# --- recording --------------------------------------------------------------------------------------


async def test_every_request_is_recorded_decoded(
    sim: ZuoraSimulator, api: httpx.AsyncClient
) -> None:
    await cancel(api, ENV_STAGING, JOB_CANCELLABLE)
    token_request, action = sim.requests
    assert token_request.operation == "createToken"
    assert token_request.body["grant_type"] == "client_credentials"
    assert action.method == "POST"
    assert action.path == f"{job_path(ENV_STAGING, JOB_CANCELLABLE)}/actions"
    assert action.operation == "performActionOfJob"
    assert action.body == {"jobAction": "CANCEL"}
    assert action.headers["authorization"].startswith("Bearer ")
    assert UUID_RE.fullmatch(action.request_id)


# --- schema conformance -------------------------------------------------------------------------------


async def test_every_body_kind_conforms_to_the_schemas(
    sim: ZuoraSimulator, api: httpx.AsyncClient, clock: ManualClock
) -> None:
    deactivated = sim.add_environment(status="DEACTIVATED", environment_type="DEMO")
    conform(deactivated, TEST_ENVIRONMENT_RESPONSE)
    later = (clock.now() + timedelta(days=2)).isoformat()
    conform((await start_refresh(api, ENV_QA, scheduledRefreshTime=later)).json(), JOB_RESPONSE)
    conform((await cancel(api, ENV_STAGING, JOB_CANCELLABLE)).json(), JOB_RESPONSE)
    for env_id in (ENV_STAGING, ENV_UAT, ENV_QA, ENV_DEV, deactivated["id"]):
        conform((await api.get(f"/test-environments/{env_id}")).json(), TEST_ENVIRONMENT_RESPONSE)
        jobs = conform(
            (await api.get(f"/test-environments/{env_id}/jobs")).json(), JOB_ARRAY_RESPONSE
        )
        assert jobs["size"] == len(jobs["result"])
        for job in jobs["result"]:
            conform((await api.get(job_path(env_id, job["id"]))).json(), JOB_RESPONSE)
    envs = conform((await api.get("/test-environments")).json(), TEST_ENVIRONMENT_ARRAY_RESPONSE)
    assert envs["size"] == 5
    seen = {
        job["status"]
        for env_id in (ENV_STAGING, ENV_UAT, ENV_QA)
        for job in (await api.get(f"/test-environments/{env_id}/jobs")).json()["result"]
    }
    assert {"SCHEDULED", "CANCELLING", "IMPORTING", "COMPLETED", "CANCELLED", "FAILED"} <= seen


@pytest.mark.parametrize(
    "bad",
    [
        {"status": "DONE"},
        {"progressPercentage": "50"},
        {"createTime": "2026-03-02 09:00"},
        {"jobStatus": "NEW"},
    ],
)
def test_the_schema_copies_do_reject_wrong_bodies(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        conform({"id": "x", **bad}, JOB_RESPONSE)


async def test_seeded_environments_match_their_constants(api: httpx.AsyncClient) -> None:
    envs = {e["id"]: e for e in (await api.get("/test-environments")).json()["result"]}
    assert set(envs) == {ENV_STAGING, ENV_UAT, ENV_QA, ENV_DEV}
    assert all(HEX32_RE.fullmatch(env_id) for env_id in envs)
    assert envs[ENV_DEV]["environmentType"] == "DEVELOPER"
    assert {envs[ENV_STAGING]["status"], envs[ENV_UAT]["status"]} == {"PROCESSING"}
    assert envs[ENV_QA]["status"] == envs[ENV_DEV]["status"] == "ACTIVE"
    expected = {
        (ENV_STAGING, JOB_CANCELLABLE): "EXPORTING",
        (ENV_UAT, JOB_PAST_RESETTING): "IMPORTING",
        (ENV_QA, JOB_COMPLETED): "COMPLETED",
        (ENV_STAGING, JOB_CANCELLED): "CANCELLED",
        (ENV_UAT, JOB_FAILED): "FAILED",
    }
    for (env_id, job_id), status in expected.items():
        assert (await api.get(job_path(env_id, job_id))).json()["status"] == status
    jobs = (await api.get(f"/test-environments/{ENV_STAGING}/jobs")).json()["result"]
    created = [job["createTime"] for job in jobs]
    assert created == sorted(created)  # oldest first


# --- test helpers and clocks --------------------------------------------------------------------------


def test_add_job_refuses_inconsistent_requests(clock: ManualClock) -> None:
    sim = ZuoraSimulator(clock=clock, seed=False)
    env = sim.add_environment()
    with pytest.raises(ValueError, match="never has status"):
        sim.add_job(env["id"], status="EXPORTING", job_type="DELETE")
    with pytest.raises(ValueError, match="is COMPLETED now"):
        sim.add_job(env["id"], status="EXPORTING", created_at=clock.now() - timedelta(days=1))
    sim.add_job(env["id"], status="QUEUED")
    with pytest.raises(ValueError, match="active job"):
        sim.add_job(env["id"], status="NEW")


def test_manual_clock_moves_only_forward(clock: ManualClock) -> None:
    start = clock.now()
    assert clock.advance(90) == start + timedelta(seconds=90)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(start)


async def test_system_clock_runs_at_its_speed() -> None:
    clock = SystemClock(speed=1000)
    before = clock.now()
    await asyncio.sleep(0.05)
    assert clock.now() - before >= timedelta(seconds=40)


# --- stage speed: stages shorter, times real ------------------------------------------------------

SPEED = 20.0
REFRESH_SECONDS = SECONDS_TO_RESETTING + 600 + 2400 + 300  # a whole refresh at speed 1


@pytest.fixture
async def fast_api(clock: ManualClock) -> AsyncIterator[tuple[ZuoraSimulator, httpx.AsyncClient]]:
    """A simulator whose job stages run 20 times faster than Zuora's, on the test's clock."""
    fast = ZuoraSimulator(clock=clock, speed=SPEED)
    async with fast, httpx.AsyncClient(base_url=fast.base_url, timeout=5) as client:
        token = (await fetch_token(client)).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield fast, client


async def test_at_a_speed_a_refresh_runs_its_stages_faster_on_the_real_clock(
    fast_api: tuple[ZuoraSimulator, httpx.AsyncClient], clock: ManualClock
) -> None:
    _, api = fast_api
    asked = clock.now()
    created = (await start_refresh(api, ENV_QA)).json()
    assert parse_time(created["createTime"]) == asked  # the clock's time, not a faster one
    location = job_path(ENV_QA, created["id"])
    clock.advance(SECONDS_TO_RESETTING / SPEED - 1)
    assert (await api.get(location)).json()["status"] == "SCRUBBING"
    clock.advance(1)
    assert (await api.get(location)).json()["status"] == "RESETTING"
    clock.advance((REFRESH_SECONDS - SECONDS_TO_RESETTING) / SPEED)
    done = conform((await api.get(location)).json(), JOB_RESPONSE)
    assert done["status"] == "COMPLETED"
    ended = asked + timedelta(seconds=REFRESH_SECONDS / SPEED)  # 5 min 46.5 s later
    assert parse_time(done["jobEndTime"]) == ended.replace(microsecond=0)  # whole seconds
    assert parse_time(done["jobEndTime"]) <= clock.now()


async def test_at_a_speed_a_cancel_is_faster_and_a_schedule_still_waits(
    fast_api: tuple[ZuoraSimulator, httpx.AsyncClient], clock: ManualClock
) -> None:
    sim, api = fast_api
    assert (await cancel(api, ENV_STAGING, JOB_CANCELLABLE)).json()["status"] == "CANCELLING"
    clock.advance(60 / SPEED)
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "CANCELLED"

    at = clock.now() + timedelta(hours=1)
    scheduled = (await start_refresh(api, ENV_QA, scheduledRefreshTime=at.isoformat())).json()
    clock.advance(3600 - 1)
    assert sim.job(ENV_QA, scheduled["id"])["status"] == "SCHEDULED"
    clock.advance(1 + 30 / SPEED)  # its time, then NEW at that speed
    assert sim.job(ENV_QA, scheduled["id"])["status"] == "QUEUED"


def test_at_a_speed_seeded_and_added_jobs_are_where_their_status_says(clock: ManualClock) -> None:
    sim = ZuoraSimulator(clock=clock, speed=SPEED)
    now = clock.now()
    cancellable = sim.job(ENV_STAGING, JOB_CANCELLABLE)
    # A minute of Zuora's into EXPORTING: created 16.5 + 3 real seconds ago (shown in whole seconds).
    assert parse_time(cancellable["createTime"]) == now - timedelta(seconds=20)
    env = sim.add_environment()
    importing = sim.add_job(env["id"], status="IMPORTING")
    assert (
        now - timedelta(seconds=REFRESH_SECONDS / SPEED) < parse_time(importing["createTime"]) < now
    )
    clock.advance((SECONDS_TO_RESETTING - 390) / SPEED - 1)  # 54 of Zuora's minutes, less a second
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "SCRUBBING"
    clock.advance(1)
    assert sim.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "RESETTING"


def test_speed_must_be_positive(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="positive"):
        ZuoraSimulator(clock=clock, speed=0)


# --- the reseeder: a demo that stays alive ----------------------------------------------------------


def reseeder(clock: ManualClock, interval: float = 120) -> tuple[ZuoraSimulator, Reseeder]:
    sim = ZuoraSimulator(clock=clock, speed=SPEED)
    return sim, Reseeder(sim.state, [ENV_STAGING, ENV_UAT, ENV_QA, ENV_DEV], interval=interval)


def test_a_refresh_is_started_every_interval_on_the_next_free_environment(
    clock: ManualClock,
) -> None:
    sim, seeder = reseeder(clock)
    assert seeder.seed_round() is None  # the seeded job can be cancelled and none is due
    clock.advance(119)
    assert seeder.seed_round() is None
    clock.advance(1)
    # staging has its running job; uat's import has ended by now (6 minutes at this speed)
    first = seeder.seed_round()
    assert first is not None and first.env_id == ENV_UAT
    job = conform(sim.job(ENV_UAT, first.id), JOB_RESPONSE)
    assert (job["status"], parse_time(job["createTime"])) == ("NEW", clock.now())
    assert job["createdById"] == SUPPORT_USER_ID
    assert seeder.seed_round() is None  # the next one is due an interval later
    clock.advance(120)
    second = seeder.seed_round()
    assert second is not None and second.env_id == ENV_QA  # uat is busy, the rotation goes on
    clock.advance(120)
    third = seeder.seed_round()
    assert third is not None and third.env_id == ENV_DEV  # support is not held to the 14 days
    assert [j.id for j in seeder.cancellable()][:2] == [third.id, second.id]  # newest first


def test_a_refresh_is_started_at_once_when_nothing_can_be_cancelled(clock: ManualClock) -> None:
    sim, seeder = reseeder(clock)
    sim.state.cancel(ENV_STAGING, JOB_CANCELLABLE, "U0SOMEONE")
    job = seeder.seed_round()
    assert job is not None and job.env_id == ENV_QA  # staging cancelling, uat importing
    assert seeder.seed_round() is None


def test_no_refresh_while_every_environment_is_busy(clock: ManualClock) -> None:
    sim, seeder = reseeder(clock)
    sim.state.cancel(ENV_STAGING, JOB_CANCELLABLE, "U0SOMEONE")
    for env_id in (ENV_QA, ENV_DEV):
        sim.add_job(env_id, status="IMPORTING")
    assert seeder.seed_round() is None  # all four have an active job
    clock.advance(3)  # the cancel ends at this speed
    job = seeder.seed_round()
    assert job is not None and job.env_id == ENV_STAGING


async def test_the_reseeders_refreshes_leave_the_refresh_period_to_the_user(
    clock: ManualClock,
) -> None:
    sim, seeder = reseeder(clock)
    sim.state.cancel(ENV_STAGING, JOB_CANCELLABLE, "U0SOMEONE")
    job = seeder.seed_round()
    assert job is not None and job.env_id == ENV_QA
    clock.advance(REFRESH_SECONDS / SPEED)
    assert sim.job(ENV_QA, job.id)["status"] == "COMPLETED"
    env = sim.environment(ENV_QA)
    assert parse_time(env["lastRefreshTime"]) < clock.now() - timedelta(days=30)
    assert sim.state.create_refresh(ENV_QA, None, "U0USER").job_type == "REFRESH"


def test_the_reseeder_keeps_only_its_newest_ended_refreshes(clock: ManualClock) -> None:
    sim, seeder = reseeder(clock, interval=1)
    seeder.env_ids = [ENV_QA]
    sim.state.cancel(ENV_STAGING, JOB_CANCELLABLE, "U0SOMEONE")
    started = []
    for _ in range(KEEP_ENDED + 5):
        job = seeder.seed_round()
        assert job is not None
        started.append(job.id)
        clock.advance(REFRESH_SECONDS / SPEED)  # it ends before the next round
    jobs = sim.state.environment(ENV_QA).jobs
    assert JOB_COMPLETED in jobs  # the seeded history stays
    kept = [job_id for job_id in started if job_id in jobs]
    assert kept == started[-(KEEP_ENDED + 1) :]  # the newest ended ones, and the last one started


def test_the_reseeder_keeps_one_refresh_scheduled_ahead_on_its_own_environment(
    clock: ManualClock,
) -> None:
    sim = ZuoraSimulator(clock=clock, speed=SPEED)
    add_training_environment(sim.state)
    seeder = Reseeder(
        sim.state,
        [ENV_STAGING, ENV_UAT, ENV_QA, ENV_DEV],
        interval=120,
        schedule_on=ENV_TRAINING,
        schedule_ahead=150,
    )
    first = seeder.keep_scheduled()
    assert first is not None and first.env_id == ENV_TRAINING
    job = conform(sim.job(ENV_TRAINING, first.id), JOB_RESPONSE)
    assert job["status"] == "SCHEDULED"
    assert parse_time(job["scheduledRefreshTime"]) == clock.now() + timedelta(seconds=150)
    assert seeder.keep_scheduled() is None  # one at a time
    assert first not in seeder.cancellable()  # the rotation's running jobs are the ones to cancel
    clock.advance(150)
    assert sim.job(ENV_TRAINING, first.id)["status"] == "QUEUED"
    assert seeder.keep_scheduled() is None  # it runs: the next one waits for its end
    clock.advance(REFRESH_SECONDS / SPEED)
    assert sim.job(ENV_TRAINING, first.id)["status"] == "COMPLETED"
    second = seeder.keep_scheduled()
    assert second is not None and second.scheduled_time == clock.now() + timedelta(seconds=150)
    sim.state.cancel(ENV_TRAINING, second.id, "U0SOMEONE")
    clock.advance(60)
    assert seeder.keep_scheduled() is not None  # a cancelled one is replaced too
    # Outside the refresh period's rule, as the rotation's: the user may still refresh training.
    assert sim.state.next_refresh_time(sim.state.environment(ENV_TRAINING)) < clock.now()


def test_the_reseeder_refuses_a_scheduled_environment_in_its_rotation(clock: ManualClock) -> None:
    sim = ZuoraSimulator(clock=clock)
    with pytest.raises(ValueError, match="rotation"):
        Reseeder(sim.state, [ENV_QA], interval=1, schedule_on=ENV_QA)


# --- command line --------------------------------------------------------------------------------------


async def test_cli_serves_until_terminated() -> None:
    client_id = "8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.sim.zuora",
        "--port",
        "0",
        "--client-id",
        client_id,
        "--client-secret",
        "cli-secret",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=15)).decode()
        match = re.fullmatch(r"Zuora simulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        async with httpx.AsyncClient(base_url=match.group(1), timeout=5) as client:
            refused = await fetch_token(client, client_id=client_id)
            assert refused.status_code == 401
            token = await fetch_token(client, client_id=client_id, client_secret="cli-secret")
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            envs = (await client.get("/test-environments", headers=headers)).json()
            assert {e["id"] for e in envs["result"]} == {ENV_STAGING, ENV_UAT, ENV_QA, ENV_DEV}
    finally:
        if proc.returncode is None:
            proc.terminate()
        returncode = await asyncio.wait_for(proc.wait(), timeout=10)
    assert returncode == 0


def test_every_fault_kind_has_a_row_in_the_end_to_end_fault_matrix() -> None:
    """A fault the simulator learns to inject is tried on the bot too (tests/test_e2e_faults.py)."""
    from typing import get_args

    from bot.sim.zuora import FaultKind
    from tests.test_e2e_faults import ZUORA_FAULTS

    covered = {fault for fault, *_ in ZUORA_FAULTS} | {
        "latency"
    }  # latency: test_e2e_cancel's timeout
    assert covered == set(get_args(FaultKind))
