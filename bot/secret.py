"""`Secret`: a credential that never shows itself in a repr, a log line, an f-string or an exception."""

from __future__ import annotations

from typing import Final

MASK: Final = "**********"


class Secret:
    """Holds a secret text; `get_secret_value()` is the only way to read it (the name pydantic's `SecretStr`
    gave it, so code reading credentials reads the same either way)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a secret is text")
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)
