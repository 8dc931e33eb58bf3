"""The use cases on their own: a fake Zuora client and fake permissions, no sockets, milliseconds per rule."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot import blocks
from bot.commands import SUBCOMMAND_DEFINITIONS, EnvRef, encode_job_value
from bot.operations import Click, Operations, missing_handlers
from bot.outcomes import (
    JobActed,
    JobLooked,
    NeedsConfirmation,
    Refused,
    Told,
    ZuoraFailed,
    metric_of,
)
from bot.permissions import Grantors, Standing
from bot.zuora.errors import Reason, ZuoraRejectedError, ZuoraServerError
from bot.zuora.models import Job, TestEnvironment

ENV = "c0ffee00000000000000000000000001"
JOB = "8a8aa1d1-46b3-4c0b-9bcd-0e1c1b5d3b2a"
OPERATOR = "U0OPERATOR"
OUTSIDER = "U0OUTSIDER"
VIEWER = "U0VIEWER01"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeZuora:
    """Records every call; answers with `answer` (a Job, or an exception to raise). `hold`, when set, keeps
    calls waiting until it is set again (to stage two submits at once).

    `get_test_environment` answers with `environment` (or raises it) and is recorded in `environment_reads`
    only, so `calls` keeps what was asked of the jobs (a refresh's confirmation reads the environment)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.listed: (
            list[Job] | None
        ) = []  # what list_jobs shows ([]: one running job; None: `answer`)
        self.answer: Job | Exception = Job(id=JOB, status="CANCELLING", jobType="REFRESH")
        self.hold: asyncio.Event | None = None
        # A Central Sandbox last refreshed 40 days before NOW: a refresh is possible.
        self.environment: TestEnvironment | Exception = TestEnvironment(
            id=ENV,
            environmentType="TEST",
            lastRefreshTime=NOW - timedelta(days=40),
            nextRefreshTime=NOW - timedelta(days=12),
        )
        self.environment_reads: list[str] = []

    async def _answer(self, name: str, *args: Any) -> Any:
        self.calls.append((name, args))
        if self.hold is not None:
            await self.hold.wait()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def cancel_job(self, env_id: str, job_id: str, *, track_id: str) -> Job:
        return await self._answer("cancel", env_id, job_id)

    async def get_job(self, env_id: str, job_id: str, *, track_id: str) -> Job:
        return await self._answer("get", env_id, job_id)

    async def list_jobs(self, env_id: str, *, track_id: str) -> list[Job]:
        self.calls.append(("list", (env_id,)))
        if self.listed is None:
            await self._answer("list-failed", env_id)
        return self.listed or [Job(id=JOB, status="EXPORTING")]

    async def list_test_environments(self, *, track_id: str) -> list[TestEnvironment]:
        await self._answer("envs")
        return []

    async def get_test_environment(self, env_id: str, *, track_id: str) -> TestEnvironment:
        self.environment_reads.append(env_id)
        if isinstance(self.environment, Exception):
            raise self.environment
        return self.environment

    async def create_refresh_job(
        self, env_id: str, *, scheduled_at: datetime | None, track_id: str
    ) -> Job:
        return await self._answer("create", env_id, scheduled_at)


class FakePermissions:
    def __init__(self) -> None:
        self.grantors = Grantors(users=(OPERATOR,), groups=("S0PLATFORM",))

    async def standing(self, user_id: str) -> Standing:
        if user_id == OPERATOR:
            return Standing("operator", "listed", "user")
        if user_id == VIEWER:
            return Standing("viewer", "listed as a viewer", "user")
        return Standing(None, "You are not on the list.")


async def confirmation(ops: Operations, text: str = "refresh staging") -> Click:
    """The confirm button of a refresh asked for by the operator, as a click of theirs."""
    asked = await ops.command(OPERATOR, text)
    assert isinstance(asked, NeedsConfirmation)
    (actions,) = [b for b in asked.message.blocks if b["type"] == "actions"]
    confirm = actions["elements"][0]
    return Click(OPERATOR, confirm["value"], actions["block_id"])


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def zuora() -> FakeZuora:
    return FakeZuora()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ops(zuora: FakeZuora, clock: Clock) -> Operations:
    return Operations(
        zuora=zuora,  # type: ignore[arg-type]
        permissions=FakePermissions(),  # type: ignore[arg-type]
        aliases={"staging": ENV},
        now=clock,
    )


def test_every_subcommand_has_a_handler() -> None:
    assert missing_handlers() == []
    assert list(SUBCOMMAND_DEFINITIONS) == ["help", "envs", "jobs", "status", "cancel", "refresh"]


async def test_an_operator_cancel_is_an_action_on_the_job(
    ops: Operations, zuora: FakeZuora
) -> None:
    outcome = await ops.command(OPERATOR, f"cancel staging {JOB}")
    assert isinstance(outcome, JobActed)
    assert (outcome.env, outcome.actor, outcome.verb) == (
        EnvRef(ENV, "staging"),
        OPERATOR,
        "cancelled",
    )
    assert outcome.job.id == JOB and outcome.track_id.startswith("sandbox-bot-")
    assert zuora.calls == [("cancel", (ENV, JOB))]


@pytest.mark.parametrize(
    "text",
    [f"cancel staging {JOB}", f"status staging {JOB}", "jobs staging", "envs", "refresh staging"],
)
async def test_an_outsider_is_refused_before_zuora(
    ops: Operations, zuora: FakeZuora, text: str
) -> None:
    outcome = await ops.command(OUTSIDER, text)
    assert isinstance(outcome, Refused) and metric_of(outcome) == "refused"
    assert blocks.PERMISSION in outcome.message.blocks[0]["text"]["text"]
    assert zuora.calls == [] and zuora.environment_reads == []


async def test_a_refusal_says_whom_to_ask(ops: Operations) -> None:
    outcome = await ops.command(OUTSIDER, f"cancel staging {JOB}")
    assert isinstance(outcome, Refused)
    assert outcome.message.blocks[0]["text"]["text"].endswith(
        "You are not on the list.\n"
        f"To get it, ask <@{OPERATOR}> or a member of <!subteam^S0PLATFORM>."
    )
    helped = await ops.command(OUTSIDER, "help")
    assert isinstance(helped, Told)
    assert helped.message.blocks[0]["text"]["text"].endswith(
        f"To get it, ask <@{OPERATOR}> or a member of <!subteam^S0PLATFORM>."
    )


# -- viewers: they look, they do not act ------------------------------------------------------------------------


def texts(message: blocks.Message) -> str:
    return json.dumps(message.blocks)


async def test_a_viewer_may_look_without_buttons_that_act(
    ops: Operations, zuora: FakeZuora
) -> None:
    zuora.answer = Job(id=JOB, status="QUEUED", jobType="REFRESH")
    looked = await ops.command(VIEWER, f"status staging {JOB}")
    assert isinstance(looked, JobLooked) and looked.may_act is False
    listed = await ops.command(VIEWER, "jobs staging")
    assert isinstance(listed, Told) and blocks.ACTION_CANCEL_JOB not in texts(listed.message)
    assert blocks.ACTION_JOB_STATUS in texts(listed.message)
    as_operator = await ops.command(OPERATOR, "jobs staging")
    assert isinstance(as_operator, Told) and blocks.ACTION_CANCEL_JOB in texts(as_operator.message)
    operator_look = await ops.command(OPERATOR, f"status staging {JOB}")
    assert isinstance(operator_look, JobLooked) and operator_look.may_act is True


@pytest.mark.parametrize("text", [f"cancel staging {JOB}", "refresh staging"])
async def test_a_viewer_who_acts_is_refused_before_zuora(
    ops: Operations, zuora: FakeZuora, text: str
) -> None:
    outcome = await ops.command(VIEWER, text)
    assert isinstance(outcome, Refused)
    shown = outcome.message.blocks[0]["text"]["text"]
    assert blocks.PERMISSION in shown and "You are a viewer" in shown
    assert zuora.calls == [] and zuora.environment_reads == []


async def test_a_viewer_clicking_cancel_or_confirm_is_refused_and_zuora_not_called(
    ops: Operations, zuora: FakeZuora
) -> None:
    value = encode_job_value(ENV, JOB)
    assert isinstance(await ops.click_cancel(Click(VIEWER, value)), Refused)
    confirm = await confirmation(ops)
    stolen = Click(VIEWER, confirm.value, confirm.block_id.replace(OPERATOR, VIEWER))
    assert isinstance(await ops.click_refresh_confirm(stolen), Refused)
    assert zuora.calls == []
    zuora.answer = Job(id=JOB, status="QUEUED", jobType="REFRESH")
    looked = await ops.click_status(Click(VIEWER, value))
    assert isinstance(looked, JobLooked) and looked.may_act is False


async def test_help_lists_what_the_role_allows(ops: Operations) -> None:
    def usage_of(outcome: object) -> str:
        assert isinstance(outcome, Told)
        return outcome.message.blocks[0]["text"]["text"]

    operator, viewer = (
        usage_of(await ops.command(OPERATOR, "help")),
        usage_of(await ops.command(VIEWER, "help")),
    )
    for line in ("/sandbox cancel", "/sandbox refresh"):
        assert line in operator and line not in viewer
    for line in ("/sandbox status", "/sandbox jobs", "/sandbox envs"):
        assert line in operator and line in viewer
    assert "/sandbox status" not in usage_of(await ops.command(OUTSIDER, "help"))


async def test_help_is_open_to_everyone_and_calls_nothing(
    ops: Operations, zuora: FakeZuora
) -> None:
    outcome = await ops.command(OUTSIDER, "help")
    assert isinstance(outcome, Told) and metric_of(outcome) == "ok"
    assert zuora.calls == []


async def test_bad_input_is_a_usage_answer(ops: Operations, zuora: FakeZuora) -> None:
    outcome = await ops.command(OPERATOR, "cancel staging not/an/id")
    assert isinstance(outcome, Told) and outcome.metric == "usage"
    assert zuora.calls == []


async def test_a_zuora_refusal_is_reported_with_an_audit_line(
    ops: Operations, zuora: FakeZuora
) -> None:
    zuora.answer = ZuoraRejectedError(
        operation="performActionOfJob",
        status=400,
        reasons=(Reason("53100020", "Cannot cancel in RESETTING"),),
        track_id="sandbox-bot-t1",
    )
    outcome = await ops.command(OPERATOR, f"cancel staging {JOB}")
    assert isinstance(outcome, ZuoraFailed) and outcome.audit is not None
    assert "reset stage" in str(outcome.message.blocks) and "sandbox-bot-t1" in str(
        outcome.message.blocks
    )
    assert outcome.audit.job_id == JOB
    assert f"<@{OPERATOR}>" in str(outcome.audit.message.blocks)


async def test_a_second_cancel_while_the_first_is_on_its_way_is_not_sent(
    ops: Operations, zuora: FakeZuora
) -> None:
    zuora.hold = asyncio.Event()
    first = asyncio.ensure_future(ops.command(OPERATOR, f"cancel staging {JOB}"))
    while not zuora.calls:
        await asyncio.sleep(0)
    second = await ops.command(OPERATOR, f"cancel staging {JOB}")
    zuora.hold.set()
    assert isinstance(second, Told) and second.metric == "duplicate"
    assert isinstance(await first, JobActed)
    assert len(zuora.calls) == 1


async def test_refresh_asks_first_then_starts_exactly_once(
    ops: Operations, zuora: FakeZuora
) -> None:
    asked = await ops.command(OPERATOR, "refresh staging")
    assert isinstance(asked, NeedsConfirmation)
    assert zuora.calls == [] and zuora.environment_reads == [ENV]  # read, nothing asked of it
    zuora.answer = Job(id="j-new", status="QUEUED", jobType="REFRESH")
    click = await confirmation(ops)
    started = await ops.click_refresh_confirm(click)
    again = await ops.click_refresh_confirm(click)
    assert isinstance(started, JobActed) and started.verb == "started" and started.done is not None
    assert isinstance(again, Told) and again.metric == "duplicate"
    assert zuora.calls == [("create", (ENV, None))]


async def test_only_the_requester_confirms_and_only_within_ten_minutes(
    ops: Operations, zuora: FakeZuora, clock: Clock
) -> None:
    mine = await confirmation(ops)
    value, block_id = mine.value, mine.block_id
    other = await ops.click_refresh_confirm(Click(OUTSIDER, value, block_id))
    assert isinstance(other, Told) and other.metric == "refused"
    clock.now = NOW + timedelta(minutes=11)
    late = await ops.click_refresh_confirm(Click(OPERATOR, value, block_id))
    assert isinstance(late, Told) and (late.metric, late.replace) == ("expired", True)
    assert zuora.calls == []


async def test_a_refresh_that_may_have_started_keeps_its_confirmation_used(
    ops: Operations, zuora: FakeZuora
) -> None:
    zuora.answer = ZuoraServerError(operation="createJobOfTestEnvironment", status=500)
    click = await confirmation(ops)
    failed = await ops.click_refresh_confirm(click)
    assert isinstance(failed, ZuoraFailed) and "may have started" in str(failed.message.blocks)
    again = await ops.click_refresh_confirm(click)
    assert isinstance(again, Told) and again.metric == "duplicate"
    assert [name for name, _ in zuora.calls if name == "create"] == ["create"]


async def test_a_refresh_whose_answer_was_lost_but_started_is_reported_as_started(
    ops: Operations, zuora: FakeZuora
) -> None:
    zuora.answer = ZuoraServerError(operation="createJobOfTestEnvironment", status=502)
    zuora.listed = [
        Job(id="j-old", status="COMPLETED", createTime=NOW - timedelta(days=40)),
        Job(id="j-new", status="QUEUED", jobType="REFRESH", createTime=NOW),
    ]
    outcome = await ops.click_refresh_confirm(await confirmation(ops))
    assert isinstance(outcome, JobActed) and outcome.job.id == "j-new" and outcome.verb == "started"
    assert [name for name, _ in zuora.calls] == ["create", "list"]  # read back, never created again


async def test_refresh_status_keeps_who_asked_from_the_block_the_bot_set(
    ops: Operations, zuora: FakeZuora
) -> None:
    zuora.answer = Job(id=JOB, status="EXPORTING")
    value = encode_job_value(ENV, JOB)
    outcome = await ops.click_status(Click(OPERATOR, value, blocks.job_block_id(JOB, "U0ASKER")))
    assert isinstance(outcome, JobLooked) and outcome.requested_by == "U0ASKER"
    forged = await ops.click_status(Click(OPERATOR, value, f"job:{JOB}:<!channel>"))
    assert isinstance(forged, JobLooked) and forged.requested_by is None


async def test_a_tampered_button_never_reaches_zuora(ops: Operations, zuora: FakeZuora) -> None:
    outcome = await ops.click_cancel(Click(OPERATOR, '{"env": "x/../y", "job": "1"}'))
    assert isinstance(outcome, Told) and outcome.metric == "usage"
    assert zuora.calls == []


async def test_two_confirmations_asked_in_the_same_second_stay_distinct(
    ops: Operations, zuora: FakeZuora
) -> None:
    first, second = (
        await confirmation(ops),
        await confirmation(ops, "refresh staging at 2030-02-01T00:00Z"),
    )
    assert first.block_id != second.block_id
    zuora.answer = Job(id="j-new", status="QUEUED", jobType="REFRESH")
    assert isinstance(await ops.click_refresh_confirm(first), JobActed)
    assert isinstance(await ops.click_refresh_confirm(second), JobActed)
    assert [name for name, _ in zuora.calls] == ["create", "create"]


def test_the_authorisation_matrix_covers_every_subcommand_and_every_action() -> None:
    from tests.test_e2e_authorisation import BUTTONS, TYPED

    needing_a_role = {n for n, d in SUBCOMMAND_DEFINITIONS.items() if d.role != "anyone"}
    assert set(TYPED) == needing_a_role
    from bot import blocks

    actions = {v for k, v in vars(blocks).items() if k.startswith("ACTION_")}
    assert set(BUTTONS) | {"sandbox_refresh_abort"} == actions  # abort never calls Zuora


# -- refresh: the confirmation tells the truth before the click ------------------------------------------------


def shown(outcome: object) -> str:
    assert isinstance(outcome, Told | NeedsConfirmation)
    return json.dumps(outcome.message.blocks)


def buttons(outcome: Told | NeedsConfirmation) -> list[str]:
    return [
        element["text"]["text"]
        for block in outcome.message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def too_soon(zuora: FakeZuora, possible_from: datetime) -> None:
    zuora.environment = TestEnvironment(
        id=ENV,
        environmentType="DEVELOPER",
        lastRefreshTime=possible_from - timedelta(days=14),
        nextRefreshTime=possible_from,
    )


async def test_refresh_confirmation_names_this_environments_type_and_limit(
    ops: Operations, zuora: FakeZuora
) -> None:
    asked = await ops.command(OPERATOR, "refresh staging")
    assert isinstance(asked, NeedsConfirmation)
    assert "This is a *Central Sandbox*: Zuora allows one refresh every *28 days*." in shown(asked)
    assert buttons(asked) == ["Refresh now", "Don't refresh"]


async def test_refresh_confirmation_for_an_environment_zuora_will_refuse_shows_the_date_and_no_refresh_now(
    ops: Operations, zuora: FakeZuora
) -> None:
    possible = NOW + timedelta(days=11)
    too_soon(zuora, possible)
    told = await ops.command(OPERATOR, "refresh staging")
    assert isinstance(told, Told) and not told.replace
    assert buttons(told) == []  # no Refresh now, nothing to confirm
    assert "will not refresh" in shown(told) and blocks.slack_date(possible) in shown(told)
    assert "*Developer Sandbox*" in shown(told) and "*14 days*" in shown(told)
    assert zuora.calls == []


@pytest.mark.parametrize("after", [timedelta(0), timedelta(seconds=1), timedelta(days=3)])
async def test_a_refresh_scheduled_from_the_next_possible_time_on_is_still_offered(
    ops: Operations, zuora: FakeZuora, after: timedelta
) -> None:
    possible = NOW + timedelta(days=11)
    too_soon(zuora, possible)
    at = possible + after
    asked = await ops.command(OPERATOR, f"refresh staging at {at:%Y-%m-%dT%H:%M:%SZ}")
    assert isinstance(asked, NeedsConfirmation)
    assert buttons(asked) == ["Schedule refresh", "Don't refresh"]
    assert f"next refresh possible {blocks.slack_date(possible)}" in shown(asked)
    zuora.answer = Job(id="j-new", status="SCHEDULED", jobType="REFRESH")
    (actions,) = [b for b in asked.message.blocks if b["type"] == "actions"]
    click = Click(OPERATOR, actions["elements"][0]["value"], actions["block_id"])
    assert isinstance(await ops.click_refresh_confirm(click), JobActed)
    assert zuora.calls == [("create", (ENV, at))]


async def test_a_refresh_scheduled_before_the_next_possible_time_says_when_and_offers_nothing(
    ops: Operations, zuora: FakeZuora
) -> None:
    possible = NOW + timedelta(days=11)
    too_soon(zuora, possible)
    at = possible - timedelta(seconds=1)
    told = await ops.command(OPERATOR, f"refresh staging at {at:%Y-%m-%dT%H:%M:%SZ}")
    assert isinstance(told, Told)
    assert buttons(told) == []
    assert f"at {blocks.slack_date(at)}" in shown(told)
    assert f"next refresh possible {blocks.slack_date(possible)}" in shown(told)
    assert zuora.calls == []


async def test_a_refresh_possible_since_a_moment_ago_is_offered(
    ops: Operations, zuora: FakeZuora
) -> None:
    too_soon(zuora, NOW)
    asked = await ops.command(OPERATOR, "refresh staging")
    assert isinstance(asked, NeedsConfirmation) and buttons(asked)[0] == "Refresh now"


async def test_an_environment_never_refreshed_is_offered(ops: Operations, zuora: FakeZuora) -> None:
    zuora.environment = TestEnvironment(id=ENV, environmentType="TEST")
    asked = await ops.command(OPERATOR, "refresh staging")
    assert isinstance(asked, NeedsConfirmation) and buttons(asked)[0] == "Refresh now"


async def test_when_zuora_cannot_be_read_the_generic_confirmation_says_the_limit_was_not_checked(
    ops: Operations, zuora: FakeZuora
) -> None:
    zuora.environment = ZuoraServerError(
        operation="getTestEnvironment", status=500, track_id="sandbox-bot-t2"
    )
    asked = await ops.command(OPERATOR, "refresh staging")
    assert isinstance(asked, NeedsConfirmation)
    assert buttons(asked) == ["Refresh now", "Don't refresh"]  # the user is not held up
    assert "every *28 days* for a Central Sandbox (14 for a Developer Sandbox)" in shown(asked)
    assert "could not check its type and when its next refresh is possible" in shown(asked)
    assert "HTTP 500" in shown(asked)
    zuora.answer = Job(id="j-new", status="QUEUED", jobType="REFRESH")
    (actions,) = [b for b in asked.message.blocks if b["type"] == "actions"]
    click = Click(OPERATOR, actions["elements"][0]["value"], actions["block_id"])
    assert isinstance(await ops.click_refresh_confirm(click), JobActed)
