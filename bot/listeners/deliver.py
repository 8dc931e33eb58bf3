"""Delivering an operation's outcome: each kind of outcome to its place, matched exhaustively."""

from __future__ import annotations

import logging
from typing import assert_never

from bot.job_cards import JobCards
from bot.outcomes import (
    JobActed,
    JobLooked,
    NeedsConfirmation,
    Outcome,
    Refused,
    Told,
    ZuoraFailed,
)
from bot.slack_surface import Origin, SlackSurface

log = logging.getLogger(__name__)


async def deliver(
    outcome: Outcome, *, origin: Origin, slack: SlackSurface, cards: JobCards
) -> None:
    """Show the outcome to the user; job cards (and the records an action leaves) are `JobCards`'s."""
    match outcome:
        case Told(message=message, replace=True):
            await slack.reply(origin, message, replace_original=True)
        case Told(message=message) | NeedsConfirmation(message=message) | Refused(message=message):
            await slack.reply(origin, message)
        case ZuoraFailed(message=message, audit=audit, then=then):
            try:
                await slack.reply(origin, message)
            finally:
                if audit is not None:
                    await cards.record(audit)
                if then is not None:
                    await cards.present(then, origin)
        case JobLooked() | JobActed():
            await cards.present(outcome, origin)
        case _:
            assert_never(outcome)
