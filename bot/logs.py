"""Logging: text or JSON lines, with secrets scrubbed from every record as a last line of defence."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

# Slack tokens and bearer credentials, wherever they might show up in a message or a traceback.
_TOKEN_PATTERNS = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+)"
)
# A response_url lets anyone post into the conversation for 30 minutes: as good as a short-lived token. Its
# secret part is the path after `commands/` or `actions/`, also when JSON escapes the slashes (`\/`).
_RESPONSE_URLS = re.compile(r"https:(?:\\?/){2}hooks\.slack\.com(?:\\?/[^\s\"'\\/]+)+")
_RESPONSE_URL_PATHS = re.compile(r"((?:commands|actions)\\?/)T[A-Z0-9]+\\?/\d+\\?/[A-Za-z0-9]+")
# Socket Mode's WebSocket URL carries a ticket that opens the app's connection.
_TICKETS = re.compile(r"(ticket=)[A-Za-z0-9._~%-]+")
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _RESPONSE_URLS.sub("https://hooks.slack.com/***", text)
        text = _RESPONSE_URL_PATHS.sub(r"\1***", text)
        text = _TICKETS.sub(r"\1***", text)
        return _TOKEN_PATTERNS.sub(lambda m: m.group(0).split("-", 1)[0].split()[0] + " ***", text)


class RedactingFilter(logging.Filter):
    """Scrubs every record before any handler formats it: its message (arguments applied), its exception
    text and its string extras. On the root handler, so no line leaves unredacted, whatever logged it
    (Bolt's DEBUG envelopes included) and at any level."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, self._redact(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD_ATTRS and not k.startswith("_")
    }


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return self._redact(line)


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure(
    level: str = "INFO",
    fmt: str = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Log to `stream` (standard error by default) in `fmt`, every line redacted."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redact))
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log adds a line per request; keep it at WARNING unless debugging.
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    logging.getLogger("aiohttp.access").setLevel(quiet)
    # httpx logs every request at INFO; the Zuora client already logs each call with its track ID.
    logging.getLogger("httpx").setLevel(quiet)
