"""The native protocol parser and encoders, without sockets."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.errors import ErrorCode
from tidings.model import Publication
from tidings.protocol import native
from tidings.protocol.native import ProtocolError, parse_command


def _parse(obj) -> native.Command:
    return parse_command(orjson.dumps(obj))


@pytest.mark.parametrize("obj, expected", [
    ({"id": 1, "connect": {"token": "t"}}, native.Connect("t", None, {})),
    ({"id": 1, "connect": {"user": "a", "recover": {"user:a": {"offset": 2, "epoch": "e"}}}},
     native.Connect(None, "a", {"user:a": native.Position(2, "e")})),
    ({"id": 2, "subscribe": {"channel": "room:a"}}, native.Subscribe("room:a", None)),
    ({"id": 2, "subscribe": {"channel": "room:a", "offset": 0, "epoch": "e"}},
     native.Subscribe("room:a", native.Position(0, "e"))),
    ({"id": 3, "unsubscribe": {"channel": "room:a"}}, native.Unsubscribe("room:a")),
    ({"id": 4, "publish": {"channel": "room:a", "data": {"k": [1, "ü"]}}},
     native.Publish("room:a", orjson.dumps({"k": [1, "ü"]}))),
    ({"id": 5, "send": {"user": "bob", "data": None}}, native.Send("bob", b"null")),
    ({"id": 6, "history": {"channel": "room:a"}}, native.History("room:a", 100, None, False)),
    ({"id": 6, "history": {"channel": "room:a", "limit": 5, "since": 9, "reverse": True}},
     native.History("room:a", 5, 9, True)),
    ({"id": 7, "presence": {"channel": "room:a"}}, native.Presence("room:a")),
    ({"pong": {}}, native.Pong()),
])
def test_every_method_parses_to_its_typed_params(obj, expected):
    command = _parse(obj)
    assert command.params == expected
    assert command.id == obj.get("id")


@pytest.mark.parametrize("frame, code, id", [
    (b"{nope", ErrorCode.BAD_REQUEST, None),
    (b"[]", ErrorCode.BAD_REQUEST, None),
    (b'"text"', ErrorCode.BAD_REQUEST, None),
    (b'{"id": true, "presence": {"channel": "r"}}', ErrorCode.BAD_REQUEST, None),
    (b'{"id": 1.5, "presence": {"channel": "r"}}', ErrorCode.BAD_REQUEST, None),
    (b'{"id": 0, "presence": {"channel": "r"}}', ErrorCode.BAD_REQUEST, None),
    (b'{"id": -3, "presence": {"channel": "r"}}', ErrorCode.BAD_REQUEST, None),
    (b'{"id": 9007199254740993, "presence": {"channel": "r"}}', ErrorCode.BAD_REQUEST, None),
    (b'{"id": 1}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "presence": {}, "history": {}}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "fly": {}}', ErrorCode.UNKNOWN_METHOD, 1),
    (b'{"presence": {"channel": "r"}}', ErrorCode.BAD_REQUEST, None),
    (b'{"id": 1, "presence": []}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "presence": {"channel": 7}}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "publish": {"channel": "r"}}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": 1}}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": true, "epoch": "e"}}',
     ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": -1, "epoch": "e"}}',
     ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "history": {"channel": "r", "limit": 0}}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "history": {"channel": "r", "limit": 1001}}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "history": {"channel": "r", "reverse": "yes"}}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "connect": {"recover": []}}', ErrorCode.BAD_REQUEST, 1),
    (b'{"id": 1, "connect": {"recover": {"user:a": {"offset": 1}}}}', ErrorCode.BAD_REQUEST, 1),
])
def test_malformed_frames_raise_protocol_errors_with_code_and_id(frame, code, id):
    with pytest.raises(ProtocolError) as err:
        parse_command(frame)
    assert err.value.code == code
    assert err.value.id == id


def test_encoders_produce_the_documented_shapes():
    assert orjson.loads(native.encode_reply(3, "publish", {"offset": 1})) == {
        "id": 3, "publish": {"offset": 1}}
    assert orjson.loads(native.encode_error(3, ErrorCode.BAD_CHANNEL, "no")) == {
        "id": 3, "error": {"code": 107, "message": "no"}}
    assert orjson.loads(native.encode_error(None, ErrorCode.BAD_REQUEST, "x")) == {
        "error": {"code": 101, "message": "x"}}
    pub = Publication("room:a", 4, "e", '{"t":"ü"}'.encode(), 1000, "crm", "bob")
    raw = native.encode_pub(pub)
    assert '{"t":"ü"}'.encode() in raw  # the payload is spliced in unchanged
    assert orjson.loads(raw) == {"pub": {"channel": "room:a", "offset": 4, "epoch": "e",
                                         "data": {"t": "ü"}, "time": 1000, "source": "crm",
                                         "sender": "bob"}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(frame):
    try:
        parse_command(frame)
    except ProtocolError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", *native.METHODS, "x"]), json_values, max_size=3))
def test_arbitrary_json_commands_never_raise_anything_but_protocol_error(obj):
    try:
        parse_command(orjson.dumps(obj))
    except ProtocolError:
        pass
