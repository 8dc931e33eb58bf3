"""Validating what the bot builds with slack_sdk's Block Kit models, plus the limits they do not check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import Block

MAX_BLOCKS = 50


def assert_valid_blocks(blocks: Sequence[Mapping[str, Any]]) -> None:
    assert 0 < len(blocks) <= MAX_BLOCKS, f"{len(blocks)} blocks"
    for raw in blocks:
        parsed = Block.parse(dict(raw))
        assert parsed is not None, f"unknown block type {raw.get('type')}"
        parsed.to_dict()  # raises SlackObjectFormationError on limits slack_sdk knows
        for field in raw.get("fields") or []:
            assert len(field["text"]) <= 2000
        assert len(raw.get("fields") or []) <= 10
