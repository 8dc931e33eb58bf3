"""Settings: the one place that reads the environment (and `.env`, through python-dotenv).

Every problem is reported as one line naming the variable; values are never echoed, so a secret pasted into
the wrong variable is not printed either.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.commands import ID_PATTERN
from bot.coordination import check_url

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}$")
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

CommaList = tuple[str, ...]  # each read from one comma-separated variable


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _check_url(value: str, example: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, e.g. {example}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("must use https (plain http is allowed only for 127.0.0.1/localhost)")
    if parts.username or parts.password:
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


class Settings(BaseModel):
    """The configuration, validated; `load_settings` reads it from the environment and `.env`."""

    model_config = ConfigDict(extra="ignore", validate_default=True, hide_input_in_errors=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = Field(default=3000, ge=0, le=65535)
    host: str = DEFAULT_HOST

    zuora_base_url: str
    zuora_client_id: SecretStr
    zuora_client_secret: SecretStr
    zuora_entity_id: str | None = None
    zuora_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    zuora_gzip_requests: bool = False
    # The most Zuora requests at once from this replica; Zuora allows 40 per tenant by default, shared by
    # every replica and every other integration of the tenant.
    zuora_max_connections: int = Field(default=20, ge=1, le=200)

    sandbox_allowed_users: CommaList = ()
    sandbox_allowed_usergroups: CommaList = ()
    sandbox_viewer_users: CommaList = ()
    sandbox_viewer_usergroups: CommaList = ()
    sandbox_access_help: str | None = None
    sandbox_environments: dict[str, str] = Field(default_factory=dict)
    sandbox_notify_channel: str | None = None
    sandbox_poll_seconds: float = Field(default=20.0, ge=0.05, le=3600)
    sandbox_watch_environments: CommaList = ()
    sandbox_watch_seconds: float = Field(default=60.0, ge=0.05, le=86400)
    # Lead times (seconds, longest first) of the reminders before a scheduled refresh; empty: none.
    sandbox_remind_before: tuple[float, ...] = DEFAULT_REMIND_BEFORE
    sandbox_notify_mention: CommaList = ()
    sandbox_redis_url: SecretStr | None = None  # may carry a password: shown masked
    sandbox_redis_prefix: str = DEFAULT_REDIS_PREFIX

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # -- field rules ---------------------------------------------------------------------------------------------

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case_insensitive(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None  # blank in .env means not set
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("slack_signing_secret", "zuora_client_id", "zuora_client_secret")
    @classmethod
    def _not_blank(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value()
            if not text.strip():
                # Blank means unset; the Zuora credentials have no default, so blank is a missing value.
                if info.field_name in ("zuora_client_id", "zuora_client_secret"):
                    raise ValueError("required")
                return None
            if text != text.strip() or any(ch.isspace() for ch in text):
                raise ValueError("must not contain white space")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url(cls, value: str) -> str:
        value = _check_url(value.strip(), "https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("host", mode="before")
    @classmethod
    def _host(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
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

    @field_validator("zuora_base_url")
    @classmethod
    def _zuora_url(cls, value: str) -> str:
        value = _check_url(value.strip(), "https://rest.zuora.com")
        parts = urlsplit(value)
        if (
            parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or value.endswith(("?", "#"))
        ):
            raise ValueError(
                "must be the host only, without a path, query or fragment: e.g. https://rest.zuora.com, "
                "not https://rest.zuora.com/v1 (the bot adds each operation's path itself)"
            )
        return value.rstrip("/")

    @field_validator("zuora_entity_id", "sandbox_notify_channel")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("sandbox_access_help")
    @classmethod
    def _access_help(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # blank in .env means not set: refusals name who holds the permission
        text = value.strip()
        if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
            raise ValueError("must be one line (no line break or control character)")
        if len(text) > ACCESS_HELP_MAX:
            raise ValueError(
                f"must be one sentence of at most {ACCESS_HELP_MAX} characters ({len(text)} given)"
            )
        return text

    @field_validator("zuora_entity_id")
    @classmethod
    def _entity(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
            raise ValueError("must be one Zuora entity ID (letters, digits, dashes)")
        return value

    @field_validator(
        "sandbox_allowed_users",
        "sandbox_allowed_usergroups",
        "sandbox_viewer_users",
        "sandbox_viewer_usergroups",
        "sandbox_notify_mention",
        "sandbox_watch_environments",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("sandbox_allowed_users")
    @classmethod
    def _users(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [item for item in value if not USER_ID.fullmatch(item)]
        if bad:
            raise ValueError(
                f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not a Slack user ID (U… or W…)"
            )
        return value

    @field_validator("sandbox_viewer_users")
    @classmethod
    def _viewers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [item for item in value if item != EVERY_MEMBER and not USER_ID.fullmatch(item)]
        if bad:
            raise ValueError(
                f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not a Slack user ID (U… or W…) "
                f"or {EVERY_MEMBER} (every full member of the workspace)"
            )
        return value

    @field_validator("sandbox_notify_mention")
    @classmethod
    def _mentions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [
            item for item in value if not (USER_ID.fullmatch(item) or USERGROUP_ID.fullmatch(item))
        ]
        if bad:
            raise ValueError(
                f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not a Slack user-group ID (S…) "
                "or user ID (U… or W…)"
            )
        return value

    @field_validator("sandbox_remind_before", mode="before")
    @classmethod
    def _remind_before(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        leads: list[float] = []
        for number, item in enumerate(_split(value), start=1):
            seconds = _duration(item)
            if seconds is None:
                raise ValueError(
                    f"entry {number} is not a duration such as 24h, 1h, 15m, 90s or 1d12h"
                )
            if not 0 < seconds <= MAX_REMIND_BEFORE:
                raise ValueError(f"entry {number} must be more than 0 and at most 30 days")
            leads.append(seconds)
        return tuple(sorted(set(leads), reverse=True))

    @field_validator("sandbox_redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # blank: in-process coordination, one replica
        url = value.get_secret_value().strip()
        try:
            check_url(url)  # the store's own rules; its messages never hold the password
        except ValueError:
            raise ValueError(
                "must be a redis:// or rediss:// URL with a host, a numeric port and database, "
                "e.g. redis://redis:6379/0"
            ) from None
        return SecretStr(url)

    @field_validator("sandbox_redis_prefix")
    @classmethod
    def _redis_prefix(cls, value: str) -> str:
        text = value.strip()
        if not text:
            return DEFAULT_REDIS_PREFIX
        if not REDIS_PREFIX.fullmatch(text):
            raise ValueError("must be 1 to 64 letters, digits or _ . : / -")
        return text

    @field_validator("sandbox_allowed_usergroups", "sandbox_viewer_usergroups")
    @classmethod
    def _groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [item for item in value if not USERGROUP_ID.fullmatch(item)]
        if bad:
            raise ValueError(
                f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not a Slack user-group ID (S…)"
            )
        return value

    @field_validator("sandbox_notify_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not CHANNEL_ID.fullmatch(value):
            raise ValueError("must be a Slack channel ID (C…, G… or D…), not a channel name")
        return value

    @field_validator("sandbox_environments", mode="before")
    @classmethod
    def _environments(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        aliases: dict[str, str] = {}
        for number, pair in enumerate((p.strip() for p in value.split(",") if p.strip()), start=1):
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

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        unknown = [
            item
            for item in self.sandbox_watch_environments
            if item.lower() != "all"
            and item.lower() not in self.sandbox_environments
            and not ID_PATTERN.fullmatch(item)
        ]
        if unknown:
            raise ValueError(
                "SANDBOX_WATCH_ENVIRONMENTS: entries must be aliases from SANDBOX_ENVIRONMENTS, test environment IDs or 'all'"
            )
        if self.sandbox_watch_environments and not self.sandbox_notify_channel:
            raise ValueError(
                "SANDBOX_WATCH_ENVIRONMENTS: the watch announces jobs in SANDBOX_NOTIFY_CHANNEL, which is not set"
            )
        return self

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
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "sandbox_redis_url" and value is not None:
                shown = redis_location(value)
            elif name == "sandbox_remind_before":
                shown = ", ".join(format_duration(lead) for lead in value) or "(none: no reminders)"
            elif isinstance(value, SecretStr):
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


def redis_location(url: SecretStr) -> str:
    """Where Redis is, without its password: `rediss://redis.internal:6380/0 (password set)`."""
    parts = urlsplit(url.get_secret_value())
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    shown = f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
    return shown + (" (password set)" if parts.password else "")


def _mask(secret: SecretStr) -> str:
    text = secret.get_secret_value()
    prefix = text.split("-", 1)[0] + "-" if text.startswith(("xoxb-", "xapp-")) else ""
    return f"{prefix}*** (set, {len(text)} characters)"


class ConfigError(Exception):
    """Invalid configuration: `problems` holds one line per problem, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"- {p}" for p in problems))


def _describe_error(error: Mapping[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ())]
    variable = location[0].upper() if location else "configuration"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if error.get("type") == "missing":
        message = "required"
    if not location and ":" in message:
        return message
    return f"{variable}: {message}"


def read_environment(env_file: str | None) -> dict[str, str]:
    """The settings' variables as text: from `env_file` (when it exists), then from the environment, which wins.
    Names are matched whatever their case and given as the fields are named (lower case).

    The fields' validators read lists, maps and lead times from the text; nothing is decoded as JSON. (This
    was pydantic-settings' job; these lines replace about 2 MB and 30 ms of its start-up: docs/performance.md.)"""
    names = Settings.model_fields.keys()
    values: dict[str, str] = {}
    path = Path(env_file).expanduser() if env_file is not None else None
    # A named pipe too: some secret stores mount `.env` as one.
    if path is not None and (path.is_file() or path.is_fifo()):
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
        if isinstance(value, SecretStr):
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
    problems = _mode_problems(values, demo=demo)
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        field_problems = [_describe_error(error) for error in exc.errors()]
        named = {line.split(":", 1)[0] for line in field_problems}
        problems = field_problems + [p for p in problems if p.split(":", 1)[0] not in named]
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return settings
