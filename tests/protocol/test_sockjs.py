"""SockJS framing without sockets: message encoding, client payloads, session ids."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.protocol import sockjs
from tidings.protocol.sockjs import SockJSError


def test_frames():
    assert sockjs.messages_frame([sockjs.message("a"), sockjs.message("b\n")]) == b'a["a","b\\n"]'
    assert sockjs.close_frame(3000, "Go away!") == b'c[3000,"Go away!"]'


def test_characters_browsers_mangle_are_escaped():
    assert sockjs.message("x\u2028y\ufeff") == b'"x\\u2028y\\ufeff"'
    assert sockjs.message("caf\u00e9") == '"café"'.encode()


@given(st.text())
def test_a_message_decodes_to_its_text(text):
    assert orjson.loads(sockjs.message(text)) == text


@pytest.mark.parametrize("payload, messages", [
    (b'["a","b"]', ["a", "b"]), (b'"one"', ["one"]), (b"[]", []),
])
def test_client_payloads(payload, messages):
    assert sockjs.parse_messages(payload) == messages


@pytest.mark.parametrize("payload, error", [
    (b"", "Payload expected."), (b"[", "Broken JSON encoding."),
    (b"[1]", "Broken JSON encoding."), (b'{"a":1}', "Broken JSON encoding."),
])
def test_bad_client_payloads(payload, error):
    with pytest.raises(SockJSError, match=error.replace(".", r"\.")):
        sockjs.parse_messages(payload)


def test_session_ids_have_no_dots_or_slashes():
    assert sockjs.valid_session_id("abc-123")
    assert not sockjs.valid_session_id("a.b")
    assert not sockjs.valid_session_id("")
