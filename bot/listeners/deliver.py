"""Delivering an operation's outcome: each kind of outcome to its place, matched exhaustively."""

from __future__ import annotations

import logging
from typing import assert_never

from slack_bolt.async_app import AsyncRespond

from bot.job_cards import JobCards, Origin
from bot.outcomes import (
    JobActed,
    JobLooked,
    NeedsConfirmation,
    Outcome,
    Refused,
    Told,
    ZuoraFailed,
)

log = logging.getLogger(__name__)


async def deliver(
    outcome: Outcome, *, respond: AsyncRespond, origin: Origin, cards: JobCards
) -> None:
    """Show the outcome to the user; job cards (and the records an action leaves) are `JobCards`'s."""
    match outcome:
        case Told(message=message, replace=True):
            await respond(replace_original=True, **message.as_kwargs())
        case Told(message=message) | NeedsConfirmation(message=message) | Refused(message=message):
            await respond(response_type="ephemeral", replace_original=False, **message.as_kwargs())
        case ZuoraFailed(message=message, audit=audit, then=then):
            try:
                await respond(
                    response_type="ephemeral", replace_original=False, **message.as_kwargs()
                )
            finally:
                if audit is not None:
                    await cards.record(audit)
                if then is not None:
                    await cards.present(then, origin)
        case JobLooked() | JobActed():
            await cards.present(outcome, origin)
        case _:
            assert_never(outcome)
