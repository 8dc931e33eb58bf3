"""Clocks for the simulators: real time for demos, manual time for tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

DEFAULT_MANUAL_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock(Protocol):
    """Anything that tells the simulated time (always timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, or with ``speed`` running that many times faster from the moment it is made.

    The demo keeps ``speed`` 1 so that every time it shows is real: its Zuora simulator shortens the
    job stages instead (``ZuoraSimulator(speed=...)``).
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = start or datetime.now(UTC)
        self._anchor = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._anchor) * self.speed
        return self._start + timedelta(seconds=elapsed)


class ManualClock:
    """A clock that moves only when told to: deterministic tests of time-driven behaviour."""

    def __init__(self, start: datetime = DEFAULT_MANUAL_START) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds`` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``, which must not be earlier than the current time."""
        if when < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = when
