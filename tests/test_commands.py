"""The `/sandbox` parser, the subcommand definitions and the button-value codec."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import (
    ARG_AT,
    ARG_ENV,
    ARG_EXTRA,
    ARG_JOB,
    ARG_SUBCOMMAND,
    ARG_TIME,
    ARG_VALUE,
    ID_PATTERN,
    SUBCOMMANDS,
    Cancel,
    Command,
    EnvRef,
    Envs,
    Help,
    Jobs,
    Refresh,
    RefreshForm,
    Status,
    UsageError,
    decode_job_value,
    decode_refresh_value,
    encode_job_value,
    encode_refresh_value,
    escape_mrkdwn,
    normalise,
    parse,
    resolve_env,
    usage_line,
    usage_text,
    validate_id,
)

STAGING = "2c92c0f8-staging-0001"
UAT = "2c92c0f8-uat-0002"
ALIASES = {"staging": STAGING, "UAT": UAT}
JOB = "8a8aa1d1-46b3-4c0b-9bcd-0e1c1b5d3b2a"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

# An `&` that does not start one of the three entities Slack knows, or any raw `<` / `>`.
UNESCAPED = re.compile(r"[<>]|&(?!(?:amp|lt|gt);)")

INVALID_IDS = [
    "a/b",
    "..",
    "a..b",
    "%2e%2e",
    "a%20b",
    "-leading-dash",
    "x" * 65,
    "<!channel>",
    "<!here>",
    "<@U123>",
    "<#C1|x>",
    "&lt;!channel&gt;",
    "abc\u00e9",  # a non-ASCII letter
    "１２３",  # full-width digits
    "a_b",
    "a.b",
    "a?b",
]


def error(text: str, *, now: datetime | None = NOW) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse(text, ALIASES, now=now)
    return info.value


def assert_escaped(message: str) -> None:
    assert message
    assert not UNESCAPED.search(message), message


# -- normalise --------------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["‘", "’", "‚", "‛"])
def test_normalise_single_smart_quotes(char: str) -> None:
    assert normalise(f"{char}x{char}") == "'x'"


@pytest.mark.parametrize("char", ["“", "”", "„"])
def test_normalise_double_smart_quotes(char: str) -> None:
    assert normalise(f"{char}x{char}") == '"x"'


@pytest.mark.parametrize("char", ["–", "—", "‒", "−", "‐", "‑"])
def test_normalise_dashes(char: str) -> None:
    assert normalise(f"a{char}b") == "a-b"


@pytest.mark.parametrize("char", ["\u00a0", "\u2007", "\u2009", "\u202f", "\u3000"])
def test_normalise_odd_spaces(char: str) -> None:
    assert normalise(f"a{char}b") == "a b"


def test_normalise_drops_zero_width_characters() -> None:
    assert normalise("ab\u200bc\ufeffd\u2060") == "abcd"


def test_normalise_keeps_ascii_text() -> None:
    text = "cancel staging 'x' \"y\" a-b\tc\n"
    assert normalise(text) == text


# -- parse: the grammar -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "help", "HELP", "Help cancel", "\u00a0"])
def test_help(text: str) -> None:
    assert parse(text, ALIASES) == Help()


def test_envs() -> None:
    assert parse("envs", ALIASES) == Envs()


def test_jobs() -> None:
    assert parse("jobs staging", ALIASES) == Jobs(EnvRef(STAGING, "staging"))


def test_status_and_cancel() -> None:
    env = EnvRef(STAGING, "staging")
    assert parse(f"status staging {JOB}", ALIASES) == Status(env, JOB)
    assert parse(f"cancel staging {JOB}", ALIASES) == Cancel(env, JOB)


@pytest.mark.parametrize("sub", ["CANCEL", "Cancel", "cAnCeL"])
def test_subcommands_are_case_insensitive(sub: str) -> None:
    assert isinstance(parse(f"{sub} staging {JOB}", ALIASES), Cancel)


@pytest.mark.parametrize(
    "text",
    [
        f"cancel\tstaging\t{JOB}",
        f"  cancel   staging \n {JOB}  ",
        f"cancel\u00a0staging\u00a0{JOB}",
        f"cancel\u3000staging\u2009{JOB}\n",
        f"\ncancel\r\nstaging\r\n{JOB}\r\n",
    ],
)
def test_any_white_space_separates_arguments(text: str) -> None:
    assert parse(text, ALIASES) == Cancel(EnvRef(STAGING, "staging"), JOB)


@pytest.mark.parametrize(
    "token", ['"staging"', "'staging'", "`staging`", "“staging”", "‘staging’", "„staging“"]
)
def test_surrounding_quotes_are_stripped(token: str) -> None:
    assert parse(f"jobs {token}", ALIASES) == Jobs(EnvRef(STAGING, "staging"))


def test_unbalanced_quote_is_not_stripped() -> None:
    assert error('jobs "staging').argument == ARG_ENV


def test_smart_dashes_in_a_job_id_are_normalised() -> None:
    command = parse("cancel staging 8a8a–1—2", ALIASES)
    assert command == Cancel(EnvRef(STAGING, "staging"), "8a8a-1-2")


def test_empty_quoted_argument_counts_as_missing() -> None:
    err = error('cancel staging ""')
    assert err.argument == ARG_JOB


def test_command_names_are_exposed_for_metrics() -> None:
    assert [c.name for c in (Help, Envs, Jobs, Status, Cancel, Refresh)] == list(SUBCOMMANDS)


# -- environments -----------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["staging", "STAGING", "Staging"])
def test_alias_matches_case_insensitively_and_keeps_the_configured_name(typed: str) -> None:
    assert resolve_env(typed, ALIASES) == EnvRef(STAGING, "staging")
    assert resolve_env("uat", ALIASES) == EnvRef(UAT, "UAT")


def test_raw_id_without_alias() -> None:
    assert resolve_env("1234abcd", ALIASES) == EnvRef("1234abcd", None)


def test_raw_id_of_an_aliased_environment_shows_the_alias() -> None:
    assert resolve_env(UAT, ALIASES) == EnvRef(UAT, "UAT")


def test_alias_wins_over_raw_id() -> None:
    aliases = {"abc123": STAGING}
    assert resolve_env("abc123", aliases) == EnvRef(STAGING, "abc123")
    assert resolve_env("ABC123", aliases) == EnvRef(STAGING, "abc123")


def test_alias_that_is_not_an_id_still_resolves() -> None:
    """The configuration validated aliases; their spelling need not follow the ID rule."""
    assert resolve_env("eu_prod", {"eu_prod": STAGING}) == EnvRef(STAGING, "eu_prod")


@pytest.mark.parametrize("bad", INVALID_IDS)
def test_invalid_env_is_a_usage_error_naming_env(bad: str) -> None:
    err = error(f"cancel {bad} {JOB}")
    assert err.argument == ARG_ENV
    assert err.subcommand == "cancel"
    assert_escaped(err.message)


def test_invalid_env_error_lists_the_known_aliases() -> None:
    err = error("jobs prod/x")
    assert "staging" in err.message and "UAT" in err.message


@pytest.mark.parametrize("bad", INVALID_IDS)
def test_invalid_job_is_a_usage_error_naming_job(bad: str) -> None:
    err = error(f"status staging {bad}")
    assert err.argument == ARG_JOB
    assert err.subcommand == "status"
    assert_escaped(err.message)


def test_id_length_boundary() -> None:
    assert validate_id("a" * 64, ARG_JOB) == "a" * 64
    with pytest.raises(UsageError, match="65 characters"):
        validate_id("a" * 65, ARG_JOB)


def test_id_with_trailing_newline_is_rejected() -> None:
    """`$` in ID_PATTERN would match before a final newline; the check must not."""
    with pytest.raises(UsageError):
        validate_id("abc\n", ARG_JOB)


def test_id_with_space_is_too_many_arguments() -> None:
    err = error("cancel staging 8a8a 1234")
    assert err.argument == ARG_EXTRA
    assert "`1234`" in err.message


def test_invalid_id_message_says_what_is_wrong() -> None:
    assert "`/`" in error("jobs a/b").message
    assert "starts with '-'" in error("status staging -x").message


# -- missing, extra, unknown ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "argument", "sub"),
    [
        ("jobs", ARG_ENV, "jobs"),
        ("status", ARG_ENV, "status"),
        ("status staging", ARG_JOB, "status"),
        ("cancel", ARG_ENV, "cancel"),
        ("cancel staging", ARG_JOB, "cancel"),
        ("refresh staging at", ARG_TIME, "refresh"),
    ],
)
def test_missing_argument(text: str, argument: str, sub: str) -> None:
    err = error(text)
    assert (err.argument, err.subcommand) == (argument, sub)
    assert escape_mrkdwn(argument) in err.message
    # The usage line is the reply's to add, once (bot.blocks.usage_error): the message does not repeat it.
    assert "Usage" not in err.message and usage_line(sub) not in err.message


@pytest.mark.parametrize(
    ("text", "extra", "sub"),
    [
        ("envs staging", "staging", "envs"),
        ("jobs staging uat", "uat", "jobs"),
        (f"cancel staging {JOB} now please", "now please", "cancel"),
        (f"status staging {JOB} x", "x", "status"),
        ("refresh staging at 2031-01-01T00:00Z x", "x", "refresh"),
        ("refresh staging at 2031-01-01 10:00 x", "x", "refresh"),
    ],
)
def test_extra_arguments(text: str, extra: str, sub: str) -> None:
    err = error(text)
    assert (err.argument, err.subcommand) == (ARG_EXTRA, sub)
    assert f"`{extra}`" in err.message
    assert "Usage" not in err.message and usage_line(sub) not in err.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobs", "Missing &lt;env&gt;."),
        ("cancel staging", "Missing &lt;job&gt;."),
        ("refresh staging at", "Missing &lt;time&gt; after `at`."),
        (
            "refresh staging soon",
            "Unexpected `soon`: to schedule the refresh, write `at &lt;time&gt;`.",
        ),
        ("envs staging", "Too many arguments: `staging` is extra."),
        (
            "nuke",
            "Unknown subcommand `nuke`. Valid subcommands: help, envs, jobs, status, cancel, refresh.",
        ),
        (
            "refresh staging at 2029-12-31T23:00Z",
            "&lt;time&gt; `2029-12-31T23:00Z` is not in the future.",
        ),
    ],
)
def test_usage_error_messages_say_it_once(text: str, message: str) -> None:
    """Pinned: what is wrong, in one sentence; no usage line, no "Try /sandbox help", no time in UTC."""
    assert error(text).message == message


def test_usage_line_is_escaped() -> None:
    assert usage_line("cancel") == "/sandbox cancel &lt;env&gt; &lt;job&gt;"


@pytest.mark.parametrize("text", ["nuke", "list staging", "cancelx staging 1", "/sandbox help"])
def test_unknown_subcommand_lists_the_valid_ones(text: str) -> None:
    err = error(text)
    assert err.argument == ARG_SUBCOMMAND
    assert err.subcommand is None
    for sub in SUBCOMMANDS:
        assert sub in err.message


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U123|bob>", "&lt;@U123|bob&gt;"),
        # Slack sends typed `&`, `<`, `>` as entities: they are decoded once, then escaped again.
        ("&lt;!here&gt;", "&lt;!here&gt;"),
        ("a&amp;b", "a&amp;b"),
        ("&amp;lt;", "&amp;lt;"),
    ],
)
def test_quoted_text_is_escaped(text: str, shown: str) -> None:
    err = error(text)
    assert f"`{shown}`" in err.message
    assert_escaped(err.message)


def test_quoted_text_is_truncated() -> None:
    err = error("x" * 500)
    assert "x" * 100 not in err.message
    assert "…" in err.message
    assert len(err.message) < 250


def test_backtick_in_quoted_text_cannot_break_out_of_code() -> None:
    err = error("a`b")
    assert err.message.startswith("Unknown subcommand `a'b`.")
    assert err.message.count("`") % 2 == 0


# -- refresh ----------------------------------------------------------------------------------


def test_refresh_now() -> None:
    assert parse("refresh staging", ALIASES, now=NOW) == Refresh(EnvRef(STAGING, "staging"), None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at 2030-01-31T22:00Z", datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),
        ("AT 2030-01-31T22:00:00Z", datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),
        ("At 2030-01-31t22:00z", datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),
        ("at 2030-01-31T23:00+01:00", datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),
        ("at 2030-01-31T17:00−05:00", datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),  # Slack minus
        ("at 2030–01–31T22:00Z", datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),  # Slack dashes
        ("at 2030-01-31T22:00", datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),  # naive: UTC
        ("at 2030-01-31 22:00", datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),  # two words
        ("at 2030-01-31 23:00+01:00", datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),
        ('at "2030-01-31T22:00Z"', datetime(2030, 1, 31, 22, 0, tzinfo=UTC)),
    ],
)
def test_refresh_at(text: str, expected: datetime) -> None:
    command = parse(f"refresh staging {text}", ALIASES, now=NOW)
    assert isinstance(command, Refresh)
    assert command.at == expected
    assert command.at is not None and command.at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "time",
    [
        "tomorrow",
        "2030-13-01T00:00Z",
        "2030-01-31T25:00Z",
        "2030-01-31",  # no time of day
        "22:00",
        "2030-01-31T22:00Z+01:00",
        "２０３０-01-31T22:00Z",
        "<!channel>",
        "9999-12-31T23:59:59-01:00",  # past the end of datetime once in UTC
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_refresh_bad_time(time: str) -> None:
    err = error(f"refresh staging at {time}")
    assert (err.argument, err.subcommand) == (ARG_TIME, "refresh")
    assert_escaped(err.message)


@pytest.mark.parametrize(
    "time", ["2029-12-31T23:59Z", "2030-01-01T12:00Z", "2030-01-01T13:00+01:00"]
)
def test_refresh_time_must_be_in_the_future(time: str) -> None:
    err = error(f"refresh staging at {time}")
    assert err.argument == ARG_TIME
    assert "future" in err.message
    # No "now: <UTC>": the time goes to the reply, which shows it in the reader's time zone.
    assert "now" not in err.message
    assert err.time == datetime.fromisoformat(time.replace("Z", "+00:00"))


def test_refresh_time_just_after_now_is_accepted() -> None:
    command = parse("refresh staging at 2030-01-01T12:00:01Z", ALIASES, now=NOW)
    assert isinstance(command, Refresh) and command.at == NOW + timedelta(seconds=1)


def test_refresh_past_time_without_now_is_not_checked() -> None:
    command = parse("refresh staging at 2000-01-01T00:00Z", ALIASES)
    assert isinstance(command, Refresh) and command.at == datetime(2000, 1, 1, tzinfo=UTC)


def test_refresh_naive_now_is_utc() -> None:
    with pytest.raises(UsageError):
        parse("refresh staging at 2030-01-01T11:00Z", ALIASES, now=datetime(2030, 1, 1, 12))


def test_refresh_word_other_than_at() -> None:
    err = error("refresh staging tomorrow")
    assert (err.argument, err.subcommand) == (ARG_AT, "refresh")
    assert "`tomorrow`" in err.message


def test_refresh_invalid_env() -> None:
    assert error("refresh ../x at 2031-01-01T00:00Z").argument == ARG_ENV


# -- escape_mrkdwn and usage ------------------------------------------------------------------


def test_escape_mrkdwn() -> None:
    assert escape_mrkdwn("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape_mrkdwn("&lt;") == "&amp;lt;"
    assert escape_mrkdwn("plain *text*") == "plain *text*"


def test_usage_text_names_every_subcommand_and_the_aliases() -> None:
    text = usage_text(ALIASES)
    for sub in SUBCOMMANDS:
        assert usage_line(sub) in text
    assert "staging" in text and "UAT" in text
    assert_escaped(text)


def test_usage_text_escapes_alias_names() -> None:
    assert_escaped(usage_text({"<!channel>": STAGING}))


def test_usage_text_without_aliases() -> None:
    text = usage_text({})
    assert "none configured" in text
    assert_escaped(text)


# -- button values: jobs ----------------------------------------------------------------------


def test_encode_job_value_is_compact_json() -> None:
    assert encode_job_value(STAGING, JOB) == f'{{"env":"{STAGING}","job":"{JOB}"}}'


def test_job_value_round_trip() -> None:
    assert decode_job_value(encode_job_value(STAGING, JOB)) == (STAGING, JOB)


def test_decode_job_value_accepts_other_json_formatting() -> None:
    assert decode_job_value(f'{{ "job": "{JOB}",  "env": "{STAGING}" }}') == (STAGING, JOB)


@pytest.mark.parametrize("bad", INVALID_IDS)
def test_encode_job_value_refuses_invalid_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="&lt;env&gt;"):
        encode_job_value(bad, JOB)
    with pytest.raises(ValueError, match="&lt;job&gt;"):
        encode_job_value(STAGING, bad)


@pytest.mark.parametrize(
    ("value", "argument"),
    [
        ("", ARG_VALUE),
        ("not json", ARG_VALUE),
        ("[1, 2]", ARG_VALUE),
        ('"a string"', ARG_VALUE),
        ("null", ARG_VALUE),
        ("{}", ARG_VALUE),
        ('{"env": "a"}', ARG_VALUE),
        ('{"env": "a", "job": "b", "x": 1}', ARG_VALUE),
        ('{"env": "a", "job": "b", "job": "c"}', ARG_VALUE),
        ('{"env": "a", "at": null}', ARG_VALUE),
        ('{"env": 1, "job": "b"}', ARG_ENV),
        ('{"env": null, "job": "b"}', ARG_ENV),
        ('{"env": ["a"], "job": "b"}', ARG_ENV),
        ('{"env": "a", "job": NaN}', ARG_VALUE),
        ('{"env": "a", "job": Infinity}', ARG_VALUE),
        ('{"env": "a/../b", "job": "b"}', ARG_ENV),
        ('{"env": "a", "job": "b\\n"}', ARG_JOB),
        ('{"env": "a", "job": "<!channel>"}', ARG_JOB),
        ('{"env": "a", "job": "\\u0661"}', ARG_JOB),  # an Arabic-Indic digit
        ('{"env": "a", "job": "' + "b" * 65 + '"}', ARG_JOB),
        ('{"env": "a", "job": "b"}' + " " * 2000, ARG_VALUE),
        ("[" * 1500 + "]" * 1500, ARG_VALUE),
    ],
)
def test_decode_job_value_rejects(value: str, argument: str) -> None:
    with pytest.raises(UsageError) as info:
        decode_job_value(value)
    assert info.value.argument == argument
    assert_escaped(info.value.message)


def test_decode_job_value_accepts_exactly_2000_characters() -> None:
    value = encode_job_value("a", "b")
    padded = value[:-1] + " " * (2000 - len(value)) + "}"
    assert len(padded) == 2000
    assert decode_job_value(padded) == ("a", "b")
    with pytest.raises(UsageError):
        decode_job_value(value[:-1] + " " * (2001 - len(value)) + "}")


def test_decode_job_value_rejects_non_string() -> None:
    with pytest.raises(UsageError):
        decode_job_value(None)  # type: ignore[arg-type]


# -- button values: refresh -------------------------------------------------------------------


def test_encode_refresh_value() -> None:
    at = datetime(2030, 1, 31, 22, 0, tzinfo=UTC)
    assert encode_refresh_value(STAGING, at) == f'{{"env":"{STAGING}","at":"2030-01-31T22:00:00Z"}}'
    assert encode_refresh_value(STAGING, None) == f'{{"env":"{STAGING}","at":null}}'


def test_encode_refresh_value_writes_utc() -> None:
    at = datetime(2030, 1, 31, 23, 0, tzinfo=timezone(timedelta(hours=1)))
    assert json.loads(encode_refresh_value(STAGING, at))["at"] == "2030-01-31T22:00:00Z"
    naive = datetime(2030, 1, 31, 22, 0)
    assert json.loads(encode_refresh_value(STAGING, naive))["at"] == "2030-01-31T22:00:00Z"


def test_encode_refresh_value_refuses_invalid_env() -> None:
    with pytest.raises(ValueError, match="&lt;env&gt;"):
        encode_refresh_value("<!channel>", None)


def test_refresh_value_round_trip() -> None:
    at = datetime(2030, 1, 31, 22, 0, 5, 123456, tzinfo=UTC)
    assert decode_refresh_value(encode_refresh_value(UAT, at)) == (UAT, at)
    assert decode_refresh_value(encode_refresh_value(UAT, None)) == (UAT, None)


@pytest.mark.parametrize(
    ("value", "argument"),
    [
        ('{"env": "a"}', ARG_VALUE),
        ('{"env": "a", "job": "b"}', ARG_VALUE),
        ('{"env": "a", "at": null, "x": 1}', ARG_VALUE),
        ('{"env": "a/b", "at": null}', ARG_ENV),
        ('{"env": "a", "at": 1893456000}', ARG_TIME),
        ('{"env": "a", "at": "tomorrow"}', ARG_TIME),
        ('{"env": "a", "at": "2030-01-31T22:00:00"}', ARG_TIME),  # naive
        ('{"env": "a", "at": "2030-01-31T23:00:00+01:00"}', ARG_TIME),  # not what we write
        ('{"env": "a", "at": "2030-01-31"}', ARG_TIME),
        ('{"env": "a", "at": ""}', ARG_TIME),
        ('{"env": "a", "at": "2030-01-31T22:00:00Z\\n"}', ARG_TIME),
    ],
)
def test_decode_refresh_value_rejects(value: str, argument: str) -> None:
    with pytest.raises(UsageError) as info:
        decode_refresh_value(value)
    assert info.value.argument == argument
    assert_escaped(info.value.message)


def test_decode_refresh_value_refuses_a_time_that_has_passed() -> None:
    value = encode_refresh_value(STAGING, NOW)
    with pytest.raises(UsageError) as info:
        decode_refresh_value(value, now=NOW)
    assert (info.value.argument, info.value.subcommand) == (ARG_TIME, "refresh")
    # No UTC time quoted (the confirmation it came from shows the time in the reader's zone).
    assert info.value.message == (
        "The time this refresh was scheduled for has passed: ask again with a later time."
    )
    assert decode_refresh_value(value, now=NOW - timedelta(seconds=1)) == (STAGING, NOW)
    assert decode_refresh_value(encode_refresh_value(STAGING, None), now=NOW) == (STAGING, None)


# -- properties -------------------------------------------------------------------------------

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9-]{0,63}\Z")
spaces = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u200b"])
tokens = st.one_of(
    st.sampled_from([*SUBCOMMANDS, "CANCEL", "Refresh", "at", "AT", "staging", "uat", "UAT"]),
    st.sampled_from(["<!channel>", "<@U1>", "&lt;", "&amp;", "“x”", '"', "a/b", "..", "-", "`"]),
    st.sampled_from(["2031-01-01T00:00Z", "2031-01-01", "10:00", "2020-01-01T00:00+01:00"]),
    ids,
    st.text(max_size=12),
)
command_texts = st.lists(st.tuples(tokens, spaces), max_size=6).map(
    lambda parts: "".join(t + s for t, s in parts)
)
texts = st.one_of(st.text(max_size=80), command_texts)
quick = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ids_in(command: Command) -> list[str]:
    found = []
    if isinstance(command, Jobs | Status | Cancel | Refresh):
        found.append(command.env.id)
    if isinstance(command, Status | Cancel):
        found.append(command.job_id)
    return found


@quick
@given(texts)
def test_parse_only_ever_raises_usage_error_and_accepts_only_valid_ids(text: str) -> None:
    try:
        command = parse(text, ALIASES, now=NOW)
    except UsageError as err:
        assert_escaped(err.message)
        return
    for value in ids_in(command):
        assert ID_PATTERN.fullmatch(value)
    if isinstance(command, Refresh) and command.at is not None:
        assert command.at > NOW
        assert command.at.utcoffset() == timedelta(0)


@quick
@given(ids, ids)
def test_cancel_of_any_valid_ids_parses(env: str, job: str) -> None:
    expected_env = resolve_env(env, ALIASES)
    assert parse(f"cancel {env} {job}", ALIASES) == Cancel(expected_env, job)


@quick
@given(ids, ids)
def test_job_value_round_trips(env: str, job: str) -> None:
    value = encode_job_value(env, job)
    assert len(value) <= 2000
    assert decode_job_value(value) == (env, job)


@quick
@given(ids, st.none() | st.datetimes(timezones=st.just(UTC)))
def test_refresh_value_round_trips(env: str, at: datetime | None) -> None:
    assert decode_refresh_value(encode_refresh_value(env, at)) == (env, at)


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=70), ids
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["env", "job", "at", "x", ""]), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[str]) -> str:
    """A valid value with one character inserted, replaced or deleted."""
    value = draw(valid)
    i = draw(st.integers(0, len(value)))
    char = draw(st.characters() | st.sampled_from(list('{}[]",:\\ ')))
    edit = draw(st.sampled_from(["insert", "replace", "delete"]))
    if edit == "insert":
        return value[:i] + char + value[i:]
    if edit == "replace":
        return value[:i] + char + value[i + 1 :]
    return value[:i] + value[i + 1 :]


job_values = st.builds(encode_job_value, ids, ids)
refresh_values = st.builds(
    encode_refresh_value, ids, st.none() | st.datetimes(timezones=st.just(UTC))
)
json_ish = st.one_of(json_values.map(json.dumps), st.text(max_size=60))


@quick
@given(st.one_of(json_ish, mutated(job_values)))
def test_decode_job_value_accepts_only_what_encode_produces(value: str) -> None:
    try:
        env, job = decode_job_value(value)
    except UsageError as err:
        assert_escaped(err.message)
        return
    assert ID_PATTERN.fullmatch(env) and ID_PATTERN.fullmatch(job)
    assert json.loads(value) == json.loads(encode_job_value(env, job))


@quick
@given(st.one_of(json_ish, mutated(refresh_values)))
def test_decode_refresh_value_accepts_only_what_encode_produces(value: str) -> None:
    try:
        env, at = decode_refresh_value(value)
    except UsageError as err:
        assert_escaped(err.message)
        return
    assert ID_PATTERN.fullmatch(env)
    assert json.loads(value) == json.loads(encode_refresh_value(env, at))


def test_refresh_alone_opens_the_form() -> None:
    assert isinstance(parse("refresh", ALIASES), RefreshForm)
    assert isinstance(parse("  REFRESH  ", ALIASES), RefreshForm)
