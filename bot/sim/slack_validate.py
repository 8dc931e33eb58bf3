"""Content checks the Slack emulator applies like Slack does (`invalid_blocks`, `invalid_arguments`).

Block Kit is validated with slack_sdk's own models, plus the limits they do not check (50 blocks
per message, 100 per view, 2000 characters per section field). Views (modals and Home tabs) are
checked against the limits of Slack's view object: a title of at most 24 characters, `submit` and
`close` likewise, `private_metadata` of at most 3000, `callback_id` and `external_id` of at most 255,
a `submit` button whenever the modal has input blocks, unique block_ids, 250 kB in all.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

MAX_BLOCKS = 50
MAX_TEXT = 40_000
MAX_SECTION_FIELD = 2_000
MAX_VIEW_BLOCKS = 100
MAX_VIEW_BUTTON = 24  # title, submit and close
MAX_PRIVATE_METADATA = 3_000
MAX_VIEW_ID_FIELD = 255  # callback_id, external_id
MAX_VIEW_BYTES = 250_000


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


def _block_errors(index: int, block: Any, at: str = "/blocks") -> list[str]:
    pointer = f"[json-pointer:{at}/{index}]"
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
                    f"[json-pointer:{at}/{index}/fields/{number}/text]"
                )
    return errors


def check_view(value: Any, kinds: frozenset[str]) -> dict[str, Any]:
    """Return the view (a JSON string or an object) as a dict, or raise `invalid_arguments` with one
    message per problem, each naming its place (`[json-pointer:/view/...]`) as Slack does;
    `view_too_large` over 250 kB. `kinds`: the view types the method takes (`home`, `modal`)."""
    view = decode_json_field(value, "invalid_arguments")
    if not isinstance(view, dict):
        raise ContentError("invalid_arguments", ["must be an object [json-pointer:/view]"])
    if len(json.dumps(view, separators=(",", ":")).encode()) > MAX_VIEW_BYTES:
        raise ContentError("view_too_large")
    kind = view.get("type")
    if kind not in kinds:
        wanted = " or ".join(f"`{k}`" for k in sorted(kinds))
        raise ContentError("invalid_arguments", [f"must be {wanted} [json-pointer:/view/type]"])
    errors = _view_block_errors(view.get("blocks"))
    if kind == "modal":
        errors.extend(_button_errors(view, "title", required=True))
        errors.extend(_button_errors(view, "submit"))
        errors.extend(_button_errors(view, "close"))
        given = view.get("blocks")
        blocks: list[Any] = given if isinstance(given, list) else []
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if has_input and not view.get("submit"):
            errors.append(
                "a view with input blocks must have a submit button [json-pointer:/view/submit]"
            )
    else:
        for name in ("submit", "close"):
            if name in view:
                errors.append(f"not allowed in a {kind} view [json-pointer:/view/{name}]")
    errors.extend(_string_errors(view, "private_metadata", MAX_PRIVATE_METADATA))
    errors.extend(_string_errors(view, "callback_id", MAX_VIEW_ID_FIELD))
    errors.extend(_string_errors(view, "external_id", MAX_VIEW_ID_FIELD))
    for name in ("clear_on_close", "notify_on_close"):
        if name in view and not isinstance(view[name], bool):
            errors.append(f"must be a boolean [json-pointer:/view/{name}]")
    if errors:
        raise ContentError("invalid_arguments", errors)
    return view


def _view_block_errors(blocks: Any) -> list[str]:
    if blocks is None:
        return ["missing required field: blocks [json-pointer:/view]"]
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/view/blocks]"]
    if len(blocks) > MAX_VIEW_BLOCKS:
        return [f"no more than {MAX_VIEW_BLOCKS} items allowed [json-pointer:/view/blocks]"]
    errors: list[str] = []
    seen: set[str] = set()
    for index, block in enumerate(blocks):
        errors.extend(_block_errors(index, block, "/view/blocks"))
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if isinstance(block_id, str):
            if block_id in seen:
                errors.append(
                    f"duplicate block_id `{block_id}` [json-pointer:/view/blocks/{index}/block_id]"
                )
            seen.add(block_id)
    return errors


def _button_errors(view: dict[str, Any], name: str, *, required: bool = False) -> list[str]:
    """A modal's title, submit or close: a plain_text object of 1 to 24 characters."""
    pointer = f"/view/{name}"
    value = view.get(name)
    if value is None:
        return [f"missing required field: {name} [json-pointer:/view]"] if required else []
    if not isinstance(value, dict) or value.get("type") != "plain_text":
        return [f"must be a plain_text text object [json-pointer:{pointer}]"]
    text = value.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be at least 1 character [json-pointer:{pointer}/text]"]
    if len(text) > MAX_VIEW_BUTTON:
        return [f"must be less than {MAX_VIEW_BUTTON + 1} characters [json-pointer:{pointer}/text]"]
    return []


def _string_errors(view: dict[str, Any], name: str, limit: int) -> list[str]:
    if name not in view:
        return []
    value = view[name]
    if not isinstance(value, str):
        return [f"must be a string [json-pointer:/view/{name}]"]
    if len(value) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:/view/{name}]"]
    return []


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
