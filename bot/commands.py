"""`/sandbox` text -> a typed command, and the codec of button values.

Pure code, no I/O. Everything here is untrusted input: typed text and button values alike. Every ID
must match `ID_PATTERN`, so nothing else ever reaches a Zuora URL, and every `UsageError.message` is
already escaped for Slack mrkdwn, so quoting a user's text can never mention `@channel` or anyone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, NoReturn, Protocol, TypeAlias, TypeVar

COMMAND: Final = "/sandbox"
ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
MAX_ID_LENGTH: Final = 64
MAX_VALUE_LENGTH: Final = 2000
"""Slack's limit on a button value; anything longer did not come from us."""

# What `UsageError.argument` names.
ARG_SUBCOMMAND: Final = "subcommand"
ARG_ENV: Final = "<env>"
ARG_JOB: Final = "<job>"
ARG_TIME: Final = "<time>"
ARG_AT: Final = "at"
ARG_EXTRA: Final = "extra"
ARG_VALUE: Final = "value"

_QUOTE_LIMIT: Final = 40
_ALIAS_LIST_LIMIT: Final = 10
_TIME_TEXT: Final = re.compile(r"[0-9A-Za-z:.,+-]{1,40}")
_DATE_ONLY: Final = re.compile(r"[0-9]{4}-?[0-9]{2}-?[0-9]{2}")
_ENTITY: Final = re.compile(r"&(amp|lt|gt);")
_QUOTES: Final = "\"'`"
_TIME_HINT: Final = "ISO-8601, e.g. 2030-01-31T22:00Z or 2030-01-31T23:00+01:00"

_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
_SPACES += "\u2028\u2029\u202f\u205f\u3000"
_NORMALISE: Final = str.maketrans(
    {
        **dict.fromkeys("‘’‚‛", "'"),
        **dict.fromkeys("“”„‟", '"'),
        **dict.fromkeys("‐‑‒–—―−", "-"),
        **dict.fromkeys(_SPACES, " "),
        # Zero-width characters ride along with copy and paste; they are never meant.
        **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff", None),
    }
)


@dataclass(frozen=True, slots=True)
class EnvRef:
    """A resolved environment: the ID sent to Zuora and the alias to show, if any."""

    id: str
    alias: str | None


# Who may run a subcommand: anyone, viewers (and operators), or operators only (bot.permissions).
Role = Literal["anyone", "viewer", "operator"]


class Parseable(Protocol):
    """A command class: built from the words after its name."""

    name: ClassVar[str]

    @classmethod
    def parse(cls, args: Args) -> Any: ...


C = TypeVar("C", bound=Parseable)


@dataclass(frozen=True, slots=True)
class Subcommand:
    """Everything about one subcommand's text: the one place `help`, the usage lines, the manifest's usage
    hint and the parser read. Its handler is registered in `bot.operations` with `@handles(<class>)`."""

    name: str
    usage: str  # raw (unescaped), without the command name: "cancel <env> <job>"
    summary: str  # what it does, for `help`
    role: Role  # who may run it
    parse: Callable[[Args], Any]


SUBCOMMAND_DEFINITIONS: dict[str, Subcommand] = {}


def subcommand(
    usage: str, summary: str, *, role: Role = "operator"
) -> Callable[[type[C]], type[C]]:
    """Register a command class: `usage` names it (first word) and its arguments; the class's `parse`
    classmethod turns the arguments into an instance."""

    def register(cls: type[C]) -> type[C]:
        name = usage.split()[0]
        SUBCOMMAND_DEFINITIONS[name] = Subcommand(name, usage, summary, role, cls.parse)
        cls.name = name
        return cls

    return register


@dataclass(frozen=True, slots=True)
class Args:
    """The words after a subcommand, with what parsing them needs."""

    subcommand: str
    words: Sequence[str]
    aliases: Mapping[str, str]
    now: datetime | None

    def exactly(self, *names: str) -> None:
        """Exactly these arguments, or a UsageError naming the missing or the extra one (the usage line that
        fits is added where the error is shown, once)."""
        if len(self.words) < len(names):
            missing = names[len(self.words)]
            _fail(f"Missing {missing}.", argument=missing, subcommand=self.subcommand)
        if len(self.words) > len(names):
            extra = _quote(" ".join(self.words[len(names) :]))
            _fail(
                f"Too many arguments: {extra} is extra.",
                argument=ARG_EXTRA,
                subcommand=self.subcommand,
            )

    def env(self, index: int) -> EnvRef:
        return resolve_env(self.words[index], self.aliases, subcommand=self.subcommand)

    def id(self, index: int, argument: str) -> str:
        return validate_id(self.words[index], argument, subcommand=self.subcommand)


@subcommand("help", "this help", role="anyone")
@dataclass(frozen=True, slots=True)
class Help:
    name: ClassVar[str]

    @classmethod
    def parse(cls, args: Args) -> Help:
        return cls()  # help with anything after it is still a request for help


@subcommand("envs", "the test environments, their status and last/next refresh", role="viewer")
@dataclass(frozen=True, slots=True)
class Envs:
    name: ClassVar[str]

    @classmethod
    def parse(cls, args: Args) -> Envs:
        args.exactly()
        return cls()


@subcommand("jobs <env>", "the jobs of an environment, newest first", role="viewer")
@dataclass(frozen=True, slots=True)
class Jobs:
    name: ClassVar[str]
    env: EnvRef

    @classmethod
    def parse(cls, args: Args) -> Jobs:
        args.exactly(ARG_ENV)
        return cls(args.env(0))


@subcommand("status <env> <job>", "one job", role="viewer")
@dataclass(frozen=True, slots=True)
class Status:
    name: ClassVar[str]
    env: EnvRef
    job_id: str

    @classmethod
    def parse(cls, args: Args) -> Status:
        args.exactly(ARG_ENV, ARG_JOB)
        return cls(args.env(0), args.id(1, ARG_JOB))


@subcommand("cancel <env> <job>", "cancel a job (a refresh only before its reset stage)")
@dataclass(frozen=True, slots=True)
class Cancel:
    name: ClassVar[str]
    env: EnvRef
    job_id: str

    @classmethod
    def parse(cls, args: Args) -> Cancel:
        args.exactly(ARG_ENV, ARG_JOB)
        return cls(args.env(0), args.id(1, ARG_JOB))


@subcommand(
    "refresh <env> [at <time>]",
    "refresh an environment, after a confirmation (`refresh` alone opens a form)",
)
@dataclass(frozen=True, slots=True)
class Refresh:
    """`at` is None for a refresh now, else an aware UTC datetime."""

    name: ClassVar[str]
    env: EnvRef
    at: datetime | None

    @classmethod
    def parse(cls, args: Args) -> Refresh | RefreshForm:
        if not args.words:
            return RefreshForm()
        return _parse_refresh(args)


@dataclass(frozen=True, slots=True)
class RefreshForm:
    """`refresh` alone: the refresh form (a modal) asks for the environment and the time. Anyone may open it:
    the form itself tells a user who is not an operator why they cannot refresh (`role` overrides the
    subcommand's)."""

    name: ClassVar[str] = "refresh"
    role: ClassVar[Role] = "anyone"

    @classmethod
    def parse(cls, args: Args) -> RefreshForm:
        args.exactly()
        return cls()


Command: TypeAlias = Help | Envs | Jobs | Status | Cancel | Refresh | RefreshForm
SUBCOMMANDS: Final = tuple(SUBCOMMAND_DEFINITIONS)
USAGE: Final[Mapping[str, str]] = {name: d.usage for name, d in SUBCOMMAND_DEFINITIONS.items()}
"""Raw (unescaped) usage line of each subcommand, without the command name."""


def usage_hint() -> str:
    """The slash command's usage hint in the app manifest: every usage line, help last."""
    lines = [d.usage for d in SUBCOMMAND_DEFINITIONS.values() if d.name != "help"]
    return " | ".join([*lines, "help"])


class UsageError(ValueError):
    """Bad input from a user or a button. `message` is user-facing and already mrkdwn-escaped.

    `argument` names what is wrong (one of the `ARG_*` values); `subcommand` is the subcommand
    whose usage line fits, when known: the message never repeats that usage line, the reply adds it.
    `time` is a time the user gave, for the reply to show in the reader's own time zone (the message
    itself quotes no time: it cannot know the reader's zone).
    """

    def __init__(
        self,
        message: str,
        *,
        argument: str | None = None,
        subcommand: str | None = None,
        time: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.argument = argument
        self.subcommand = subcommand
        self.time = time


def escape_mrkdwn(text: str) -> str:
    """Escape `&`, `<` and `>` so that text from outside cannot format links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def normalise(text: str) -> str:
    """Turn Slack's smart quotes and dashes, and unusual spaces, into their ASCII forms."""
    return text.translate(_NORMALISE)


def usage_line(subcommand: str) -> str:
    """The escaped usage line of one subcommand, e.g. `/sandbox cancel &lt;env&gt; &lt;job&gt;`."""
    return escape_mrkdwn(f"{COMMAND} {USAGE[subcommand]}")


def usage_text(aliases: Mapping[str, str], *, role: Role = "operator") -> str:
    """The help text (mrkdwn, escaped): one line per subcommand `role` may run, what the arguments are,
    examples."""
    env = next(iter(aliases), "2c92c0f9-4a7d3c5e")
    job = "8a8aa1d1-46b3-4c0b-9bcd-0e1c1b5d3b2a"
    known = _alias_list(aliases) or "none configured"
    allowed = [d for d in SUBCOMMAND_DEFINITIONS.values() if may_run(role, d.role)]
    examples = [f"`{COMMAND} jobs {env}`"]
    if role == "operator":
        examples += [
            f"`{COMMAND} cancel {env} {job}`",
            f"`{COMMAND} refresh {env} at 2030-01-31T22:00Z`",
        ]
    else:
        examples.append(f"`{COMMAND} status {env} {job}`")
    lines = [
        "*Usage*",
        *(f"• `{COMMAND} {d.usage}`: {d.summary}" for d in allowed),
        f"`<env>` is an alias ({known}) or a test environment ID; `<job>` is a job ID"
        + (
            f"; `<time>` is {_TIME_HINT} (UTC when no offset is given)."
            if role == "operator"
            else "."
        ),
        f"Examples: {', '.join(examples)}",
    ]
    return escape_mrkdwn("\n".join(lines))


def may_run(role: Role, needed: Role) -> bool:
    """Whether a user of `role` may run what needs `needed` (operators may do everything)."""
    order = {"anyone": 0, "viewer": 1, "operator": 2}
    return order[role] >= order[needed]


def validate_id(value: str, argument: str, *, subcommand: str | None = None) -> str:
    """Return `value` if it is a valid ID, else raise a UsageError naming `argument`."""
    problem = _id_problem(value)
    if problem is None:
        return value
    _fail(
        f"{argument} {_quote(value)} is not a valid ID: it {problem}. An ID is letters, digits "
        f"and '-', at most {MAX_ID_LENGTH} characters, starting with a letter or digit.",
        argument=argument,
        subcommand=subcommand,
    )


def resolve_env(token: str, aliases: Mapping[str, str], *, subcommand: str | None = None) -> EnvRef:
    """An alias (case-insensitive; it wins over a raw ID) or a raw test environment ID."""
    wanted = token.casefold()
    for alias, env_id in aliases.items():
        if alias.casefold() == wanted:
            return EnvRef(id=env_id, alias=alias)
    problem = _id_problem(token)
    if problem is not None:
        known = _alias_list(aliases)
        hint = f" Known aliases: {known}." if known else ""
        _fail(
            f"{ARG_ENV} {_quote(token)} is not an environment alias, nor a test environment ID "
            f"(it {problem}).{hint}",
            argument=ARG_ENV,
            subcommand=subcommand,
        )
    shown = next((a for a, env_id in aliases.items() if env_id == token), None)
    return EnvRef(id=token, alias=shown)


def parse(text: str, aliases: Mapping[str, str], *, now: datetime | None = None) -> Command:
    """Parse the text after `/sandbox`. Raises UsageError, and only that, on bad input.

    `aliases` maps alias -> environment ID. When `now` is given, a refresh time must be after it.
    """
    tokens = [t for t in (_unquote(t) for t in _unescape(normalise(text)).split()) if t]
    if not tokens:
        return Help()
    sub, words = tokens[0].casefold(), tokens[1:]
    definition = SUBCOMMAND_DEFINITIONS.get(sub)
    if definition is None:
        _fail(
            f"Unknown subcommand {_quote(tokens[0])}. Valid subcommands: {', '.join(SUBCOMMANDS)}.",
            argument=ARG_SUBCOMMAND,
        )
    command: Command = definition.parse(Args(sub, words, aliases, now))
    return command


def encode_job_value(env_id: str, job_id: str) -> str:
    """The value of a job button: compact JSON `{"env": ..., "job": ...}`. Raises on bad IDs."""
    validate_id(env_id, ARG_ENV)
    validate_id(job_id, ARG_JOB)
    return json.dumps({"env": env_id, "job": job_id}, separators=(",", ":"))


def decode_job_value(value: str) -> tuple[str, str]:
    """(env_id, job_id) from a job button's value; UsageError on anything else."""
    obj = _load_object(value, ("env", "job"))
    return _id_field(obj, "env", ARG_ENV), _id_field(obj, "job", ARG_JOB)


def encode_refresh_value(env_id: str, at: datetime | None) -> str:
    """The value of a refresh confirmation button: `{"env": ..., "at": "<UTC ISO-8601>" | null}`.

    A naive `at` is taken as UTC, as in typed text.
    """
    validate_id(env_id, ARG_ENV)
    return json.dumps(
        {"env": env_id, "at": None if at is None else _format_time(at)}, separators=(",", ":")
    )


def decode_refresh_value(value: str, *, now: datetime | None = None) -> tuple[str, datetime | None]:
    """(env_id, at) from a refresh button's value; UsageError on anything else.

    When `now` is given, a scheduled time that is no longer in the future is refused too.
    """
    obj = _load_object(value, ("env", "at"))
    env_id = _id_field(obj, "env", ARG_ENV)
    raw = obj["at"]
    if raw is None:
        return env_id, None
    at = _decode_time(raw)
    if now is not None and at <= _as_utc(now):
        _fail(
            "The time this refresh was scheduled for has passed: ask again with a later time.",
            argument=ARG_TIME,
            subcommand="refresh",
        )
    return env_id, at


# -- helpers ---------------------------------------------------------------------------------


def _fail(
    raw_message: str,
    *,
    argument: str | None,
    subcommand: str | None = None,
    time: datetime | None = None,
) -> NoReturn:
    """Raise a UsageError; the message is escaped here, once, so no caller can forget."""
    raise UsageError(
        escape_mrkdwn(raw_message), argument=argument, subcommand=subcommand, time=time
    )


def _id_problem(value: str) -> str | None:
    """None for a valid ID, else what is wrong with it (raw text, to be escaped)."""
    if ID_PATTERN.fullmatch(value):
        return None
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long, more than {MAX_ID_LENGTH}"
    if value.startswith("-"):
        return "starts with '-'"
    bad = next(c for c in value if not (c.isascii() and (c.isalnum() or c == "-")))
    return f"contains {_quote(bad)}"


def _quote(text: str) -> str:
    """User text for a message: truncated, printable, as inline code (still to be escaped)."""
    if len(text) > _QUOTE_LIMIT:
        text = text[: _QUOTE_LIMIT - 1] + "…"
    shown = "".join(c if c.isprintable() else "\ufffd" for c in text).replace("`", "'")
    return f"`{shown}`"


def _alias_list(aliases: Mapping[str, str]) -> str:
    names = [_quote(a)[1:-1] for a in list(aliases)[: _ALIAS_LIST_LIMIT + 1]]
    if len(names) > _ALIAS_LIST_LIMIT:
        names[_ALIAS_LIST_LIMIT:] = ["…"]
    return ", ".join(names)


def _unescape(text: str) -> str:
    """Undo Slack's escaping of `&`, `<`, `>` in command text, in one pass (no double decoding)."""
    return _ENTITY.sub(lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], text)


def _unquote(token: str) -> str:
    while len(token) >= 2 and token[0] == token[-1] and token[0] in _QUOTES:
        token = token[1:-1]
    return token


def _parse_refresh(parsed: Args) -> Refresh:
    sub, args, now = parsed.subcommand, parsed.words, parsed.now
    if not args:
        _fail(f"Missing {ARG_ENV}.", argument=ARG_ENV, subcommand=sub)
    env = parsed.env(0)
    rest = args[1:]
    if not rest:
        return Refresh(env, None)
    if rest[0].casefold() != "at":
        _fail(
            f"Unexpected {_quote(rest[0])}: to schedule the refresh, write `at <time>`.",
            argument=ARG_AT,
            subcommand=sub,
        )
    parts = rest[1:]
    if not parts:
        _fail(f"Missing {ARG_TIME} after `at`.", argument=ARG_TIME, subcommand=sub)
    # "2030-01-31 22:00" arrives as two words: accept a date followed by a time.
    size = 2 if len(parts) >= 2 and _DATE_ONLY.fullmatch(parts[0]) else 1
    if len(parts) > size:
        extra = _quote(" ".join(parts[size:]))
        _fail(f"Too many arguments: {extra} is extra.", argument=ARG_EXTRA, subcommand=sub)
    return Refresh(env, _parse_time(" ".join(parts), now))


def _parse_time(text: str, now: datetime | None) -> datetime:
    candidate = text.replace(" ", "T").upper()
    bad = f"{ARG_TIME} {_quote(text)} is not a valid time: use {_TIME_HINT}."
    if not _TIME_TEXT.fullmatch(candidate):
        _fail(bad, argument=ARG_TIME, subcommand="refresh")
    if "T" not in candidate:
        _fail(
            f"{ARG_TIME} {_quote(text)} has no time of day: use {_TIME_HINT}.",
            argument=ARG_TIME,
            subcommand="refresh",
        )
    try:
        at = _as_utc(datetime.fromisoformat(candidate))
    except (ValueError, OverflowError):
        _fail(bad, argument=ARG_TIME, subcommand="refresh")
    if now is not None and at <= _as_utc(now):
        _fail(
            f"{ARG_TIME} {_quote(text)} is not in the future.",
            argument=ARG_TIME,
            subcommand="refresh",
            time=at,
        )
    return at


def _as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC. May raise OverflowError at the ends."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _format_time(value: datetime) -> str:
    return _as_utc(value).isoformat().replace("+00:00", "Z")


def _load_object(value: str, keys: Sequence[str]) -> dict[str, object]:
    """Parse a button value as a JSON object with exactly `keys`, rejecting anything unusual."""
    if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
        _bad_value("it is not a button value of this bot")

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            raise ValueError("duplicate key")
        return obj

    def no_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    try:
        obj = json.loads(value, object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except (ValueError, RecursionError):
        _bad_value("it is not valid JSON")
    if not isinstance(obj, dict):
        _bad_value("it is not a JSON object")
    if set(obj) != set(keys):
        _bad_value(f"it must have exactly the keys {', '.join(keys)}")
    return obj


def _decode_time(raw: object) -> datetime:
    """Only the exact form `_format_time` writes is accepted (UTC, `Z`)."""
    if isinstance(raw, str) and _TIME_TEXT.fullmatch(raw):
        try:
            at = datetime.fromisoformat(raw)
            if at.tzinfo is not None and _format_time(at) == raw:
                return at.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    _bad_value(f"its {ARG_TIME} is not a UTC ISO-8601 time", argument=ARG_TIME)


def _id_field(obj: Mapping[str, object], key: str, argument: str) -> str:
    raw = obj[key]
    if not isinstance(raw, str) or not ID_PATTERN.fullmatch(raw):
        _bad_value(f"its {argument} is not a valid ID", argument=argument)
    return raw


def _bad_value(reason: str, *, argument: str = ARG_VALUE) -> NoReturn:
    _fail(
        f"This button is damaged or out of date ({reason}). Run the command again.",
        argument=argument,
    )
