"""Configuration: every variable parsed and validated, every problem reported at once,
naming its variable and never echoing a value."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bot.config import (
    SETTING_NAMES,
    ZUORA_API_SANDBOX_HOSTS,
    ZUORA_PRODUCTION_HOSTS,
    ZUORA_TEST_HOSTS,
    ConfigError,
    load_settings,
    zuora_host_warning,
)

ENV_A = "c0ffee00000000000000000000000001"
ENV_B = "c0ffee00000000000000000000000002"
BOT_TOKEN = "xoxb-1111-2222-config-test-token"
APP_TOKEN = "xapp-1-A111-config-test-app-token"
SIGNING_SECRET = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
CLIENT_ID = "0123abcd-0000-4000-8000-00000000c11d"
CLIENT_SECRET = "Zk3s9Qm2Lx7PqWv4=="
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, CLIENT_ID, CLIENT_SECRET)
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 (HOST's default)

# The smallest valid HTTP-mode environment.
MINIMAL = {
    "SLACK_BOT_TOKEN": BOT_TOKEN,
    "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    "ZUORA_BASE_URL": "https://rest.zuora.com",
    "ZUORA_CLIENT_ID": CLIENT_ID,
    "ZUORA_CLIENT_SECRET": CLIENT_SECRET,
}


@pytest.fixture(autouse=True)
def _empty_workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run in an empty directory so that no stray `.env` is read, and without a HOST from the shell."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOST", raising=False)


def setenv(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def problems_for(monkeypatch: pytest.MonkeyPatch, **changes: str | None) -> list[str]:
    """The problems reported for MINIMAL changed by `changes` (None unsets a variable)."""
    values = {**MINIMAL, **changes}
    setenv(monkeypatch, {k: v for k, v in values.items() if v is not None})
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    return caught.value.problems


def variable_of(problem: str) -> str:
    return problem.split(":", 1)[0]


# -- valid configurations ------------------------------------------------------------------------------------


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, MINIMAL)
    settings = load_settings(env_file=None)
    assert settings.port == 3000
    assert settings.host == "0.0.0.0"  # noqa: S104 (every interface, as in a container)
    assert settings.zuora_timeout_seconds == 30
    assert settings.sandbox_poll_seconds == 20
    assert settings.sandbox_watch_seconds == 60
    assert settings.log_level == "INFO"
    assert settings.log_format == "text"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.zuora_gzip_requests is False
    assert settings.zuora_entity_id is None
    assert settings.sandbox_notify_channel is None
    assert settings.sandbox_allowed_users == ()
    assert settings.sandbox_allowed_usergroups == ()
    assert settings.sandbox_access_help is None
    assert settings.sandbox_watch_environments == ()
    assert settings.sandbox_viewer_users == ()
    assert settings.sandbox_viewer_usergroups == ()
    assert settings.sandbox_remind_before == (86400, 3600)
    assert settings.sandbox_notify_mention == ()
    assert settings.sandbox_redis_url is None
    assert settings.sandbox_redis_prefix == "sandbox-bot:"
    assert dict(settings.aliases) == {}
    assert settings.socket_mode is False


def test_every_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(
        monkeypatch,
        {
            **MINIMAL,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_URL": "http://127.0.0.1:8123/api",
            "PORT": "8080",
            "HOST": "127.0.0.1",
            "ZUORA_BASE_URL": "https://rest.eu.zuora.com/",
            "ZUORA_ENTITY_ID": "8a80-entity-1",
            "ZUORA_TIMEOUT_SECONDS": "12.5",
            "ZUORA_GZIP_REQUESTS": "true",
            "SANDBOX_ALLOWED_USERS": "U0AAA111,W0BBB222",
            "SANDBOX_ALLOWED_USERGROUPS": "S0PLATFORM,S0OPS",
            "SANDBOX_ACCESS_HELP": "  Ask in #platform-help.  ",
            "SANDBOX_ENVIRONMENTS": f"staging={ENV_A},uat={ENV_B}",
            "SANDBOX_NOTIFY_CHANNEL": "C0AUDITLOG",
            "SANDBOX_POLL_SECONDS": "5",
            "SANDBOX_WATCH_ENVIRONMENTS": "staging",
            "SANDBOX_WATCH_SECONDS": "90",
            "SANDBOX_VIEWER_USERS": "*, U0CCC333",
            "SANDBOX_VIEWER_USERGROUPS": "S0BILLING",
            "SANDBOX_REMIND_BEFORE": "1h, 24h,15m,1d",
            "SANDBOX_NOTIFY_MENTION": "S0PLATFORM,U0AAA111",
            "SANDBOX_REDIS_URL": "rediss://:hunter2-redis@redis.internal:6380/1",
            "SANDBOX_REDIS_PREFIX": "sandbox-prod:",
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "json",
        },
    )
    s = load_settings(env_file=None)
    assert s.slack_bot_token is not None and s.slack_bot_token.get_secret_value() == BOT_TOKEN
    assert s.slack_app_token is not None and s.slack_app_token.get_secret_value() == APP_TOKEN
    assert s.slack_signing_secret is not None
    assert s.slack_signing_secret.get_secret_value() == SIGNING_SECRET
    assert (
        s.slack_api_url == "http://127.0.0.1:8123/api/"
    )  # trailing slash added for the Web API client
    assert s.port == 8080
    assert s.host == "127.0.0.1"
    assert s.zuora_base_url == "https://rest.eu.zuora.com"  # trailing slash dropped
    assert s.zuora_client_id.get_secret_value() == CLIENT_ID
    assert s.zuora_client_secret.get_secret_value() == CLIENT_SECRET
    assert s.zuora_entity_id == "8a80-entity-1"
    assert s.zuora_timeout_seconds == 12.5
    assert s.zuora_gzip_requests is True
    assert s.sandbox_allowed_users == ("U0AAA111", "W0BBB222")
    assert s.sandbox_allowed_usergroups == ("S0PLATFORM", "S0OPS")
    assert s.sandbox_access_help == "Ask in #platform-help."
    assert dict(s.aliases) == {"staging": ENV_A, "uat": ENV_B}
    assert s.sandbox_notify_channel == "C0AUDITLOG"
    assert s.sandbox_poll_seconds == 5
    assert s.sandbox_watch_environments == ("staging",)
    assert s.sandbox_watch_seconds == 90
    assert s.sandbox_viewer_users == ("*", "U0CCC333")
    assert s.sandbox_viewer_usergroups == ("S0BILLING",)
    assert s.sandbox_remind_before == (86400, 3600, 900)  # longest first, 1d and 24h once
    assert s.sandbox_notify_mention == ("S0PLATFORM", "U0AAA111")
    assert s.sandbox_redis_url is not None
    assert s.sandbox_redis_url.get_secret_value() == "rediss://:hunter2-redis@redis.internal:6380/1"
    assert s.sandbox_redis_prefix == "sandbox-prod:"
    assert s.log_level == "DEBUG"
    assert s.log_format == "json"
    assert s.socket_mode is True


def test_comma_lists_tolerate_spaces_and_empty_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(
        monkeypatch,
        {
            **MINIMAL,
            "SANDBOX_ALLOWED_USERS": " U0AAA111 , W0BBB222 ,, ",
            "SANDBOX_ALLOWED_USERGROUPS": "S0PLATFORM ,S0OPS",
            "SANDBOX_ENVIRONMENTS": f" staging = {ENV_A} , uat={ENV_B} ,",
            "SANDBOX_WATCH_ENVIRONMENTS": " staging , uat ",
            "SANDBOX_NOTIFY_CHANNEL": "C0AUDIT01",
        },
    )
    s = load_settings(env_file=None)
    assert s.sandbox_allowed_users == ("U0AAA111", "W0BBB222")
    assert s.sandbox_allowed_usergroups == ("S0PLATFORM", "S0OPS")
    assert dict(s.aliases) == {"staging": ENV_A, "uat": ENV_B}
    assert s.sandbox_watch_environments == ("staging", "uat")


def test_aliases_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(
        monkeypatch,
        {
            **MINIMAL,
            "SANDBOX_ENVIRONMENTS": f"Staging={ENV_A}",
            "SANDBOX_WATCH_ENVIRONMENTS": "STAGING",
            "SANDBOX_NOTIFY_CHANNEL": "C0AUDIT01",
        },
    )
    s = load_settings(env_file=None)
    assert dict(s.aliases) == {"staging": ENV_A}
    assert s.sandbox_watch_environments == ("STAGING",)


@pytest.mark.parametrize("watch", ["all", "ALL", ENV_B, "qa_env", f"qa_env, {ENV_B}, all"])
def test_watch_entries_may_be_aliases_ids_or_all(
    monkeypatch: pytest.MonkeyPatch, watch: str
) -> None:
    setenv(
        monkeypatch,
        {
            **MINIMAL,
            "SANDBOX_ENVIRONMENTS": f"qa_env={ENV_A}",
            "SANDBOX_WATCH_ENVIRONMENTS": watch,
            "SANDBOX_NOTIFY_CHANNEL": "C0AUDIT01",
        },
    )
    assert load_settings(env_file=None).sandbox_watch_environments


def test_socket_mode_needs_no_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**MINIMAL, "SLACK_APP_TOKEN": APP_TOKEN})
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    settings = load_settings(env_file=None)
    assert settings.socket_mode is True
    assert settings.slack_signing_secret is None


def test_blank_app_token_means_http_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**MINIMAL, "SLACK_APP_TOKEN": "  "})
    settings = load_settings(env_file=None)
    assert settings.socket_mode is False
    assert settings.slack_app_token is None


def test_demo_needs_no_slack_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, MINIMAL)
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    settings = load_settings(demo=True, env_file=None)
    assert settings.slack_bot_token is None
    with pytest.raises(ConfigError):
        load_settings(env_file=None)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://localhost:9000/", "http://[::1]:8443", "https://x.example"],
)
def test_http_is_allowed_for_loopback_only(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    setenv(monkeypatch, {**MINIMAL, "ZUORA_BASE_URL": url, "SLACK_API_URL": url})
    settings = load_settings(env_file=None)
    assert settings.zuora_base_url == url.rstrip("/")
    assert settings.slack_api_url == url.rstrip("/") + "/"


@pytest.mark.parametrize(
    "host",
    [
        EVERY_INTERFACE,
        "127.0.0.1",
        "10.1.2.3",
        "::",
        "::1",
        "fe80::1%eth0",
        "localhost",
        "bot.internal.example",
    ],
)
def test_host_may_be_an_ip_address_or_a_host_name(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    setenv(monkeypatch, {**MINIMAL, "HOST": f" {host} "})
    assert load_settings(env_file=None).host == host


def test_blank_host_means_every_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**MINIMAL, "HOST": "  "})
    assert load_settings(env_file=None).host == EVERY_INTERFACE


def test_host_problem_says_what_is_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    [problem] = problems_for(monkeypatch, HOST="0.0.0.0:3000")
    assert problem.startswith("HOST: must be an IP address")
    assert EVERY_INTERFACE in problem and "host name" in problem
    assert "3000" not in problem  # the value is not echoed


def test_zuora_base_url_with_a_path_is_refused_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    [problem] = problems_for(monkeypatch, ZUORA_BASE_URL="https://rest.eu.zuora.com/v1")
    assert variable_of(problem) == "ZUORA_BASE_URL"
    assert "host only" in problem
    assert "e.g. https://rest.zuora.com," in problem


@pytest.mark.parametrize("host", ZUORA_PRODUCTION_HOSTS)
def test_production_hosts_get_no_warning(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    setenv(monkeypatch, {**MINIMAL, "ZUORA_BASE_URL": f"https://{host.upper()}/"})
    assert load_settings(env_file=None).config_warnings() == []


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8090", "http://localhost:9000", "http://[::1]:8443", "https://127.0.0.2"],
)
def test_loopback_urls_get_no_warning(url: str) -> None:
    """The simulator of the demo and of the tests."""
    assert zuora_host_warning(url) is None


def known_hosts_named(warning: str) -> bool:
    return all(f"https://{host}" in warning for host in ZUORA_PRODUCTION_HOSTS)


@pytest.mark.parametrize("host", ZUORA_API_SANDBOX_HOSTS)
def test_api_sandbox_host_warns_that_it_has_no_test_environment_operations(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    setenv(monkeypatch, {**MINIMAL, "ZUORA_BASE_URL": f"https://{host}"})
    [warning] = load_settings(env_file=None).config_warnings()
    assert warning.startswith(f"ZUORA_BASE_URL: {host} is a Zuora API Sandbox host")
    assert "no test-environment operations" in warning
    assert known_hosts_named(warning)


@pytest.mark.parametrize("host", ZUORA_TEST_HOSTS)
def test_central_sandbox_host_warns_to_use_production(host: str) -> None:
    warning = zuora_host_warning(f"https://{host}")
    assert warning is not None
    assert warning.startswith(f"ZUORA_BASE_URL: {host} is a Central or Developer Sandbox host")
    assert known_hosts_named(warning)


def test_unknown_host_warns_naming_the_known_ones_and_not_itself() -> None:
    warning = zuora_host_warning("https://zuora-proxy.corp.example")
    assert warning is not None
    assert warning.startswith("ZUORA_BASE_URL: not a known Zuora production REST host")
    assert known_hosts_named(warning)
    assert "corp.example" not in warning


def test_an_unlisted_zuora_sandbox_host_is_recognised_without_being_echoed() -> None:
    warning = zuora_host_warning("https://rest.sandbox.ap.zuora.com")
    assert warning is not None
    assert warning.startswith("ZUORA_BASE_URL: this host is a Zuora API Sandbox host")


def test_overrides_take_the_place_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**MINIMAL, "PORT": "4000"})
    assert load_settings(env_file=None, port=0).port == 0


# -- .env -----------------------------------------------------------------------------------------------------


def write_dotenv(directory: Path, values: dict[str, str]) -> None:
    (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write_dotenv(
        tmp_path, {**MINIMAL, "PORT": "4000", "SANDBOX_ALLOWED_USERS": "U0AAA111, U0BBB222"}
    )
    settings = load_settings()
    assert settings.port == 4000
    assert settings.sandbox_allowed_users == ("U0AAA111", "U0BBB222")
    assert settings.zuora_client_secret.get_secret_value() == CLIENT_SECRET


def test_environment_wins_over_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_dotenv(tmp_path, {**MINIMAL, "PORT": "4000", "ZUORA_BASE_URL": "https://from.dotenv"})
    monkeypatch.setenv("PORT", "5000")
    monkeypatch.setenv("ZUORA_BASE_URL", "https://from.environment")
    settings = load_settings()
    assert settings.port == 5000
    assert settings.zuora_base_url == "https://from.environment"


def test_slack_mode_checks_see_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The signing secret only in `.env` satisfies HTTP mode (the mode check reads `.env` too)."""
    write_dotenv(tmp_path, {"SLACK_SIGNING_SECRET": SIGNING_SECRET})
    setenv(monkeypatch, {k: v for k, v in MINIMAL.items() if k != "SLACK_SIGNING_SECRET"})
    assert load_settings().slack_signing_secret is not None


def test_variable_names_are_read_whatever_their_case(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`Port` in the environment and `Sandbox_Poll_Seconds` in `.env` count; a `.env` name without a value is
    left out (its default stays), and keyword overrides may be written in upper case too."""
    (tmp_path / ".env").write_text(
        "".join(f"{k}={v}\n" for k, v in MINIMAL.items())
        + "Sandbox_Poll_Seconds=7\nSANDBOX_WATCH_SECONDS\n"
    )
    monkeypatch.setenv("Port", "4100")
    settings = load_settings()
    assert settings.port == 4100
    assert settings.sandbox_poll_seconds == 7.0
    assert settings.sandbox_watch_seconds == 60.0
    assert load_settings(SANDBOX_POLL_SECONDS=9).sandbox_poll_seconds == 9.0


def test_a_dotenv_that_is_a_pipe_is_read(tmp_path: Path) -> None:
    """Some secret stores mount `.env` as a named pipe: it is read like a file (once)."""
    pipe = tmp_path / "secrets.env"
    os.mkfifo(pipe)
    text = "".join(f"{k}={v}\n" for k, v in {**MINIMAL, "PORT": "4200"}.items())

    def write() -> None:
        with pipe.open("w") as sink:
            sink.write(text)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        settings = load_settings(env_file=str(pipe))
    finally:
        if writer.is_alive():  # nobody read the pipe: open it here so that the writer ends
            os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(10)
    assert settings.port == 4200


def test_values_are_text_and_a_json_list_is_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists are comma-separated: a value written as JSON is named as wrong, not silently taken apart."""
    setenv(monkeypatch, {**MINIMAL, "SANDBOX_ALLOWED_USERS": '["U0AAA111"]'})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert [variable_of(p) for p in caught.value.problems] == ["SANDBOX_ALLOWED_USERS"]


def test_env_file_none_ignores_dotenv(tmp_path: Path) -> None:
    write_dotenv(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    assert {variable_of(p) for p in caught.value.problems} >= {
        "SLACK_BOT_TOKEN",
        "ZUORA_BASE_URL",
        "ZUORA_CLIENT_ID",
        "ZUORA_CLIENT_SECRET",
    }


# -- problems -------------------------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = problems_for(
        monkeypatch,
        ZUORA_BASE_URL="rest.zuora.com",
        ZUORA_CLIENT_SECRET=None,
        SANDBOX_ALLOWED_USERS="U0AAA111,alice",
    )
    assert len(problems) == 3
    assert [variable_of(p) for p in problems] == [
        "ZUORA_BASE_URL",
        "ZUORA_CLIENT_SECRET",
        "SANDBOX_ALLOWED_USERS",
    ]
    assert "required" in problems[1]


def test_config_error_text_lists_each_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = problems_for(monkeypatch, PORT="x", LOG_FORMAT="xml")
    text = str(ConfigError(problems))
    assert text.splitlines()[1:] == [f"- {p}" for p in problems]


def test_empty_environment_names_every_required_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    assert sorted(variable_of(p) for p in caught.value.problems) == [
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "ZUORA_BASE_URL",
        "ZUORA_CLIENT_ID",
        "ZUORA_CLIENT_SECRET",
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SLACK_BOT_TOKEN", "xoxp-user-token-not-a-bot-token"),
        ("SLACK_APP_TOKEN", "not-an-app-token"),
        ("SLACK_SIGNING_SECRET", "two words"),
        ("SLACK_API_URL", "slack.com/api"),
        ("SLACK_API_URL", "http://slack.com/api/"),
        ("PORT", "http"),
        ("PORT", "70000"),
        ("HOST", "0.0.0.0:3000"),
        ("HOST", "http://0.0.0.0"),
        ("HOST", "999.1.1.1"),
        ("HOST", "[::1]"),
        ("HOST", "two words"),
        ("HOST", "-leading-dash.example"),
        ("HOST", "under_score.example"),
        ("HOST", "a" * 64 + ".example"),
        ("ZUORA_BASE_URL", "https://rest.zuora.com/v1"),
        ("ZUORA_BASE_URL", "https://rest.zuora.com/v1/"),
        ("ZUORA_BASE_URL", "https://rest.zuora.com//"),
        ("ZUORA_BASE_URL", "https://rest.zuora.com?tenant=1"),
        ("ZUORA_BASE_URL", "https://rest.zuora.com/?"),
        ("ZUORA_BASE_URL", "https://rest.zuora.com#top"),
        ("ZUORA_BASE_URL", "http://127.0.0.1:8080/v1"),
        ("ZUORA_BASE_URL", "http://rest.zuora.com"),
        ("ZUORA_BASE_URL", "ftp://rest.zuora.com"),
        ("ZUORA_BASE_URL", "https://user:pw@rest.zuora.com"),
        ("ZUORA_CLIENT_ID", "   "),
        ("ZUORA_CLIENT_SECRET", ""),
        ("ZUORA_CLIENT_SECRET", "has a space"),
        ("ZUORA_ENTITY_ID", "two entities"),
        ("ZUORA_TIMEOUT_SECONDS", "0"),
        ("ZUORA_TIMEOUT_SECONDS", "soon"),
        ("ZUORA_GZIP_REQUESTS", "maybe"),
        ("SANDBOX_ALLOWED_USERS", "U0AAA111,S0GROUP"),
        ("SANDBOX_ALLOWED_USERGROUPS", "U0AAA111"),
        ("SANDBOX_ACCESS_HELP", "Ask in #platform-help.\nOr DM the on-call."),
        ("SANDBOX_ACCESS_HELP", "Ask\rhere"),
        ("SANDBOX_ACCESS_HELP", "Ask\u2028here"),
        ("SANDBOX_ACCESS_HELP", "Ask\there"),
        ("SANDBOX_ACCESS_HELP", "x" * 301),
        ("SANDBOX_ENVIRONMENTS", "staging"),
        ("SANDBOX_ENVIRONMENTS", f"9staging={ENV_A}"),
        ("SANDBOX_ENVIRONMENTS", "staging=not/an/id"),
        ("SANDBOX_ENVIRONMENTS", f"staging={ENV_A},uat={ENV_B},staging={ENV_B}"),
        ("SANDBOX_ENVIRONMENTS", f"Staging={ENV_A},STAGING={ENV_B}"),
        ("SANDBOX_NOTIFY_CHANNEL", "#sandbox-audit"),
        ("SANDBOX_POLL_SECONDS", "0"),
        ("SANDBOX_WATCH_ENVIRONMENTS", "staging_env"),
        ("SANDBOX_WATCH_SECONDS", "-1"),
        ("LOG_LEVEL", "TRACE"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_one_problem_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    problems = problems_for(monkeypatch, **{variable: value})
    assert len(problems) == 1, problems
    assert variable_of(problems[0]) == variable, problems


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_access_help_means_the_default(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    setenv(monkeypatch, {**MINIMAL, "SANDBOX_ACCESS_HELP": value})
    assert load_settings(env_file=None).sandbox_access_help is None


def test_access_help_may_be_300_characters_of_any_language(monkeypatch: pytest.MonkeyPatch) -> None:
    sentence = "Frag in #plattform-hilfe nach, bitte. " + "é" * 262
    assert len(sentence) == 300
    setenv(monkeypatch, {**MINIMAL, "SANDBOX_ACCESS_HELP": sentence})
    assert load_settings(env_file=None).sandbox_access_help == sentence


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("Ask in #help.\nOr DM us.", "one line"),
        ("x" * 301 + "SECRET-LOOKING", "at most 300 characters"),
    ],
)
def test_access_help_problems_say_what_is_expected_and_do_not_echo_it(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    [problem] = problems_for(monkeypatch, SANDBOX_ACCESS_HELP=value)
    assert problem.startswith("SANDBOX_ACCESS_HELP: ") and says in problem
    assert "Ask in" not in problem and "SECRET-LOOKING" not in problem and "xxxx" not in problem


def test_duplicate_alias_problem_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    [problem] = problems_for(monkeypatch, SANDBOX_ENVIRONMENTS=f"uat={ENV_A},UAT={ENV_B}")
    assert "twice" in problem


def test_http_mode_needs_a_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    [problem] = problems_for(monkeypatch, SLACK_SIGNING_SECRET=None)
    assert variable_of(problem) == "SLACK_SIGNING_SECRET"
    assert "SLACK_APP_TOKEN" in problem  # tells how to use Socket Mode instead


def test_bot_token_is_required_outside_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    [problem] = problems_for(monkeypatch, SLACK_BOT_TOKEN=None, SLACK_APP_TOKEN=APP_TOKEN)
    assert variable_of(problem) == "SLACK_BOT_TOKEN"


def test_url_problem_gives_an_example_for_its_own_service(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = problems_for(monkeypatch, SLACK_API_URL="slack", ZUORA_BASE_URL="zuora")
    assert "https://slack.com/api/" in problems[0]
    assert "zuora.com" not in problems[0]
    assert "https://rest.zuora.com" in problems[1]


# -- secrets are never shown ----------------------------------------------------------------------------------

PASTED = "Pq7Zx3Wm9Ks2Lt5Vb8Nc4=="  # a base64-looking secret pasted into the wrong variable


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SLACK_BOT_TOKEN", PASTED),
        ("SLACK_APP_TOKEN", PASTED),
        ("SLACK_SIGNING_SECRET", f"{PASTED} "),
        ("SLACK_API_URL", PASTED),
        ("SLACK_API_URL", f"http://{PASTED.rstrip('=')}.example/api/"),
        ("ZUORA_BASE_URL", f"https://user:{PASTED}@rest.zuora.com"),
        ("ZUORA_BASE_URL", f"https://[{PASTED}]"),
        ("SLACK_API_URL", f"https://[{PASTED}]/api/"),
        ("PORT", f"_{PASTED}"),
        ("ZUORA_MAX_CONNECTIONS", f"1_{PASTED}"),
        ("PORT", PASTED),
        ("HOST", PASTED),
        ("ZUORA_BASE_URL", f"https://rest.zuora.com/{PASTED}"),
        ("ZUORA_CLIENT_ID", f"id {PASTED}"),
        ("ZUORA_ENTITY_ID", PASTED),
        ("ZUORA_TIMEOUT_SECONDS", PASTED),
        ("ZUORA_GZIP_REQUESTS", PASTED),
        ("SANDBOX_ALLOWED_USERS", PASTED),
        ("SANDBOX_ALLOWED_USERGROUPS", PASTED),
        ("SANDBOX_ENVIRONMENTS", PASTED),
        ("SANDBOX_ENVIRONMENTS", f"staging={PASTED}"),
        ("SANDBOX_NOTIFY_CHANNEL", PASTED),
        ("SANDBOX_POLL_SECONDS", PASTED),
        ("SANDBOX_WATCH_ENVIRONMENTS", PASTED),
        ("SANDBOX_WATCH_SECONDS", PASTED),
        ("LOG_LEVEL", PASTED),
        ("LOG_FORMAT", PASTED),
    ],
)
def test_a_pasted_secret_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    problems = problems_for(monkeypatch, **{variable: value})
    assert [variable_of(p) for p in problems] == [variable]
    text = (str(ConfigError(problems)) + "\n".join(problems)).lower()
    secret = PASTED.rstrip(
        "="
    ).lower()  # compared without case and padding: an alias would be lower-cased
    assert secret not in text
    for known in SECRETS:
        assert known.lower() not in text


def test_describe_masks_secrets_and_lists_every_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**MINIMAL, "SLACK_APP_TOKEN": APP_TOKEN})
    rows = dict(load_settings(env_file=None).describe())
    assert set(rows) == {name.upper() for name in SETTING_NAMES}
    shown = "\n".join(rows.values())
    for secret in SECRETS:
        assert secret not in shown
    assert rows["SLACK_BOT_TOKEN"] == f"xoxb-*** (set, {len(BOT_TOKEN)} characters)"
    assert rows["SLACK_APP_TOKEN"].startswith("xapp-***")
    assert rows["ZUORA_CLIENT_SECRET"] == f"*** (set, {len(CLIENT_SECRET)} characters)"
    assert rows["ZUORA_CLIENT_ID"].startswith("***")
    assert rows["ZUORA_BASE_URL"] == "https://rest.zuora.com"
    assert rows["SANDBOX_ALLOWED_USERS"] == "(not set)"


def test_watch_needs_a_notification_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**MINIMAL, "SANDBOX_WATCH_ENVIRONMENTS": "all"})
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    assert any(
        p.startswith("SANDBOX_WATCH_ENVIRONMENTS") and "SANDBOX_NOTIFY_CHANNEL" in p
        for p in caught.value.problems
    )


def test_log_level_and_format_ignore_case(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**MINIMAL, "LOG_LEVEL": "debug", "LOG_FORMAT": "JSON"})
    s = load_settings(env_file=None)
    assert (s.log_level, s.log_format) == ("DEBUG", "json")


def test_env_example_documents_every_setting() -> None:
    """.env.example names every variable the bot reads (the interface's configuration table)."""
    example = (Path(__file__).resolve().parent.parent / ".env.example").read_text(encoding="utf-8")
    documented = {
        line.split("=", 1)[0]
        for line in example.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert documented == {name.upper() for name in SETTING_NAMES}


# -- roles, reminders, mentions, Redis ------------------------------------------------------------------------


def test_blank_remind_before_turns_reminders_off(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, {**MINIMAL, "SANDBOX_REMIND_BEFORE": ""})
    assert load_settings(env_file=None).sandbox_remind_before == ()


@pytest.mark.parametrize("text", ["1x", "h", "-1h", "0m", "31d", "1h,soon"])
def test_bad_remind_before_is_named(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    problems = problems_for(monkeypatch, SANDBOX_REMIND_BEFORE=text)
    assert [variable_of(p) for p in problems] == ["SANDBOX_REMIND_BEFORE"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SANDBOX_VIEWER_USERS", "U0AAA111,everyone"),
        ("SANDBOX_VIEWER_USERS", "**"),
        ("SANDBOX_VIEWER_USERGROUPS", "U0AAA111"),
        ("SANDBOX_NOTIFY_MENTION", "@channel"),
        ("SANDBOX_NOTIFY_MENTION", "<!here>"),
        ("SANDBOX_REDIS_URL", "http://redis:6379"),
        ("SANDBOX_REDIS_URL", "redis://:6379"),
        ("SANDBOX_REDIS_URL", "redis://redis:notaport"),
        ("SANDBOX_REDIS_URL", "redis://redis:6379/zero"),
        ("SANDBOX_REDIS_URL", "redis://:secret-pw@redis:0"),
        ("SANDBOX_REDIS_PREFIX", "has space"),
    ],
)
def test_role_mention_and_redis_problems_are_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    problems = problems_for(monkeypatch, **{variable: value})
    assert [variable_of(p) for p in problems] == [variable]
    assert all(value not in p for p in problems)


def test_check_shows_where_redis_is_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(
        monkeypatch,
        {
            **MINIMAL,
            "SANDBOX_REDIS_URL": "rediss://bot:hunter2-redis@redis.internal:6380/1",
            "SANDBOX_REMIND_BEFORE": "1d,90m",
        },
    )
    rows = dict(load_settings(env_file=None).describe())
    assert rows["SANDBOX_REDIS_URL"] == "rediss://redis.internal:6380/1 (password set)"
    assert rows["SANDBOX_REMIND_BEFORE"] == "1d, 1h30m"
    assert all("hunter2" not in shown for shown in rows.values())


# -- how values are read ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("Yes", True),
        ("on", True),
        ("1", True),
        (" false ", False),
        ("off", False),
        ("0", False),
    ],
)
def test_a_flag_reads_the_usual_words(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: bool
) -> None:
    setenv(monkeypatch, {**MINIMAL, "ZUORA_GZIP_REQUESTS": text})
    assert load_settings(env_file=None).zuora_gzip_requests is expected


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("PORT", "70000", "a whole number from 0 to 65535"),
        ("PORT", "80.5", "a whole number from 0 to 65535"),
        ("ZUORA_MAX_CONNECTIONS", "0", "a whole number from 1 to 200"),
        ("ZUORA_TIMEOUT_SECONDS", "0", "above 0 and at most 300"),
        ("ZUORA_TIMEOUT_SECONDS", "nan", "above 0 and at most 300"),
        ("SANDBOX_POLL_SECONDS", "0.01", "from 0.05 to 3600"),
        ("ZUORA_GZIP_REQUESTS", "maybe", "true or false"),
        ("LOG_LEVEL", "TRACE", "DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_a_bad_value_says_what_is_expected(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    [problem] = problems_for(monkeypatch, **{variable: value})
    assert problem.startswith(f"{variable}: must be ")
    assert says in problem


@pytest.mark.parametrize(
    ("text", "expected"), [("3000.0", 3000), (" 8080 ", 8080), ("1_000", 1000)]
)
def test_a_whole_number_may_be_written_as_before(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: int
) -> None:
    """What pydantic took for PORT still starts the bot after an upgrade."""
    setenv(monkeypatch, {**MINIMAL, "PORT": text})
    assert load_settings(env_file=None).port == expected


def test_typed_values_given_to_load_settings_are_checked_like_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo and the tests give numbers, flags and lists as values: the same rules apply."""
    setenv(monkeypatch, MINIMAL)
    settings = load_settings(
        env_file=None,
        port=8080,
        zuora_gzip_requests=True,
        sandbox_poll_seconds=2,
        sandbox_remind_before=(60.0, 3600.0),
        sandbox_allowed_users=("U0AAA111",),
        zuora_max_connections=20.0,
    )
    assert (settings.port, settings.zuora_gzip_requests, settings.sandbox_poll_seconds) == (
        8080,
        True,
        2.0,
    )
    assert settings.sandbox_remind_before == (3600.0, 60.0)
    assert settings.sandbox_allowed_users == ("U0AAA111",)
    with pytest.raises(ConfigError) as caught:
        load_settings(
            env_file=None, port=True, sandbox_poll_seconds=0, sandbox_remind_before=(10**400,)
        )
    assert [variable_of(p) for p in caught.value.problems] == [
        "PORT",
        "SANDBOX_POLL_SECONDS",
        "SANDBOX_REMIND_BEFORE",
    ]


def test_none_given_to_load_settings_is_the_default_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setenv(monkeypatch, {**MINIMAL, "PORT": "8080", "SLACK_APP_TOKEN": APP_TOKEN})
    settings = load_settings(env_file=None, port=None, slack_app_token=None)
    assert (settings.port, settings.slack_app_token) == (3000, None)
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, zuora_client_id=None)
    assert caught.value.problems == ["ZUORA_CLIENT_ID: required"]


def test_settings_and_their_secrets_never_show_a_secret() -> None:
    settings = load_settings(env_file=None, **{k.lower(): v for k, v in MINIMAL.items()})
    shown = f"{settings!r} {settings} {settings.zuora_client_secret}"
    for secret in SECRETS:
        assert secret not in shown
    assert settings.zuora_client_secret.get_secret_value() == CLIENT_SECRET
