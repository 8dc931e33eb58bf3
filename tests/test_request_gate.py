"""The gate's checks on a signed body, on their own: a form is refused exactly when the standard library's strict
form parser refuses it, a `payload` field is found and checked however its name is encoded, and whatever the
gate lets through, Bolt can parse."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl, quote_plus

from hypothesis import given
from hypothesis import strategies as st
from slack_bolt.request.internals import parse_body

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


# Text made of the characters that matter to a form (separators, escapes, JSON's brackets) and a few others.
form_like = st.text(alphabet="ab=&%+2;x {}[]", max_size=40)
# Forms with the fields that matter: `payload` (plainly or encoded, once or more) holding JSON or not.
field_names = st.sampled_from(["payload", "p%61yload", "pay+load", "text", "a", ""])
field_values = st.sampled_from(
    ["%7B%7D", "%7B%22type%22%3A%22x%22%7D", "%5B1%5D", "%7Bnope", "%5B" * 70, "x", "", "1"]
)
fields = st.one_of(
    st.tuples(field_names, field_values).map(lambda pair: "=".join(pair)),
    field_names,  # a field without "="
)
forms = st.lists(fields, max_size=4).map("&".join)
bodies = st.one_of(form_like, forms, forms.map(lambda text: "{" + text))
content_types = st.sampled_from([FORM, "", "application/json", "application/json; charset=utf-8"])


@given(form_like.filter(lambda text: not text.startswith("{")))
def test_a_form_without_a_payload_is_refused_exactly_when_the_strict_parser_refuses_it(
    text: str,
) -> None:
    result = verdict(text.encode())
    if strict_parser_accepts(text):
        assert result is None
    else:
        assert result == "400 body is not a form"


@given(bodies, content_types)
def test_what_the_gate_lets_through_bolt_parses_into_an_object(
    text: str, content_type: str
) -> None:
    """Bolt parses the body before any listener runs, outside any guard: whatever passes the gate, it must
    read without raising, and the payload it hands on is a JSON object."""
    if verdict(text.encode(), content_type) is None:
        parsed = parse_body(text, content_type.split(";")[0] or None)
        assert isinstance(parsed, dict)


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


def test_of_several_payload_fields_the_last_is_checked_as_bolt_reads_the_last() -> None:
    assert verdict(b"payload=%7B%7D&payload=%5B1%5D") == "400 JSON is not an object"
    assert verdict(b"payload=%7B%7D&payload=%7Bnope") == "400 body is not JSON"
    assert verdict(b"payload=%5B1%5D&payload=%7B%7D") is None


def test_a_body_starting_with_a_brace_is_checked_as_json_whatever_its_content_type() -> None:
    assert verdict(b"{=") == "400 body is not JSON"
    assert verdict(b'{"a=":' + b"[" * 100) == "400 JSON nested too deeply"
    assert verdict(b'{"type": "url_verification"}') is None


def test_a_payload_that_is_not_an_object_or_nests_too_deep_is_refused() -> None:
    assert verdict(b"payload=" + quote_plus("[1, 2]").encode()) == "400 JSON is not an object"
    assert verdict(b"payload=" + b"%5B" * 100) == "400 JSON nested too deeply"


def test_a_raw_body_is_digested_as_signed_and_a_payload_whatever_its_key_order() -> None:
    assert digest_of("a=1&b=2") == digest_of("a=1&b=2")
    assert digest_of("a=1&b=2") != digest_of("b=2&a=1")  # raw bodies: as signed, byte for byte
    assert digest_of({"a": 1, "b": [2]}) == digest_of({"b": [2], "a": 1})  # Socket Mode payloads
    assert digest_of({"a": 1}) != digest_of({"a": 2})
