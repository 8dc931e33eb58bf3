"""The gate's checks on a signed body, on their own: a form is refused exactly when the standard library's strict
form parser refuses it, and a `payload` field is found and checked however its name is encoded."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl, quote_plus

from hypothesis import given
from hypothesis import strategies as st

from bot.request_gate import digest_of, inspect

SECRET = "gate-test-signing-secret"
FORM = "application/x-www-form-urlencoded"


def signed_headers(body: bytes, content_type: str = FORM) -> dict[str, str]:
    timestamp = str(int(time.time()))
    base = b"v0:" + timestamp.encode() + b":" + body
    signature = "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": content_type,
    }


def verdict(body: bytes, content_type: str = FORM) -> str | None:
    rejection = inspect(secret=SECRET, headers=signed_headers(body, content_type), body=body)
    return None if rejection is None else f"{rejection.status} {rejection.reason}"


def strict_parser_accepts(text: str) -> bool:
    try:
        parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError:
        return False
    return True


# Text made of the characters that matter to a form (separators, escapes) and a few others.
form_like = st.text(alphabet="ab=&%+2;x ", max_size=40)


@given(form_like)
def test_a_form_is_refused_exactly_when_the_strict_parser_refuses_it(text: str) -> None:
    result = verdict(text.encode())
    if strict_parser_accepts(text):
        assert result is None
    else:
        assert result == "400 body is not a form"


def test_a_slash_command_form_passes() -> None:
    body = b"command=%2Fsandbox&text=cancel+staging+job&user_id=U1&response_url=https%3A%2F%2Fx%2Fy"
    assert verdict(body) is None


def test_a_field_without_equals_is_refused() -> None:
    assert verdict(b"command=%2Fsandbox&text") == "400 body is not a form"
    assert verdict(b"command=%2Fsandbox&&text=x") == "400 body is not a form"


def test_the_payload_field_is_checked_however_its_name_is_encoded() -> None:
    for name in ("payload", "p%61yload", "%70ayload"):
        assert verdict(f"{name}=%7Bnot-json".encode()) == "400 body is not JSON", name
        good = quote_plus(json.dumps({"type": "block_actions"}))
        assert verdict(f"token=x&{name}={good}".encode()) is None, name


def test_a_payload_that_is_not_an_object_or_nests_too_deep_is_refused() -> None:
    assert verdict(b"payload=" + quote_plus("[1, 2]").encode()) == "400 JSON is not an object"
    assert verdict(b"payload=" + b"%5B" * 100) == "400 JSON nested too deeply"


def test_the_digest_of_a_raw_body_is_of_its_bytes_and_of_a_payload_is_canonical() -> None:
    assert digest_of("a=1&b=2") == hashlib.sha256(b"a=1&b=2").hexdigest()
    assert digest_of("a=1&b=2") != digest_of("b=2&a=1")  # raw bodies: as signed, byte for byte
    assert digest_of({"a": 1, "b": [2]}) == digest_of(
        {"b": [2], "a": 1}
    )  # Socket Mode: key order aside
    assert digest_of({"a": 1}) != digest_of({"a": 2})
