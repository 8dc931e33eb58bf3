"""The one backoff rule of the bot's loops (the environment pollers and the watch): after `failures` failed
rounds in a row, wait `interval * 2**failures`, at most `ceiling`; after a success, `interval` again."""

from __future__ import annotations


def next_delay(interval: float, failures: int, ceiling: float) -> float:
    if failures <= 0:
        return interval
    return float(min(interval * 2**failures, max(ceiling, interval)))
