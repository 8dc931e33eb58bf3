"""`Zuora-Track-Id`: at most 64 US-ASCII characters, none of `: ; " '`."""

from __future__ import annotations

import re
import uuid

_TRACK_ID = re.compile(r"^[\x20-\x7E]{1,64}$")
_FORBIDDEN = frozenset(":;\"'")
PREFIX = "sandbox-bot-"


class InvalidTrackIdError(ValueError):
    pass


def new_track_id() -> str:
    """A fresh track ID: `sandbox-bot-` and 32 hex digits (44 characters)."""
    return PREFIX + uuid.uuid4().hex


def validate_track_id(value: str) -> str:
    if not _TRACK_ID.fullmatch(value) or _FORBIDDEN.intersection(value):
        raise InvalidTrackIdError(
            "Zuora-Track-Id must be 1 to 64 printable US-ASCII characters without : ; \" or '"
        )
    return value
