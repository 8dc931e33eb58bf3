"""Logging: text and JSON lines, with configured secrets and any Slack or bearer token scrubbed everywhere."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from bot.logs import JsonFormatter, Redactor, TextFormatter, configure

ZUORA_SECRET = "zuora-client-secret-never-logged"
SIGNING_SECRET = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
UNKNOWN_BOT_TOKEN = "xoxb-999-888-unknownBotToken"  # not configured: caught by its shape
UNKNOWN_APP_TOKEN = "xapp-1-A999-777-unknownAppToken"
BEARER = "eyJhbGciOi.J9payload.sig-nature_x"
LEAKS = (ZUORA_SECRET, SIGNING_SECRET, UNKNOWN_BOT_TOKEN, UNKNOWN_APP_TOKEN, BEARER)


@pytest.fixture
def redact() -> Redactor:
    return Redactor([ZUORA_SECRET, SIGNING_SECRET])


def record(
    msg: str = "hello %s",
    args: tuple[object, ...] = ("world",),
    *,
    exc: bool = False,
    **extra: object,
) -> logging.LogRecord:
    """A record as `logger.info(msg, *args, extra=extra, exc_info=exc)` would make it."""
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"token request failed for {ZUORA_SECRET} with {UNKNOWN_BOT_TOKEN}")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.getLogger("bot.test").makeRecord(
        "bot.test", logging.INFO, __file__, 1, msg, args, exc_info, extra=extra
    )


def assert_no_leak(text: str) -> None:
    for secret in LEAKS:
        assert secret not in text


# -- Redactor -------------------------------------------------------------------------------------------------


def test_redactor_removes_configured_secrets(redact: Redactor) -> None:
    out = redact(f"id=abc secret={ZUORA_SECRET} sig={SIGNING_SECRET}.")
    assert out == "id=abc secret=*** sig=***."


@pytest.mark.parametrize(
    "token", [UNKNOWN_BOT_TOKEN, UNKNOWN_APP_TOKEN, "xoxp-1-user-token", f"Bearer {BEARER}"]
)
def test_redactor_removes_token_shapes_it_was_not_told_about(token: str) -> None:
    out = Redactor()(f"calling with {token} now")
    assert token.split()[-1] not in out
    assert out.startswith("calling with ")
    assert out.endswith("*** now")


def test_redactor_prefers_the_longest_secret() -> None:
    """A secret that contains another is removed whole, leaving no tail behind."""
    out = Redactor(["abcd1234", "abcd1234-tail"])("x abcd1234-tail y abcd1234 z")
    assert out == "x *** y *** z"


# -- formatters -----------------------------------------------------------------------------------------------


def test_text_formatter_scrubs_message_args_extras_and_traceback(redact: Redactor) -> None:
    rec = record(
        "auth failed: %s",
        (f"Authorization: Bearer {BEARER}",),
        exc=True,
        usergroup="S0PLATFORM",
        body=f"client_secret={ZUORA_SECRET}&x={UNKNOWN_APP_TOKEN}",
    )
    line = TextFormatter(redact).format(rec)
    assert_no_leak(line)
    assert "INFO bot.test: auth failed: Authorization: Bearer ***" in line
    assert "usergroup=S0PLATFORM" in line
    assert "body=client_secret=***" in line
    assert "Traceback" in line and "RuntimeError: token request failed for ***" in line


def test_json_lines_parse_with_extras_as_keys(redact: Redactor) -> None:
    rec = record(track_id="abc-123", status=404, details={"env": "c0ffee01"})
    entry = json.loads(JsonFormatter(redact).format(rec))
    assert entry["message"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "bot.test"
    assert entry["time"].endswith("+00:00")
    assert entry["track_id"] == "abc-123"
    assert entry["status"] == 404
    assert entry["details"] == {"env": "c0ffee01"}
    assert "exception" not in entry
    assert "args" not in entry and "msg" not in entry  # standard record attributes are not extras


def test_json_formatter_scrubs_message_extras_and_traceback(redact: Redactor) -> None:
    rec = record(
        "token %s",
        (UNKNOWN_BOT_TOKEN,),
        exc=True,
        header=f"Bearer {BEARER}",
        form={"client_secret": ZUORA_SECRET, "signing": SIGNING_SECRET},
    )
    line = JsonFormatter(redact).format(rec)
    assert "\n" not in line  # one record, one line, even with a traceback
    assert_no_leak(line)
    entry = json.loads(line)
    assert entry["message"] == "token xoxb ***"
    assert entry["header"] == "Bearer ***"
    assert entry["form"] == {"client_secret": "***", "signing": "***"}
    assert "RuntimeError: token request failed for ***" in entry["exception"]


# -- configure ------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_configure_json_writes_scrubbed_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", "json", secrets=[ZUORA_SECRET])
    log = logging.getLogger("bot.configured")
    log.debug("not shown")
    log.info("secret is %s", ZUORA_SECRET, extra={"operation": "createToken"})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "secret is ***"
    assert entry["operation"] == "createToken"


@pytest.mark.usefixtures("restore_logging")
def test_configure_replaces_handlers_and_sets_levels(capsys: pytest.CaptureFixture[str]) -> None:
    configure("WARNING", "text")
    configure("DEBUG", "text", secrets=[SIGNING_SECRET])
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert isinstance(root.handlers[0].formatter, TextFormatter)
    assert root.level == logging.DEBUG
    assert logging.getLogger("aiohttp.access").level == logging.DEBUG
    logging.getLogger("bot.configured").debug("sig %s", SIGNING_SECRET)
    err = capsys.readouterr().err
    assert "DEBUG bot.configured: sig ***" in err
    assert SIGNING_SECRET not in err

    configure("INFO", "text")
    assert logging.getLogger("aiohttp.access").level == logging.WARNING
    assert (
        logging.getLogger("httpx").level == logging.WARNING
    )  # the Zuora client logs each call itself


def test_response_urls_are_redacted() -> None:
    from bot.logs import Redactor

    redact = Redactor()
    text = redact("posting to https://hooks.slack.com/actions/T0/1234/AbCdEf for U1")
    assert "AbCdEf" not in text and "https://hooks.slack.com/***" in text and "U1" in text
