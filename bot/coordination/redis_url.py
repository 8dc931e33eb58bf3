"""Redis URLs for the coordination store: the rules a usable one follows, and how one is shown without its
password. Apart from `redis_store` (and the redis package it loads), so that settings can be checked, and a bot
without Redis started, without loading the Redis client."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_PREFIX = "sandbox-bot:"
DEFAULT_TIMEOUT = 2.0  # seconds: the most one operation takes before CoordinationUnavailable
SCHEMES = ("redis", "rediss")


def redact_url(url: str) -> str:
    """A Redis URL that is safe to show: scheme, host, port and database; no user, password or query."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    path = parts.path if parts.path not in ("", "/") else "/0"
    return f"{parts.scheme}://{host}{path}"


def secrets_of(url: str) -> tuple[str, ...]:
    """The password of `url` (from its userinfo or a `password` query argument), raw and decoded."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    found = [userinfo.partition(":")[2]] if ":" in userinfo else []
    found += [value for name, value in parse_qsl(parts.query) if name == "password"]
    return tuple({form for raw in found for form in (raw, unquote(raw)) if form})


def check_url(url: str) -> None:
    """ValueError, with a message that holds no password, unless `url` is a usable redis:// or rediss:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"a Redis URL starts with redis:// or rediss://, not {parts.scheme or 'nothing'}:"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the port of the Redis URL {redact_url(url)} is not a number") from None
    if not parts.hostname:
        raise ValueError("the Redis URL names no host")
    if port == 0:
        raise ValueError(f"the port of the Redis URL {redact_url(url)} is 0")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError(f"the database of the Redis URL {redact_url(url)} is not a number")
