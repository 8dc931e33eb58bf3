"""Message content checks the Slack emulator applies like Slack does (`invalid_blocks` and friends).

Block Kit is validated with slack_sdk's own models, plus the limits they do not check (50 blocks
per message, 2000 characters per section field).
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

MAX_BLOCKS = 50
MAX_TEXT = 40_000
MAX_SECTION_FIELD = 2_000


class ContentError(Exception):
    """A Slack error code with optional detail messages (`errors` in Slack's response)."""

    def __init__(self, error: str, details: list[str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.details = details or []


def decode_json_field(value: Any, error: str) -> Any:
    """Form and query transports send nested objects as JSON strings; JSON bodies do not."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ContentError(error, ["could not parse JSON"]) from exc
    return value


def check_blocks(value: Any) -> list[dict[str, Any]]:
    """Return the blocks as a list, or raise `invalid_blocks` the way Slack reports it."""
    blocks = decode_json_field(value, "invalid_blocks")
    if not isinstance(blocks, list):
        raise ContentError("invalid_blocks", ["must be an array [json-pointer:/blocks]"])
    if len(blocks) > MAX_BLOCKS:
        raise ContentError(
            "invalid_blocks", [f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"]
        )
    errors: list[str] = []
    for index, block in enumerate(blocks):
        errors.extend(_block_errors(index, block))
    if errors:
        raise ContentError("invalid_blocks", errors)
    return blocks


def _block_errors(index: int, block: Any) -> list[str]:
    pointer = f"[json-pointer:/blocks/{index}]"
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return [f"must be an object with a type {pointer}"]
    try:
        parsed = Block.parse(block)
        if parsed is None:
            return [f"unsupported type `{block['type']}` {pointer}"]
        parsed.to_dict()  # runs slack_sdk's limit checks
    except SlackObjectFormationError as exc:
        return [f"{exc} {pointer}"]
    except (KeyError, TypeError, ValueError) as exc:
        return [f"malformed block ({type(exc).__name__}) {pointer}"]
    errors = []
    if block["type"] == "section":
        for number, item in enumerate(block.get("fields") or []):
            text = item.get("text", "") if isinstance(item, dict) else ""
            if len(text) > MAX_SECTION_FIELD:
                errors.append(
                    f"must be less than {MAX_SECTION_FIELD + 1} characters "
                    f"[json-pointer:/blocks/{index}/fields/{number}/text]"
                )
    return errors


def check_attachments(value: Any) -> list[dict[str, Any]]:
    attachments = decode_json_field(value, "invalid_attachments")
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise ContentError("invalid_attachments")
    return attachments


def check_metadata(value: Any) -> dict[str, Any]:
    metadata = decode_json_field(value, "invalid_metadata_format")
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not isinstance(metadata.get("event_payload"), dict)
    ):
        raise ContentError("invalid_metadata_format")
    return metadata


def check_text(value: Any) -> str:
    text = "" if value is None else str(value)
    if len(text) > MAX_TEXT:
        raise ContentError("msg_too_long")
    return text
