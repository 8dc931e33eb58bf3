"""Settings: the one place that reads the environment (and `.env`, through python-dotenv).

Every problem is reported as one line naming the variable; values are never echoed, so a secret pasted into
the wrong variable is not printed either.

Each variable is read by a small rule (`RULES`) rather than by a pydantic model: pydantic's import takes a third
of a bare Bolt app's start-up, and the bot needs it only to read Zuora's first answer (docs/performance.md).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from bot.commands import ID_PATTERN
from bot.coordination import check_url
from bot.secret import Secret

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}$")
ENTITY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# A host name to bind (RFC 1123): dot-separated labels of letters, digits and inner dashes, at most 253 in all.
HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
ACCESS_HELP_MAX = 300  # one sentence in a refusal
EVERY_MEMBER = "*"  # in SANDBOX_VIEWER_USERS: every full member of the installing workspace
DEFAULT_REMIND_BEFORE = (24 * 3600.0, 3600.0)
MAX_REMIND_BEFORE = 30 * 86400.0  # Zuora schedules refreshes weeks ahead at most; a month is plenty
DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
DEFAULT_REDIS_PREFIX = "sandbox-bot:"
REDIS_PREFIX = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 (a server's default: every interface, as in a container)

# Zuora's REST hosts (reference: Zuora's "API endpoints"). Test-environment operations exist only on the
# production tenant's host; the API Sandbox has none, and a Central or Developer Sandbox is the environment
# being refreshed, not the one that refreshes it.
ZUORA_PRODUCTION_HOSTS = (
    "rest.zuora.com",
    "rest.na.zuora.com",
    "rest.eu.zuora.com",
    "rest.ap.zuora.com",
)
ZUORA_API_SANDBOX_HOSTS = (
    "rest.apisandbox.zuora.com",
    "rest.sandbox.na.zuora.com",
    "rest.sandbox.eu.zuora.com",
)
ZUORA_TEST_HOSTS = ("rest.test.zuora.com", "rest.test.eu.zuora.com", "rest.test.ap.zuora.com")

# Each read from one comma-separated variable.
CommaList = tuple[str, ...]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]
Rule = Callable[[Any], Any]


def _check_url(value: str, example: str) -> str:
    try:
        parts = urlsplit(value)
        host, username, password = parts.hostname, parts.username, parts.password
    except ValueError:
        # urlsplit's own messages quote the URL's parts (a bracketed host, say): never shown.
        raise ValueError(f"must be an http(s) URL with a host, e.g. {example}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"must be an http(s) URL with a host, e.g. {example}")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ValueError("must use https (plain http is allowed only for 127.0.0.1/localhost)")
    if username or password:
        raise ValueError("must not contain credentials")
    return value


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def zuora_host_warning(base_url: str) -> str | None:
    """A warning (not an error) when `base_url` is not a known Zuora production REST host, or None.

    Loopback URLs (the simulator of the demo and the tests) get none. The text names only hosts from the
    lists above, never what was configured."""
    host = (urlsplit(base_url).hostname or "").lower().rstrip(".")
    if host in ZUORA_PRODUCTION_HOSTS or _is_loopback(host):
        return None
    known = ", ".join(f"https://{name}" for name in ZUORA_PRODUCTION_HOSTS)
    labels = host.split(".")
    if host in ZUORA_API_SANDBOX_HOSTS or (
        host.endswith(".zuora.com") and ("apisandbox" in labels or "sandbox" in labels)
    ):
        return (
            f"ZUORA_BASE_URL: {host if host in ZUORA_API_SANDBOX_HOSTS else 'this host'} is a Zuora API "
            "Sandbox host, which has no test-environment operations: every command would fail. Use your "
            f"production tenant's REST host, one of {known}."
        )
    if host in ZUORA_TEST_HOSTS or (host.endswith(".zuora.com") and "test" in labels):
        return (
            f"ZUORA_BASE_URL: {host if host in ZUORA_TEST_HOSTS else 'this host'} is a Central or Developer "
            "Sandbox host; test-environment operations live on the production tenant's host, one of "
            f"{known}."
        )
    return (
        "ZUORA_BASE_URL: not a known Zuora production REST host; test-environment operations live on the "
        f"production tenant's host, one of {known}. Ignore this only for a proxy in front of one of them."
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The configuration, validated; `load_settings` reads it from the environment and `.env`."""

    slack_bot_token: Secret | None = None
    slack_signing_secret: Secret | None = None
    slack_app_token: Secret | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = 3000
    host: str = DEFAULT_HOST

    zuora_base_url: str
    zuora_client_id: Secret
    zuora_client_secret: Secret
    zuora_entity_id: str | None = None
    zuora_timeout_seconds: float = 30.0
    zuora_gzip_requests: bool = False
    # The most Zuora requests at once from this replica; Zuora allows 40 per tenant by default, shared by
    # every replica and every other integration of the tenant.
    zuora_max_connections: int = 20

    sandbox_allowed_users: CommaList = ()
    sandbox_allowed_usergroups: CommaList = ()
    sandbox_viewer_users: CommaList = ()
    sandbox_viewer_usergroups: CommaList = ()
    sandbox_access_help: str | None = None
    sandbox_environments: dict[str, str] = field(default_factory=dict)
    sandbox_notify_channel: str | None = None
    sandbox_poll_seconds: float = 20.0
    sandbox_watch_environments: CommaList = ()
    sandbox_watch_seconds: float = 60.0
    # Lead times (seconds, longest first) of the reminders before a scheduled refresh; empty: none.
    sandbox_remind_before: tuple[float, ...] = DEFAULT_REMIND_BEFORE
    sandbox_notify_mention: CommaList = ()
    # May carry a password: shown masked.
    sandbox_redis_url: Secret | None = None
    sandbox_redis_prefix: str = DEFAULT_REDIS_PREFIX

    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    # -- derived ------------------------------------------------------------------------------------------------

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def aliases(self) -> Mapping[str, str]:
        return self.sandbox_environments

    def config_warnings(self) -> list[str]:
        """What is valid but probably wrong, one line each naming the variable: `check` prints these and the
        bot logs them at start; neither stops."""
        warning = zuora_host_warning(self.zuora_base_url)
        return [warning] if warning else []

    def describe(self) -> list[tuple[str, str]]:
        """(VARIABLE, shown value) for `sandbox-bot check`: secrets masked."""
        rows: list[tuple[str, str]] = []
        for name in SETTING_NAMES:
            value = getattr(self, name)
            if name == "sandbox_redis_url" and value is not None:
                shown = redis_location(value)
            elif name == "sandbox_remind_before":
                shown = ", ".join(format_duration(lead) for lead in value) or "(none: no reminders)"
            elif isinstance(value, Secret):
                shown = _mask(value)
            elif value is None or value in ((), {}):
                shown = "(not set)"
            elif isinstance(value, tuple):
                shown = ", ".join(value)
            elif isinstance(value, dict):
                shown = ", ".join(f"{k}={v}" for k, v in value.items())
            else:
                shown = str(value)
            rows.append((name.upper(), shown))
        return rows


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))
REQUIRED: frozenset[str] = frozenset(
    f.name for f in fields(Settings) if f.default is MISSING and f.default_factory is MISSING
)

# -- field rules ----------------------------------------------------------------------------------------------
# Each rule takes a value as read (text from the environment or `.env`, or a typed value given to
# `load_settings`) and returns it parsed, or raises ValueError with what is expected. A message never echoes the
# value: a secret pasted into the wrong variable must not be printed.


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def _secret_text(value: Any) -> str:
    return value.get_secret_value() if isinstance(value, Secret) else _text(value)


WHOLE_NUMBER = re.compile(r"[+-]?[0-9_]+(?:\.0*)?")


def _whole_number(low: int, high: int) -> Rule:
    """An integer in [low, high]; written as text, `3000.0` is one too (pydantic, before, took it)."""
    expected = f"must be a whole number from {low} to {high}"

    def read(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(expected)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            number = value
        else:
            text = _text(value).strip()
            try:
                if not WHOLE_NUMBER.fullmatch(text):
                    raise ValueError(expected)
                number = int(text.split(".", 1)[0])
            except ValueError:
                # int()'s own message would quote the text.
                raise ValueError(expected) from None
        if not low <= number <= high:
            raise ValueError(expected)
        return number

    return read


def _seconds(low: float, high: float, *, above_low: bool = False) -> Rule:
    """A number of seconds in [low, high], or (low, high] with `above_low`."""
    expected = f"must be a number of seconds {'above' if above_low else 'from'} {low:g} {'and at most' if above_low else 'to'} {high:g}"

    def read(value: Any) -> float:
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value)
            else:
                number = float(_text(value).strip())
        except (ValueError, OverflowError):
            raise ValueError(expected) from None
        if not (low < number <= high if above_low else low <= number <= high):
            # NaN fails both comparisons, so it lands here too.
            raise ValueError(expected)
        return number

    return read


TRUE_WORDS = frozenset({"1", "true", "yes", "on", "t", "y"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "f", "n"})


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = _text(value).strip().lower()
    if text in TRUE_WORDS or text in FALSE_WORDS:
        return text in TRUE_WORDS
    raise ValueError("must be true or false")


def _one_of(choices: tuple[str, ...], fold: Callable[[str], str]) -> Rule:
    def read(value: Any) -> str:
        text = fold(_text(value).strip())
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return read


def _comma_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, tuple | list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return tuple(item.strip() for item in _text(value).split(",") if item.strip())


def _token(prefix: str, kind: str) -> Rule:
    """A Slack token starting with `prefix`; blank in .env means not set."""

    def read(value: Any) -> Secret | None:
        text = _secret_text(value)
        if not text.strip():
            return None
        if not text.startswith(prefix):
            raise ValueError(f"must be {kind} starting with {prefix}")
        return Secret(text)

    return read


def _credential(*, required: bool) -> Rule:
    def read(value: Any) -> Secret | None:
        text = _secret_text(value)
        if not text.strip():
            # Blank means unset; the Zuora credentials have no default, so blank is a missing value.
            if required:
                raise ValueError("required")
            return None
        if any(ch.isspace() for ch in text):
            raise ValueError("must not contain white space")
        return Secret(text)

    return read


def _slack_url(value: Any) -> str:
    url = _check_url(_text(value).strip(), "https://slack.com/api/")
    return url if url.endswith("/") else url + "/"


def _host(value: Any) -> str:
    text = _text(value).strip()
    if not text:
        return DEFAULT_HOST  # blank in .env means not set
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if re.fullmatch(r"[0-9.]+", text) or not HOSTNAME.fullmatch(text):
            raise ValueError(
                "must be an IP address to bind (0.0.0.0 for every interface, 127.0.0.1 for this "
                "machine only, :: for every IPv6 interface) or a host name"
            ) from None
    return text


def _zuora_url(value: Any) -> str:
    url = _check_url(_text(value).strip(), "https://rest.zuora.com")
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(
            "must be the host only, without a path, query or fragment: e.g. https://rest.zuora.com, "
            "not https://rest.zuora.com/v1 (the bot adds each operation's path itself)"
        )
    return url.rstrip("/")


def _one_word(pattern: re.Pattern[str], problem: str, *, blank: str | None = None) -> Rule:
    """Text that must match `pattern` whole, once stripped; blank means `blank` (not set, or a default)."""

    def read(value: Any) -> str | None:
        text = _text(value).strip()
        if not text:
            return blank
        if not pattern.fullmatch(text):
            raise ValueError(problem)
        return text

    return read


def _access_help(value: Any) -> str | None:
    text = _text(value).strip()
    if not text:
        return None  # blank in .env means not set: refusals name who holds the permission
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
        raise ValueError("must be one line (no line break or control character)")
    if len(text) > ACCESS_HELP_MAX:
        raise ValueError(
            f"must be one sentence of at most {ACCESS_HELP_MAX} characters ({len(text)} given)"
        )
    return text


def _entries(count: int) -> str:
    return f"{count} entr{'y is' if count == 1 else 'ies are'}"


def _ids(accepts: Callable[[str], bool], expected: str) -> Rule:
    """A comma-separated list whose every entry `accepts`; the problem counts the entries that are not."""

    def read(value: Any) -> tuple[str, ...]:
        items = _comma_list(value)
        bad = sum(1 for item in items if not accepts(item))
        if bad:
            raise ValueError(f"{_entries(bad)} not {expected}")
        return items

    return read


def _is_user(item: str) -> bool:
    return USER_ID.fullmatch(item) is not None


def _is_usergroup(item: str) -> bool:
    return USERGROUP_ID.fullmatch(item) is not None


def _environments(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(alias): str(env_id) for alias, env_id in value.items()}
    aliases: dict[str, str] = {}
    for number, pair in enumerate(
        (p.strip() for p in _text(value).split(",") if p.strip()), start=1
    ):
        alias, sep, env_id = (part.strip() for part in pair.partition("="))
        if not sep:
            raise ValueError(f"entry {number} is not name=<test environment id>")
        if not ALIAS.fullmatch(alias.lower()):
            raise ValueError(
                f"entry {number}: alias must be a letter then letters, digits, - or _ (at most 32)"
            )
        if not ID_PATTERN.fullmatch(env_id):
            # No alias in the message: a pasted secret ending in "=" (base64) would parse as an alias.
            raise ValueError(f"entry {number}: the test environment ID is malformed")
        if alias.lower() in aliases:
            raise ValueError(f"alias {alias.lower()} is given twice")
        aliases[alias.lower()] = env_id
    return aliases


def _remind_before(value: Any) -> tuple[float, ...]:
    given = list(value) if isinstance(value, tuple | list) else _comma_list(value)
    leads = []
    for number, item in enumerate(given, start=1):
        if isinstance(item, int | float) and not isinstance(item, bool):
            # Typed (the demo's): seconds; one too large for a float is out of range like any other.
            seconds: float | None = float(item) if abs(item) <= MAX_REMIND_BEFORE else math.inf
        else:
            seconds = _duration(_text(item))
        if seconds is None:
            raise ValueError(f"entry {number} is not a duration such as 24h, 1h, 15m, 90s or 1d12h")
        if not 0 < seconds <= MAX_REMIND_BEFORE:
            # NaN fails the comparison, so it lands here too.
            raise ValueError(f"entry {number} must be more than 0 and at most 30 days")
        leads.append(seconds)
    return tuple(sorted(set(leads), reverse=True))


def _redis_url(value: Any) -> Secret | None:
    url = _secret_text(value).strip()
    if not url:
        return None  # blank: in-process coordination, one replica
    try:
        check_url(url)  # the store's own rules; its messages never hold the password
    except ValueError:
        raise ValueError(
            "must be a redis:// or rediss:// URL with a host, a numeric port and database, "
            "e.g. redis://redis:6379/0"
        ) from None
    return Secret(url)


RULES: dict[str, Rule] = {
    "slack_bot_token": _token("xoxb-", "a bot token"),
    "slack_signing_secret": _credential(required=False),
    "slack_app_token": _token("xapp-", "an app-level token"),
    "slack_api_url": _slack_url,
    "port": _whole_number(0, 65535),
    "host": _host,
    "zuora_base_url": _zuora_url,
    "zuora_client_id": _credential(required=True),
    "zuora_client_secret": _credential(required=True),
    "zuora_entity_id": _one_word(
        ENTITY_ID, "must be one Zuora entity ID (letters, digits, dashes)"
    ),
    "zuora_timeout_seconds": _seconds(0, 300, above_low=True),
    "zuora_gzip_requests": _flag,
    "zuora_max_connections": _whole_number(1, 200),
    "sandbox_allowed_users": _ids(_is_user, "a Slack user ID (U… or W…)"),
    "sandbox_allowed_usergroups": _ids(_is_usergroup, "a Slack user-group ID (S…)"),
    "sandbox_viewer_users": _ids(
        lambda item: item == EVERY_MEMBER or _is_user(item),
        f"a Slack user ID (U… or W…) or {EVERY_MEMBER} (every full member of the workspace)",
    ),
    "sandbox_viewer_usergroups": _ids(_is_usergroup, "a Slack user-group ID (S…)"),
    "sandbox_access_help": _access_help,
    "sandbox_environments": _environments,
    "sandbox_notify_channel": _one_word(
        CHANNEL_ID, "must be a Slack channel ID (C…, G… or D…), not a channel name"
    ),
    "sandbox_poll_seconds": _seconds(0.05, 3600),
    "sandbox_watch_environments": _comma_list,
    "sandbox_watch_seconds": _seconds(0.05, 86400),
    "sandbox_remind_before": _remind_before,
    "sandbox_notify_mention": _ids(
        lambda item: _is_user(item) or _is_usergroup(item),
        "a Slack user-group ID (S…) or user ID (U… or W…)",
    ),
    "sandbox_redis_url": _redis_url,
    "sandbox_redis_prefix": _one_word(
        REDIS_PREFIX, "must be 1 to 64 letters, digits or _ . : / -", blank=DEFAULT_REDIS_PREFIX
    ),
    "log_level": _one_of(get_args(LogLevel), str.upper),
    "log_format": _one_of(get_args(LogFormat), str.lower),
}


def _cross_problems(settings: Settings) -> list[str]:
    """Problems between variables, looked at once every variable is valid on its own."""
    unknown = [
        item
        for item in settings.sandbox_watch_environments
        if item.lower() != "all"
        and item.lower() not in settings.sandbox_environments
        and not ID_PATTERN.fullmatch(item)
    ]
    if unknown:
        return [
            "SANDBOX_WATCH_ENVIRONMENTS: entries must be aliases from SANDBOX_ENVIRONMENTS, test environment IDs or 'all'"
        ]
    if settings.sandbox_watch_environments and not settings.sandbox_notify_channel:
        return [
            "SANDBOX_WATCH_ENVIRONMENTS: the watch announces jobs in SANDBOX_NOTIFY_CHANNEL, which is not set"
        ]
    return []


def _duration(text: str) -> float | None:
    match = DURATION.fullmatch(text.strip().lower())
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def format_duration(seconds: float) -> str:
    """`86400` -> `1d`, `5400` -> `1h30m`: the form SANDBOX_REMIND_BEFORE is written in."""
    left = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"


def redis_location(url: Secret) -> str:
    """Where Redis is, without its password: `rediss://redis.internal:6380/0 (password set)`."""
    parts = urlsplit(url.get_secret_value())
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    shown = f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
    return shown + (" (password set)" if parts.password else "")


def _mask(secret: Secret) -> str:
    text = secret.get_secret_value()
    prefix = text.split("-", 1)[0] + "-" if text.startswith(("xoxb-", "xapp-")) else ""
    return f"{prefix}*** (set, {len(text)} characters)"


class ConfigError(Exception):
    """Invalid configuration: `problems` holds one line per problem, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"- {p}" for p in problems))


def read_environment(env_file: str | None) -> dict[str, str]:
    """The settings' variables as text: from `env_file` (when it exists), then from the environment, which wins.
    Names are matched whatever their case and given as the fields are named (lower case).

    The fields' validators read lists, maps and lead times from the text; nothing is decoded as JSON. (This
    was pydantic-settings' job; these lines replace about 2 MB and 30 ms of its start-up: docs/performance.md.)"""
    names = frozenset(SETTING_NAMES)
    values: dict[str, str] = {}
    path = Path(env_file).expanduser() if env_file is not None else None
    # A named pipe too: some secret stores mount `.env` as one.
    if path is not None and (path.is_file() or path.is_fifo()):
        # Imported here: a deployment configured by its environment alone never needs it.
        from dotenv import dotenv_values

        for name, value in dotenv_values(path, encoding="utf-8").items():
            if value is not None and name.lower() in names:
                values[name.lower()] = value
    for name, value in os.environ.items():
        if name.lower() in names:
            values[name.lower()] = value
    return values


def _mode_problems(values: Mapping[str, Any], *, demo: bool) -> list[str]:
    """Which Slack credentials are set at all, read leniently so that mode problems are reported together
    with every other problem, even when some value fails validation."""
    if demo:
        return []

    def given(name: str) -> bool:
        value = values.get(name)
        if isinstance(value, Secret):
            value = value.get_secret_value()
        return bool(str(value or "").strip())

    problems = []
    if not given("slack_bot_token"):
        problems.append("SLACK_BOT_TOKEN: required (an xoxb- bot token)")
    if not given("slack_app_token") and not given("slack_signing_secret"):
        problems.append(
            "SLACK_SIGNING_SECRET: required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    return problems


def load_settings(
    *, demo: bool = False, env_file: str | None = ".env", **overrides: Any
) -> Settings:
    """Read and validate the configuration; `ConfigError` lists every problem at once.

    `overrides` take the place of environment variables (keyword names in any case), for the demo and
    tests; `env_file=None` ignores any `.env` file.
    """
    values: dict[str, Any] = {
        **read_environment(env_file),
        **{name.lower(): value for name, value in overrides.items()},
    }
    field_problems: list[str] = []
    parsed: dict[str, Any] = {}
    for name in SETTING_NAMES:
        # An override of None stands for a variable that is not set (the default, whatever the environment says).
        value = values.get(name)
        if value is None:
            if name in REQUIRED:
                field_problems.append(f"{name.upper()}: required")
            continue
        try:
            parsed[name] = RULES[name](value)
        except ValueError as exc:
            field_problems.append(f"{name.upper()}: {exc}")
        except Exception:
            # A rule's own slip (not a ValueError of ours): named, never with an exception that may quote it.
            field_problems.append(f"{name.upper()}: could not be read")
    settings = None if field_problems else Settings(**parsed)
    if settings is not None:
        field_problems = _cross_problems(settings)
    named = {line.split(":", 1)[0] for line in field_problems}
    problems = field_problems + [
        p for p in _mode_problems(values, demo=demo) if p.split(":", 1)[0] not in named
    ]
    if problems or settings is None:
        raise ConfigError(problems)
    return settings
