"""`sandbox-bot check [--online]`: exit 0 with the configuration shown (secrets masked), or 2 with every
problem; `--online` against the Zuora simulator and the Slack emulator over loopback."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bot.__main__ import main
from bot.config import DEFAULT_HOST, ZUORA_PRODUCTION_HOSTS, Settings, load_settings
from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from tests.conftest import (
    APP_TOKEN,
    BOT_TOKEN,
    SECRETS,
    SIGNING_SECRET,
    ZUORA_CLIENT_ID,
    ZUORA_CLIENT_SECRET,
    bot_settings,
)
from tests.e2e import free_port

ENV_ID = "c0ffee00000000000000000000000001"
WRONG_ZUORA_SECRET = "zuora-secret-that-is-wrong-42"
WRONG_BOT_TOKEN = "xoxb-0000-wrong-bot-token-1234"
ALL_SECRETS = (*SECRETS, ZUORA_CLIENT_ID, WRONG_ZUORA_SECRET, WRONG_BOT_TOKEN)

# Every configuration variable the bot documents.
VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "PORT",
    "HOST",
    "ZUORA_BASE_URL",
    "ZUORA_CLIENT_ID",
    "ZUORA_CLIENT_SECRET",
    "ZUORA_ENTITY_ID",
    "ZUORA_TIMEOUT_SECONDS",
    "ZUORA_GZIP_REQUESTS",
    "SANDBOX_ALLOWED_USERS",
    "SANDBOX_ALLOWED_USERGROUPS",
    "SANDBOX_ACCESS_HELP",
    "SANDBOX_ENVIRONMENTS",
    "SANDBOX_NOTIFY_CHANNEL",
    "SANDBOX_POLL_SECONDS",
    "SANDBOX_WATCH_ENVIRONMENTS",
    "SANDBOX_WATCH_SECONDS",
    "LOG_LEVEL",
    "LOG_FORMAT",
)


@pytest.fixture(autouse=True)
def _empty_workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOST", raising=False)


def configure_env(
    monkeypatch: pytest.MonkeyPatch,
    *,
    zuora_url: str = "https://rest.zuora.com",
    slack_url: str = "https://slack.com/api/",
    **changes: str | None,
) -> None:
    values: dict[str, str | None] = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_url,
        "ZUORA_BASE_URL": zuora_url,
        "ZUORA_CLIENT_ID": ZUORA_CLIENT_ID,
        "ZUORA_CLIENT_SECRET": ZUORA_CLIENT_SECRET,
        "ZUORA_TIMEOUT_SECONDS": "5",
        "SANDBOX_ALLOWED_USERS": "U0ALLOWED1",
        "SANDBOX_ENVIRONMENTS": f"staging={ENV_ID}",
    }
    values.update(changes)
    for name, value in values.items():
        if value is not None:
            monkeypatch.setenv(name, value)


def assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        for secret in ALL_SECRETS:
            assert secret not in output


VALID = "sandbox-bot: configuration is valid."


def problem_lines(err: str) -> list[str]:
    return [line.removeprefix("  - ") for line in err.splitlines() if line.startswith("  - ")]


def assert_not_called_valid(out: str, err: str) -> None:
    assert "configuration is valid" not in out + err


# -- offline --------------------------------------------------------------------------------------------------


def test_check_prints_the_configuration_masked_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_env(monkeypatch, SLACK_APP_TOKEN=APP_TOKEN)
    assert main(["check"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == VALID  # the verdict comes last, once everything was checked
    assert "mode: Socket Mode" in out
    for variable in VARIABLES:
        assert variable in out
    assert f"xoxb-*** (set, {len(BOT_TOKEN)} characters)" in out
    assert f"staging={ENV_ID}" in out
    assert "no allowlist" not in out
    assert err == ""
    assert_no_secret(out, err)


def test_check_in_http_mode_notes_a_missing_allowlist(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_env(monkeypatch, PORT="8080")
    monkeypatch.delenv("SANDBOX_ALLOWED_USERS")
    assert main(["check"]) == 0
    out, _ = capsys.readouterr()
    assert "mode: HTTP on port 8080" in out
    assert "no allowlist is set" in out


def test_check_reads_dotenv(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(f"ZUORA_CLIENT_SECRET={ZUORA_CLIENT_SECRET}\nPORT=3999\n")
    configure_env(monkeypatch, ZUORA_CLIENT_SECRET=None)
    assert main(["check"]) == 0
    out, _ = capsys.readouterr()
    assert "HTTP on port 3999" in out
    assert_no_secret(out)


def test_check_prints_every_problem_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_env(
        monkeypatch,
        zuora_url="http://rest.zuora.com",
        ZUORA_CLIENT_SECRET=None,
        SANDBOX_ALLOWED_USERS=f"U0ALLOWED1,{WRONG_ZUORA_SECRET}",  # a secret pasted in the wrong place
        LOG_LEVEL=SIGNING_SECRET,
    )
    assert main(["check"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_not_called_valid(out, err)
    problems = [line.strip() for line in err.splitlines() if line.startswith("  - ")]
    assert [p.removeprefix("- ").split(":", 1)[0] for p in problems] == [
        "ZUORA_BASE_URL",
        "ZUORA_CLIENT_SECRET",
        "SANDBOX_ALLOWED_USERS",
        "LOG_LEVEL",
    ]
    assert_no_secret(out, err)


@pytest.mark.parametrize(
    "url",
    [
        "https://rest.zuora.com/v1",
        "https://rest.eu.zuora.com/v1/",
        "https://rest.zuora.com/?entity=1",
        "https://rest.zuora.com#x",
    ],
)
def test_check_refuses_a_zuora_base_url_with_a_path_query_or_fragment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    configure_env(monkeypatch, zuora_url=url)
    assert main(["check"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    [problem] = problem_lines(err)
    assert problem.startswith("ZUORA_BASE_URL: must be the host only")
    assert "e.g. https://rest.zuora.com," in problem
    assert_not_called_valid(out, err)


def test_check_shows_the_bind_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_env(monkeypatch, HOST="127.0.0.1")
    assert main(["check"]) == 0
    out, _ = capsys.readouterr()
    [row] = [line.split() for line in out.splitlines() if line.split()[:1] == ["HOST"]]
    assert row == ["HOST", "127.0.0.1"]


def test_check_refuses_a_bad_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_env(monkeypatch, HOST="0.0.0.0:3000")
    assert main(["check"]) == 2
    out, err = capsys.readouterr()
    [problem] = problem_lines(err)
    assert problem.startswith("HOST: must be an IP address")
    assert_not_called_valid(out, err)


@pytest.mark.parametrize(
    ("host", "says"),
    [
        (
            "rest.apisandbox.zuora.com",
            "is a Zuora API Sandbox host, which has no test-environment operations",
        ),
        (
            "rest.sandbox.eu.zuora.com",
            "is a Zuora API Sandbox host, which has no test-environment operations",
        ),
        ("rest.test.zuora.com", "is a Central or Developer Sandbox host"),
        ("zuora.corp.example", "not a known Zuora production REST host"),
    ],
)
def test_check_warns_about_a_host_that_is_not_a_zuora_production_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], host: str, says: str
) -> None:
    """A warning, not an error: exit 0, and the verdict says there is one."""
    configure_env(monkeypatch, zuora_url=f"https://{host}")
    assert main(["check"]) == 0
    out, err = capsys.readouterr()
    [warning] = [line for line in err.splitlines() if line.strip()]
    assert warning.startswith("  warning: ZUORA_BASE_URL: ")
    assert says in warning
    for known in ZUORA_PRODUCTION_HOSTS:
        assert f"https://{known}" in warning
    assert out.splitlines()[-1] == "sandbox-bot: configuration is valid (1 warning above)."
    assert_no_secret(out, err)


@pytest.mark.parametrize("host", ZUORA_PRODUCTION_HOSTS)
def test_check_does_not_warn_about_production_hosts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    configure_env(monkeypatch, zuora_url=f"https://{host}/")
    assert main(["check"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[-1] == VALID


def test_check_makes_no_network_call_without_online(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    configure_env(monkeypatch, zuora_url=nowhere, slack_url=f"{nowhere}/api/")
    assert main(["check"]) == 0
    assert "online" not in capsys.readouterr().out


# -- online ---------------------------------------------------------------------------------------------------


async def test_online_check_passes_with_good_credentials(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    zuora: ZuoraSimulator,
    slack: SlackEmulator,
) -> None:
    configure_env(monkeypatch, zuora_url=zuora.base_url, slack_url=slack.api_url)
    assert await asyncio.to_thread(main, ["check", "--online"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[-2:] == [
        "  online: Slack auth.test and a Zuora token request both succeeded.",
        VALID,
    ]
    assert err == ""  # a loopback simulator gets no warning
    assert zuora.token_requests == 1
    assert len(slack.calls_to("auth.test")) == 1
    assert_no_secret(out, err)


async def test_online_check_fails_with_a_wrong_zuora_secret(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    zuora: ZuoraSimulator,
    slack: SlackEmulator,
) -> None:
    configure_env(
        monkeypatch,
        zuora_url=zuora.base_url,
        slack_url=slack.api_url,
        ZUORA_CLIENT_SECRET=WRONG_ZUORA_SECRET,
    )
    assert await asyncio.to_thread(main, ["check", "--online"]) == 2
    out, err = capsys.readouterr()
    [problem] = [line for line in err.splitlines() if line.startswith("  - ")]
    assert "ZUORA_CLIENT_SECRET" in problem
    assert "token request failed" in problem
    assert "online:" not in out
    assert_not_called_valid(out, err)
    assert "the online checks failed" in err
    assert zuora.token_requests == 1
    assert_no_secret(out, err)


async def test_online_check_fails_with_a_wrong_slack_token(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    zuora: ZuoraSimulator,
    slack: SlackEmulator,
) -> None:
    configure_env(
        monkeypatch,
        zuora_url=zuora.base_url,
        slack_url=slack.api_url,
        SLACK_BOT_TOKEN=WRONG_BOT_TOKEN,
    )
    assert await asyncio.to_thread(main, ["check", "--online"]) == 2
    out, err = capsys.readouterr()
    [problem] = [line for line in err.splitlines() if line.startswith("  - ")]
    assert problem == "  - SLACK_BOT_TOKEN: Slack auth.test failed (invalid_auth)"
    assert "online:" not in out
    assert_not_called_valid(out, err)
    assert_no_secret(out, err)


async def test_online_check_reports_unreachable_services(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    configure_env(monkeypatch, zuora_url=nowhere, slack_url=f"{nowhere}/api/")
    assert await asyncio.to_thread(main, ["check", "--online"]) == 2
    out, err = capsys.readouterr()
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert [p.removeprefix("  - ").split(":", 1)[0] for p in problems] == [
        "SLACK_API_URL",
        "ZUORA_CLIENT_ID/ZUORA_CLIENT_SECRET/ZUORA_BASE_URL",
    ]
    assert_not_called_valid(out, err)
    assert_no_secret(out, err)


# -- HOST: where the bot listens ------------------------------------------------------------------------------


async def answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` (any status), or the connection is refused."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
            http.get(url),
        ):
            return True
    except aiohttp.ClientConnectionError:
        return False


@pytest.mark.parametrize(("host", "on_other_loopback"), [("127.0.0.1", False), (None, True)])
async def test_the_bot_binds_host(
    zuora: ZuoraSimulator, slack: SlackEmulator, host: str | None, on_other_loopback: bool
) -> None:
    """HOST=127.0.0.1 listens on that address only (127.0.0.2 is refused); the default, 0.0.0.0, listens on
    every interface."""
    overrides = {} if host is None else {"host": host}
    settings = load_settings(env_file=None, **bot_settings(zuora, slack, **overrides))
    runtime = Runtime(settings)  # no host given: HOST decides
    assert runtime.host == (host or DEFAULT_HOST)
    async with runtime:
        assert await answers(f"http://127.0.0.1:{runtime.port}/healthz")
        assert await answers(f"http://127.0.0.2:{runtime.port}/healthz") is on_other_loopback


def test_bare_run_without_settings_and_without_a_terminal_fails_fast(tmp_path: Path) -> None:
    """A deployment whose secrets did not mount must not quietly serve the demo: exit 2 with the problems."""
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ZUORA_", "SANDBOX_"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "ZUORA_BASE_URL: required" in result.stderr
    assert "sandbox-bot demo" in result.stderr


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """`sandbox-bot` configures the root logger; put it back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("_restore_logging")
def test_the_bot_logs_the_warnings_at_start_and_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warning does not stop the bot: it is logged once, naming the variable, and the bot starts."""
    started: list[Settings] = []

    class StartsAndStops:
        def __init__(self, settings: Settings) -> None:
            started.append(settings)

        async def run_forever(self) -> None:
            return None

    monkeypatch.setattr("bot.runtime.Runtime", StartsAndStops)
    configure_env(monkeypatch, zuora_url="https://rest.apisandbox.zuora.com")
    assert main(["run"]) == 0
    assert [s.zuora_base_url for s in started] == ["https://rest.apisandbox.zuora.com"]
    _, err = capsys.readouterr()
    [line] = [line for line in err.splitlines() if "ZUORA_BASE_URL" in line]
    assert (
        " WARNING bot: ZUORA_BASE_URL: rest.apisandbox.zuora.com is a Zuora API Sandbox host"
        in line
    )
    assert_no_secret(err)


def test_check_shows_both_roles(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_env(
        monkeypatch,
        SANDBOX_ALLOWED_USERGROUPS="S0PLATFORM",
        SANDBOX_VIEWER_USERS="*,U0GUEST01",
        SANDBOX_VIEWER_USERGROUPS="S0BILLING",
    )
    assert main(["check"]) == 0
    out, _ = capsys.readouterr()
    operators = next(line for line in out.splitlines() if "operators (" in line)
    viewers = next(line for line in out.splitlines() if "viewers (" in line)
    assert "S0PLATFORM" in operators and "S0BILLING" not in operators
    assert "every full member of the workspace" in viewers
    assert "U0GUEST01" in viewers and "S0BILLING" in viewers


def test_check_notes_when_nobody_may_act(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_env(monkeypatch, SANDBOX_VIEWER_USERS="*")
    monkeypatch.delenv("SANDBOX_ALLOWED_USERS")
    assert main(["check"]) == 0
    out, _ = capsys.readouterr()
    assert "no operator is set" in out and "no allowlist is set" not in out
