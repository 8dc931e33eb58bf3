"""Delivering an operation's outcome: each kind of outcome to its place, matched exhaustively."""

from __future__ import annotations

import logging
from typing import assert_never

from bot import blocks
from bot.home import HomeTab
from bot.job_cards import JobCards
from bot.outcomes import (
    JobActed,
    JobLooked,
    NeedsConfirmation,
    OpensForm,
    Outcome,
    Refused,
    Told,
    ZuoraFailed,
)
from bot.refresh_form import RefreshForms
from bot.slack_surface import Origin, SlackSurface

log = logging.getLogger(__name__)


async def deliver(
    outcome: Outcome,
    *,
    origin: Origin,
    slack: SlackSurface,
    cards: JobCards,
    forms: RefreshForms | None = None,
    home: HomeTab | None = None,
) -> None:
    """Show the outcome to the user; job cards (and the records an action leaves) are `JobCards`'s. After a
    click on the user's App Home tab, the tab is published again with the new state."""
    try:
        await _deliver(outcome, origin=origin, slack=slack, cards=cards, forms=forms)
    finally:
        if origin.home and home is not None and origin.user_id:
            await home.publish(origin.user_id, fresh=True)


async def _deliver(
    outcome: Outcome,
    *,
    origin: Origin,
    slack: SlackSurface,
    cards: JobCards,
    forms: RefreshForms | None,
) -> None:
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
        case OpensForm():
            if forms is None or not (origin.trigger_id and origin.user_id):
                await slack.reply(origin, blocks.form_unavailable())
            else:
                await forms.open(origin.user_id, origin.trigger_id, channel=origin.channel_id)
        case _:
            assert_never(outcome)
