"""Views in the Slack emulator: App Home tabs, modal stacks, what users enter in them, and trigger_ids.

Slack's rules kept here:

- every trigger_id Slack hands an app (slash commands, block_actions, shortcuts, view submissions) may
  be exchanged once (`views.open`, `views.push`), within 3 seconds of the interaction
  (`exchanged_trigger_id`, `expired_trigger_id`; `invalid_trigger_id` for one never issued);
- a user has at most one modal stack, of at most 3 views (`push_limit_reached`); the Home tab is one
  view per user, replaced by each `views.publish`;
- each view has an `id` (`V…`) that `views.update` and `response_action: update` keep, and a `hash` that
  every update changes (`hash_conflict` for a stale one);
- what a user entered is kept across updates for inputs whose `block_id` and `action_id` stay the same,
  and every stateful element appears in `state.values` in Slack's shape (`value`, `selected_option`,
  `selected_date`, `selected_time`, `selected_date_time`, ...), `null` where nothing is chosen.
"""

from __future__ import annotations

import copy
import re
import secrets
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal

from bot.sim.slack_state import JSON, Workspace, with_block_ids

ViewType = Literal["home", "modal"]

TRIGGER_SECONDS = 3.0
MAX_STACK = 3  # a modal and two pushed views
MAX_TRIGGERS = 10_000
REQUIRED = "Please complete this required field."
TROUBLE = "We had some trouble connecting. Try again?"
TRIGGER_FORMAT = re.compile(r"^\d+\.\d+\.[0-9a-f]+$")
DATE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIME_FORMAT = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
ID_ALPHABET = string.ascii_uppercase + string.digits

# element type -> (the field of its state, the field of its initial value, the empty value)
STATE_FIELDS: dict[str, tuple[str, str, Any]] = {
    "plain_text_input": ("value", "initial_value", None),
    "email_text_input": ("value", "initial_value", None),
    "url_text_input": ("value", "initial_value", None),
    "number_input": ("value", "initial_value", None),
    "static_select": ("selected_option", "initial_option", None),
    "external_select": ("selected_option", "initial_option", None),
    "radio_buttons": ("selected_option", "initial_option", None),
    "multi_static_select": ("selected_options", "initial_options", []),
    "multi_external_select": ("selected_options", "initial_options", []),
    "checkboxes": ("selected_options", "initial_options", []),
    "datepicker": ("selected_date", "initial_date", None),
    "timepicker": ("selected_time", "initial_time", None),
    "datetimepicker": ("selected_date_time", "initial_date_time", None),
    "users_select": ("selected_user", "initial_user", None),
    "multi_users_select": ("selected_users", "initial_users", []),
    "conversations_select": ("selected_conversation", "initial_conversation", None),
    "multi_conversations_select": ("selected_conversations", "initial_conversations", []),
    "channels_select": ("selected_channel", "initial_channel", None),
    "multi_channels_select": ("selected_channels", "initial_channels", []),
}
INTERACTIVE = frozenset({*STATE_FIELDS, "button", "overflow", "workflow_button"})

ValueKey = str | tuple[str, str]
"""Which element a test fills: its `action_id`, or `(block_id, action_id)`."""


class ViewError(Exception):
    """A Slack error code for a views call, with Slack's `response_metadata.messages` if any."""

    def __init__(self, error: str, messages: list[str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []


def new_id(prefix: str, length: int = 10) -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def elements(blocks: list[JSON]) -> Iterator[tuple[JSON, JSON, bool]]:
    """(block, element, in an input block) for every element of the blocks that a user can use."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        candidates: list[Any] = []
        if block.get("type") == "input":
            candidates.append(block.get("element"))
        if block.get("type") == "actions":
            candidates.extend(block.get("elements") or [])
        if block.get("type") == "section":
            candidates.append(block.get("accessory"))
        for element in candidates:
            if isinstance(element, dict) and element.get("type") in INTERACTIVE:
                yield block, element, block.get("type") == "input"


def _fill_action_ids(blocks: list[JSON]) -> None:
    """Slack gives an interactive element without an `action_id` a random one, as it does block_ids."""
    for _, element, _ in elements(blocks):
        element.setdefault("action_id", new_id("", 5))


def options_of(element: JSON) -> list[JSON]:
    found = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        found.extend(group.get("options") or [])
    return [o for o in found if isinstance(o, dict)]


def state_entry(element: JSON, value: Any) -> JSON:
    """What a user choosing `value` puts into `state.values`, in Slack's shape. `value` is given as a
    test would say it: the text; an option's `value` (or the option object); a list of them for multi
    selects and checkboxes; `YYYY-MM-DD` or a `date`; `HH:MM` or a `time`; unix seconds or an aware
    `datetime`; a user or conversation ID. None clears the element."""
    kind = str(element.get("type"))
    if kind not in STATE_FIELDS:
        raise ValueError(f"a {kind} element holds no value")
    name, _, empty = STATE_FIELDS[kind]
    entry: JSON = {"type": kind}
    if kind == "timepicker" and element.get("timezone"):
        entry["timezone"] = element["timezone"]
    if value is None:
        entry[name] = copy.deepcopy(empty)
        return entry
    if name == "value":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{kind} takes text")
        entry[name] = str(value)
    elif name == "selected_option":
        entry[name] = _option(element, value)
    elif name == "selected_options":
        if not isinstance(value, list | tuple):
            raise ValueError(f"{kind} takes a list of options")
        entry[name] = [_option(element, v) for v in value]
    elif name == "selected_date":
        text = value.isoformat() if isinstance(value, date) else value
        if not isinstance(text, str) or not DATE_FORMAT.match(text):
            raise ValueError("a datepicker takes YYYY-MM-DD")
        date.fromisoformat(text)
        entry[name] = text
    elif name == "selected_time":
        text = value.strftime("%H:%M") if isinstance(value, time) else value
        if not isinstance(text, str) or not TIME_FORMAT.match(text):
            raise ValueError("a timepicker takes HH:MM")
        entry[name] = text
    elif name == "selected_date_time":
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("a datetimepicker takes an aware datetime or unix seconds")
            value = int(value.timestamp())
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("a datetimepicker takes unix seconds")
        entry[name] = value
    elif name.endswith("s"):  # multi users / conversations / channels
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{kind} takes a list of IDs")
        entry[name] = list(value)
    else:
        if not isinstance(value, str):
            raise ValueError(f"{kind} takes an ID")
        entry[name] = value
    return entry


def _option(element: JSON, value: Any) -> JSON:
    if isinstance(value, dict):
        if element.get("type", "").endswith("external_select"):
            return copy.deepcopy(value)
        value = value.get("value")
    if element.get("type", "").endswith("external_select"):
        raise ValueError("an external select takes the option object")
    for option in options_of(element):
        if option.get("value") == value:
            return copy.deepcopy(option)
    raise ValueError(f"no option with value {value!r} in {element.get('action_id')!r}")


def initial_entry(element: JSON) -> JSON:
    """The state of an element nobody has touched: its initial value, or nothing chosen."""
    kind = str(element["type"])
    name, initial, empty = STATE_FIELDS[kind]
    entry: JSON = {"type": kind}
    if kind == "timepicker" and element.get("timezone"):
        entry["timezone"] = element["timezone"]
    entry[name] = copy.deepcopy(element.get(initial, empty))
    return entry


def _is_empty(entry: JSON) -> bool:
    name = STATE_FIELDS[entry["type"]][0]
    return entry.get(name) in (None, "", [])


@dataclass
class View:
    """One view as Slack holds it: what the app sent, its identity, and what its user entered."""

    id: str
    user_id: str
    type: ViewType
    body: JSON  # the view the app sent, block_ids and action_ids filled in
    hash: str
    team_id: str
    app_id: str | None
    bot_id: str | None
    root_view_id: str
    previous_view_id: str | None = None
    values: dict[str, dict[str, JSON]] = field(default_factory=dict)  # entered by the user
    errors: dict[str, str] = field(default_factory=dict)  # shown under input blocks, by block_id
    notice: str | None = None  # Slack's own error at the top of a modal (the app did not answer)
    changed: int = 0  # the workspace version of its last change
    open: bool = True

    @property
    def blocks(self) -> list[JSON]:
        blocks = self.body.get("blocks")
        return blocks if isinstance(blocks, list) else []

    @property
    def callback_id(self) -> str:
        return str(self.body.get("callback_id") or "")

    @property
    def private_metadata(self) -> str:
        return str(self.body.get("private_metadata") or "")

    @property
    def external_id(self) -> str:
        return str(self.body.get("external_id") or "")

    @property
    def title(self) -> str:
        title = self.body.get("title")
        return str(title.get("text", "")) if isinstance(title, dict) else ""

    @property
    def notify_on_close(self) -> bool:
        return self.body.get("notify_on_close") is True

    @property
    def clear_on_close(self) -> bool:
        return self.body.get("clear_on_close") is True

    def element(self, action_id: str, block_id: str | None = None) -> tuple[JSON, JSON] | None:
        """The (block, element) with `action_id` (in the block `block_id`, if given)."""
        for block, element, _ in elements(self.blocks):
            if element.get("action_id") == action_id and block_id in (None, block.get("block_id")):
                return block, element
        return None

    def input_block_ids(self) -> set[str]:
        return {str(b["block_id"]) for b in self.blocks if b.get("type") == "input"}

    def state_values(self) -> dict[str, dict[str, JSON]]:
        """`state.values` as Slack sends it: every element of an input block (entered, initial or
        nothing chosen), and the other stateful elements once they hold a value."""
        values: dict[str, dict[str, JSON]] = {}
        for block, element, in_input in elements(self.blocks):
            kind = element["type"]
            if kind not in STATE_FIELDS:
                continue
            block_id, action_id = str(block["block_id"]), str(element["action_id"])
            entered = self.values.get(block_id, {}).get(action_id)
            if entered is None and (in_input or STATE_FIELDS[kind][1] in element):
                entered = initial_entry(element)
            if entered is not None:
                values.setdefault(block_id, {})[action_id] = copy.deepcopy(entered)
        return values

    def client_errors(self) -> dict[str, str]:
        """What Slack's client says before it sends a submission: required inputs left empty, text
        outside an input's `min_length`/`max_length`."""
        errors: dict[str, str] = {}
        state = self.state_values()
        for block, element, in_input in elements(self.blocks):
            if not in_input or element["type"] not in STATE_FIELDS:
                continue
            block_id = str(block["block_id"])
            entry = state.get(block_id, {}).get(str(element["action_id"]))
            if entry is None or _is_empty(entry):
                if not block.get("optional"):
                    errors[block_id] = REQUIRED
                continue
            text = entry.get("value")
            if isinstance(text, str) and element["type"] == "plain_text_input":
                low, high = element.get("min_length"), element.get("max_length")
                if isinstance(low, int) and len(text) < low:
                    errors[block_id] = f"Please enter at least {low} characters."
                elif isinstance(high, int) and len(text) > high:
                    errors[block_id] = f"Please enter no more than {high} characters."
        return errors

    def to_api(self) -> JSON:
        """The view as Slack's API responses and payloads show it."""
        body = self.body
        shown: JSON = {"id": self.id, "team_id": self.team_id, "type": self.type}
        if self.type == "modal" or "title" in body:
            shown["title"] = copy.deepcopy(body.get("title"))
        shown["close"] = copy.deepcopy(body.get("close"))
        shown["submit"] = copy.deepcopy(body.get("submit"))
        shown["blocks"] = copy.deepcopy(self.blocks)
        shown["private_metadata"] = self.private_metadata
        shown["callback_id"] = self.callback_id
        shown["state"] = {"values": self.state_values()}
        shown["hash"] = self.hash
        shown["clear_on_close"] = self.clear_on_close
        shown["notify_on_close"] = self.notify_on_close
        shown["previous_view_id"] = self.previous_view_id
        shown["root_view_id"] = self.root_view_id
        shown["app_id"] = self.app_id
        shown["external_id"] = self.external_id
        shown["app_installed_team_id"] = self.team_id
        shown["bot_id"] = self.bot_id
        return shown


@dataclass
class Trigger:
    user_id: str
    issued_at: float
    view_id: str | None = None  # the view the interaction came from, if any
    used: bool = False


class Triggers:
    """trigger_ids handed out with payloads; each may be exchanged once, within `seconds`."""

    def __init__(self, seconds: float, monotonic: Callable[[], float]) -> None:
        self.seconds = seconds
        self.monotonic = monotonic
        self._issued: dict[str, Trigger] = {}

    def issue(self, user_id: str, *, view_id: str | None = None) -> str:
        trigger_id = (
            f"{secrets.randbelow(10**13):013d}.{secrets.randbelow(10**10):010d}."
            f"{secrets.token_hex(16)}"
        )
        self._issued[trigger_id] = Trigger(user_id, self.monotonic(), view_id)
        while len(self._issued) > MAX_TRIGGERS:
            del self._issued[next(iter(self._issued))]
        return trigger_id

    def check(self, trigger_id: Any) -> Trigger:
        """The trigger, if it may be exchanged now (the caller sets `used` once it succeeded)."""
        if not isinstance(trigger_id, str) or not trigger_id:
            raise ViewError("invalid_arguments", ["[ERROR] missing required field: trigger_id"])
        trigger = self._issued.get(trigger_id) if TRIGGER_FORMAT.match(trigger_id) else None
        if trigger is None:
            raise ViewError("invalid_trigger_id")
        if trigger.used:
            raise ViewError("exchanged_trigger_id")
        if self.monotonic() - trigger.issued_at > self.seconds:
            raise ViewError("expired_trigger_id")
        return trigger

    def get(self, trigger_id: str) -> Trigger | None:
        return self._issued.get(trigger_id)


class Views:
    """Every user's Home tab and modal stack. Each change notifies the workspace (waits re-check)."""

    def __init__(self, workspace: Workspace, triggers: Triggers) -> None:
        self.ws = workspace
        self.triggers = triggers
        self.homes: dict[str, View] = {}
        self.stacks: dict[str, list[View]] = {}
        self._by_id: dict[str, View] = {}
        self.changed_for: dict[str, int] = {}  # user -> workspace version of their last view change

    # ---- reading

    def find(self, view_id: str) -> View | None:
        view = self._by_id.get(view_id)
        return view if view is not None and view.open else None

    def by_external_id(self, external_id: str) -> View | None:
        return next(
            (v for v in self._by_id.values() if v.open and v.external_id == external_id), None
        )

    def stack(self, user_id: str) -> list[View]:
        return list(self.stacks.get(user_id, []))

    def top(self, user_id: str) -> View | None:
        stack = self.stacks.get(user_id)
        return stack[-1] if stack else None

    # ---- changes

    def _new(
        self,
        user_id: str,
        kind: ViewType,
        body: JSON,
        app_id: str | None,
        bot_id: str | None,
        *,
        root: View | None = None,
        previous: View | None = None,
    ) -> View:
        view_id = new_id("V")
        view = View(
            id=view_id,
            user_id=user_id,
            type=kind,
            body=self._normalised(body),
            hash=self._hash(),
            team_id=self.ws.team_id,
            app_id=app_id,
            bot_id=bot_id,
            root_view_id=root.id if root is not None else view_id,
            previous_view_id=previous.id if previous is not None else None,
        )
        self._by_id[view_id] = view
        return view

    def _check_external_id(self, body: JSON, keep: View | None = None) -> None:
        external_id = body.get("external_id")
        if external_id:
            other = self.by_external_id(str(external_id))
            if other is not None and other is not keep:
                raise ViewError("duplicate_external_id")

    def publish(
        self, user_id: str, body: JSON, app_id: str | None, bot_id: str | None, hash: Any = None
    ) -> View:
        """`views.publish`: the user's Home tab is this view now (same ID once published)."""
        home = self.homes.get(user_id)
        if hash not in (None, "") and (home is None or hash != home.hash):
            raise ViewError("hash_conflict")
        self._check_external_id(body, keep=home)
        if home is None:
            home = self._new(user_id, "home", body, app_id, bot_id)
            self.homes[user_id] = home
        else:
            self._replace(home, body)
        self._changed(home)
        return home

    def open_modal(self, user_id: str, body: JSON, app_id: str | None, bot_id: str | None) -> View:
        """`views.open`: a new modal stack for the user (one already open is closed)."""
        self._check_external_id(body)
        for old in self.stacks.get(user_id, []):
            old.open = False
        view = self._new(user_id, "modal", body, app_id, bot_id)
        self.stacks[user_id] = [view]
        self._changed(view)
        return view

    def push(self, user_id: str, body: JSON, app_id: str | None, bot_id: str | None) -> View:
        """`views.push` and `response_action: push`: a view on top of the user's stack."""
        stack = self.stacks.get(user_id)
        if not stack:
            raise ViewError("not_found")
        if len(stack) >= MAX_STACK:
            raise ViewError("push_limit_reached")
        self._check_external_id(body)
        view = self._new(user_id, "modal", body, app_id, bot_id, root=stack[0], previous=stack[-1])
        stack.append(view)
        self._changed(view)
        return view

    def update(self, view: View, body: JSON, hash: Any = None) -> View:
        """`views.update` and `response_action: update`: new content, same ID, a new hash."""
        if hash not in (None, "") and hash != view.hash:
            raise ViewError("hash_conflict")
        self._check_external_id(body, keep=view)
        self._replace(view, body)
        self._changed(view)
        return view

    def close(self, user_id: str, *, clear: bool = False) -> list[View]:
        """Close the top view (the previous one shows again), or with `clear` the whole stack."""
        stack = self.stacks.get(user_id, [])
        closing = list(stack) if clear else stack[-1:]
        for view in closing:
            view.open = False
            stack.remove(view)
        if not stack:
            self.stacks.pop(user_id, None)
        if closing:
            self._changed(closing[-1])
        return closing

    def enter(self, view: View, values: Mapping[ValueKey, Any]) -> None:
        """What the user entered or chose, by `action_id` or `(block_id, action_id)`."""
        for key, value in values.items():
            block_id, action_id = key if isinstance(key, tuple) else (None, key)
            found = view.element(action_id, block_id)
            if found is None:
                raise ValueError(f"no element {key!r} in view {view.id} ({view.callback_id!r})")
            block, element = found
            view.values.setdefault(str(block["block_id"]), {})[action_id] = state_entry(
                element, value
            )
        self._changed(view)

    def show_errors(self, view: View, errors: dict[str, str], notice: str | None = None) -> None:
        view.errors = dict(errors)
        view.notice = notice
        self._changed(view)

    # ---- internals

    def _replace(self, view: View, body: JSON) -> None:
        view.body = self._normalised(body)
        view.hash = self._hash()
        view.errors, view.notice = {}, None
        kept: dict[str, dict[str, JSON]] = {}
        for block, element, _ in elements(view.blocks):
            block_id, action_id = str(block["block_id"]), str(element.get("action_id"))
            entry = view.values.get(block_id, {}).get(action_id)
            if entry is not None and entry["type"] == element.get("type"):
                kept.setdefault(block_id, {})[action_id] = entry
        view.values = kept

    def _normalised(self, body: JSON) -> JSON:
        body = copy.deepcopy(body)
        blocks = body.get("blocks")
        body["blocks"] = with_block_ids(blocks) if isinstance(blocks, list) else []
        _fill_action_ids(body["blocks"])
        return body

    def _hash(self) -> str:
        return f"{int(self.ws.clock())}.{secrets.token_hex(4)}"

    def _changed(self, view: View) -> None:
        self.ws.notify()
        view.changed = self.ws.version
        self.changed_for[view.user_id] = self.ws.version
