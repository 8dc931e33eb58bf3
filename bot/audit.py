"""One audit record per Zuora action and per refusal, on the `sandbox_bot.audit` logger."""

from __future__ import annotations

import logging
from typing import Any

audit_log = logging.getLogger("sandbox_bot.audit")


def record(event: str, *, user: str, allowed: bool = True, **fields: Any) -> None:
    """`event` is e.g. "cancel", "refused"; fields are IDs, statuses and track IDs: never secrets or free text."""
    audit_log.info(
        event, extra={"audit": True, "event": event, "user": user, "allowed": allowed, **fields}
    )
