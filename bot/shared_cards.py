"""What the replicas share about job cards, through the coordination store.

- **The notification card of each job** (channel, ts and what it shows): a replica that did not post it edits it
  instead of posting a second one, and only one replica posts a new one (a short claim; the others wait for its
  card).
- **The followed jobs and their channel cards**: whichever replica leads keeps every card current, also the
  cards a replica that died had posted.

Without Redis the store is this process's own and all of it is cheap bookkeeping. Every method that only
informs others swallows `CoordinationUnavailable` (logged): the local state still works, and the next write
brings the store up to date.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

from bot.coordination import CoordinationUnavailable, Store
from bot.notification_channel import CardRef, Key

log = logging.getLogger(__name__)

# A card's reference outlives any job it follows: refreshes are scheduled weeks ahead at most, and a job is
# followed a day past its scheduled time.
CARD_TTL = 45 * 86400.0
NEW_CARD_CLAIM = 30.0  # seconds one replica has to post a job's first notification card
WAIT_FOR_CARD = 5.0  # how long the others wait for that card before posting one themselves
WAIT_STEP = 0.1


def _key(kind: str, key: Key) -> str:
    return f"{kind}:{key[0]}:{key[1]}"


def _parse_key(text: str) -> Key | None:
    env_id, sep, job_id = text.partition(":")
    return (env_id, job_id) if sep and env_id and job_id else None


class SharedCards:
    def __init__(self, store: Store) -> None:
        self._store = store

    # -- the notification card ----------------------------------------------------------------------------------

    async def card(self, key: Key) -> CardRef | None:
        """The job's notification card as the replicas last showed it. Raises `CoordinationUnavailable`."""
        text = await self._store.get(_key("card", key))
        return _card_from(text) if text else None

    async def remember_card(self, key: Key, card: CardRef) -> None:
        try:
            await self._store.put(_key("card", key), _card_json(card), CARD_TTL)
        except CoordinationUnavailable:
            log.warning(
                "a notification card is not shared with the other replicas", extra={"job": key[1]}
            )

    async def may_post(self, key: Key) -> CardRef | bool:
        """Whether this replica may post the job's first notification card: True, or the card another
        replica posted meanwhile (waited for a few seconds), or False when it is still not there (post it:
        a second card is better than none)."""
        try:
            if await self._store.claim(_key("new-card", key), NEW_CARD_CLAIM):
                return True
        except CoordinationUnavailable:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_CARD
        while loop.time() < deadline:
            card = await self.card(key)
            if card is not None:
                return card
            await asyncio.sleep(WAIT_STEP)
        return False

    # -- the followed jobs ----------------------------------------------------------------------------------------

    async def follow(self, key: Key, record: dict[str, Any], ttl: float) -> None:
        """Record a followed job and its cards, merged with what other replicas recorded of it (their cards
        stay; a card whose ts changed replaces the old one, named in `replaced`)."""
        try:
            text_key = f"{key[0]}:{key[1]}"
            before = (await self._store.followed()).get(text_key)
            if before:
                record = _merged(json.loads(before), record)
            await self._store.follow(text_key, json.dumps(record), max(ttl, 1.0))
        except (CoordinationUnavailable, ValueError):
            log.warning(
                "a followed job is not shared with the other replicas", extra={"job": key[1]}
            )

    async def unfollow(self, key: Key) -> None:
        try:
            await self._store.unfollow(f"{key[0]}:{key[1]}")
        except CoordinationUnavailable:
            log.warning(
                "an ended job stays in the shared list until it expires", extra={"job": key[1]}
            )

    async def followed(self) -> dict[Key, dict[str, Any]]:
        """Every job some replica follows, with what it recorded. Raises `CoordinationUnavailable`."""
        found: dict[Key, dict[str, Any]] = {}
        for text_key, text in (await self._store.followed()).items():
            key = _parse_key(text_key)
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if key is not None and isinstance(record, dict):
                found[key] = record
        return found


def _merged(before: Any, record: dict[str, Any]) -> dict[str, Any]:
    """`record` with the cards `before` had and `record` does not replace."""
    if not isinstance(before, dict):
        return record
    replaced = {tuple(r) for r in record.get("replaced", []) if isinstance(r, list | tuple)}
    replaced |= {tuple(r) for r in before.get("replaced", []) if isinstance(r, list | tuple)}
    cards = {
        (c.get("channel"), c.get("ts")): c for c in before.get("cards", []) if isinstance(c, dict)
    }
    cards.update({(c["channel"], c["ts"]): c for c in record.get("cards", [])})
    kept = [c for k, c in cards.items() if k not in replaced]
    return {**record, "cards": kept, "replaced": [list(r) for r in sorted(replaced)][-50:]}


def _card_json(card: CardRef) -> str:
    return json.dumps(
        {
            "channel": card.channel,
            "ts": card.ts,
            "status": card.status,
            "progress": card.progress,
            "note": card.note,
            "requested_by": card.requested_by,
            "updated": card.updated.isoformat() if card.updated else None,
            "scheduled": card.scheduled.isoformat() if card.scheduled else None,
        }
    )


def _card_from(text: str) -> CardRef | None:
    try:
        data = json.loads(text)
        return CardRef(
            channel=str(data["channel"]),
            ts=str(data["ts"]),
            status=data.get("status"),
            progress=data.get("progress"),
            note=data.get("note"),
            requested_by=data.get("requested_by"),
            updated=datetime.fromisoformat(data["updated"]) if data.get("updated") else None,
            scheduled=datetime.fromisoformat(data["scheduled"]) if data.get("scheduled") else None,
        )
    except (ValueError, KeyError, TypeError):
        return None
