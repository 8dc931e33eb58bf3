"""Programs outside Python that some tests need (Debian's chromium and redis-server).

On a laptop a missing program skips the tests that need it, with a message saying how to install it.
In CI (`CI=true`, set by CI and by `.ci/run`'s caller) a missing program fails the run instead: a green run
that quietly skipped the browser test would prove nothing.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(available: bool, what: str, how: str) -> pytest.MarkDecorator:
    """A `pytestmark` for tests that need `what`: skip when it is missing, except in CI where the module
    fails to load and so fails the run."""
    if not available and in_ci():
        raise RuntimeError(f"CI needs {what}, which is missing: {how}")
    return pytest.mark.skipif(not available, reason=f"needs {what}: {how}")


def redis_server_path() -> str | None:
    """Where Debian's redis-server is, if it is installed."""
    return shutil.which("redis-server")


def needs_redis_server() -> pytest.MarkDecorator:
    """`require` for tests that start their own Redis (tests/redis_server.py)."""
    return require(
        redis_server_path() is not None,
        "Debian's redis-server",
        "`apt-get install -y redis-server` (the tests start their own, on a free port)",
    )
