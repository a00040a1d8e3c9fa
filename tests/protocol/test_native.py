"""The native protocol parser and encoders, without sockets."""

from __future__ import annotations

import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.errors import ErrorCode
from tidings.model import Publication
from tidings.protocol import native
from tidings.protocol.native import MAX_HISTORY_LIMIT, MAX_ID, ProtocolError, parse_command


def _parse(obj) -> native.Command:
    return parse_command(orjson.dumps(obj))


# ---- every method into its typed params -------------------------------------------------


@pytest.mark.parametrize("obj, expected", [
    ({"id": 1, "connect": {"token": "t"}}, native.Connect("t", None, {})),
    ({"id": 1, "connect": {"user": "a"}}, native.Connect(None, "a", {})),
    ({"id": 1, "connect": {}}, native.Connect(None, None, {})),
    ({"id": 1, "connect": {"user": "a", "recover": {"user:a": {"offset": 2, "epoch": "e"},
                                                    "broadcast": {"offset": 0, "epoch": "f"}}}},
     native.Connect(None, "a", {"user:a": native.Position(2, "e"),
                                "broadcast": native.Position(0, "f")})),
    ({"id": 1, "connect": {"token": "t", "recover": {}}}, native.Connect("t", None, {})),
    ({"id": 2, "subscribe": {"channel": "room:a"}}, native.Subscribe("room:a", None)),
    ({"id": 2, "subscribe": {"channel": "room:a", "offset": 0, "epoch": "e"}},
     native.Subscribe("room:a", native.Position(0, "e"))),
    ({"id": 2, "subscribe": {"channel": "room:a", "offset": MAX_ID, "epoch": "e"}},
     native.Subscribe("room:a", native.Position(MAX_ID, "e"))),
    ({"id": 3, "unsubscribe": {"channel": "room:a"}}, native.Unsubscribe("room:a")),
    ({"id": 4, "publish": {"channel": "room:a", "data": {"k": [1, "ü"]}}},
     native.Publish("room:a", orjson.dumps({"k": [1, "ü"]}))),
    ({"id": 4, "publish": {"channel": "room:a", "data": "plain"}},
     native.Publish("room:a", b'"plain"')),
    ({"id": 5, "send": {"user": "bob", "data": None}}, native.Send("bob", b"null")),
    ({"id": 5, "send": {"user": "bob", "data": [1.5, True]}}, native.Send("bob", b"[1.5,true]")),
    ({"id": 6, "history": {"channel": "room:a"}}, native.History("room:a", 100, None, False)),
    ({"id": 6, "history": {"channel": "room:a", "limit": 5, "since": 9, "reverse": True}},
     native.History("room:a", 5, 9, True)),
    ({"id": 6, "history": {"channel": "room:a", "limit": 1, "since": 0, "reverse": False}},
     native.History("room:a", 1, 0, False)),
    ({"id": 6, "history": {"channel": "room:a", "limit": MAX_HISTORY_LIMIT}},
     native.History("room:a", MAX_HISTORY_LIMIT, None, False)),
    ({"id": 7, "presence": {"channel": "room:a"}}, native.Presence("room:a")),
    ({"pong": {}}, native.Pong()),
    ({"id": 8, "pong": {}}, native.Pong()),
])
def test_every_method_parses_to_its_typed_params(obj, expected):
    command = _parse(obj)
    assert command.params == expected
    assert command.id == obj.get("id")
    assert command.method == next(key for key in obj if key != "id")


def test_ids_from_one_to_two_to_the_53_minus_one_are_accepted():
    for id in (1, 2, MAX_ID):
        assert _parse({"id": id, "presence": {"channel": "r"}}).id == id


def test_a_text_frame_parses_like_its_bytes():
    text = '{"id": 3, "publish": {"channel": "room:ü", "data": "größe"}}'
    assert parse_command(text) == parse_command(text.encode())


def test_null_optional_fields_mean_absent():
    assert _parse({"id": 1, "history": {"channel": "r", "limit": None, "since": None,
                                        "reverse": None}}).params == native.History("r", 100,
                                                                                    None, False)
    assert _parse({"id": 1, "subscribe": {"channel": "r", "offset": None, "epoch": None}}
                  ).params == native.Subscribe("r", None)
    assert _parse({"id": 1, "connect": {"recover": None}}).params == native.Connect(None, None, {})


def test_unknown_fields_in_params_are_ignored():
    assert _parse({"id": 1, "presence": {"channel": "r", "extra": [1]}}).params == \
        native.Presence("r")


# ---- malformed frames -------------------------------------------------------------------

BAD, UNKNOWN = ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_METHOD


@pytest.mark.parametrize("frame, code, id", [
    # not a JSON object: no id can be read
    (b"{nope", BAD, None),
    (b"", BAD, None),
    (b"\xff\xfe", BAD, None),
    (b'{"id": 1, "presence": {"channel": "r"}} trailing', BAD, None),
    (b"[]", BAD, None),
    (b'[{"id": 1, "presence": {"channel": "r"}}]', BAD, None),
    (b'"text"', BAD, None),
    (b"42", BAD, None),
    (b"null", BAD, None),
    # ids that are not integers from 1 to 2^53-1
    (b'{"id": true, "presence": {"channel": "r"}}', BAD, None),
    (b'{"id": false, "presence": {"channel": "r"}}', BAD, None),
    (b'{"id": 1.5, "presence": {"channel": "r"}}', BAD, None),
    (b'{"id": 1.0, "presence": {"channel": "r"}}', BAD, None),
    (b'{"id": "1", "presence": {"channel": "r"}}', BAD, None),
    (b'{"id": [1], "presence": {"channel": "r"}}', BAD, None),
    (b'{"id": 0, "presence": {"channel": "r"}}', BAD, None),
    (b'{"id": -3, "presence": {"channel": "r"}}', BAD, None),
    (b'{"id": 9007199254740992, "presence": {"channel": "r"}}', BAD, None),  # 2^53
    (b'{"id": 18446744073709551616, "presence": {"channel": "r"}}', BAD, None),  # 2^64
    (b'{"id": 1e300, "presence": {"channel": "r"}}', BAD, None),
    # zero or two methods, unknown method, missing id
    (b"{}", BAD, None),
    (b'{"id": 1}', BAD, 1),
    (b'{"id": 1, "presence": {}, "history": {}}', BAD, 1),
    (b'{"presence": {"channel": "r"}, "history": {"channel": "r"}}', BAD, None),
    (b'{"id": 1, "fly": {}}', UNKNOWN, 1),
    (b'{"fly": {}}', UNKNOWN, None),
    (b'{"id": 1, "Publish": {"channel": "r", "data": 1}}', UNKNOWN, 1),
    (b'{"presence": {"channel": "r"}}', BAD, None),
    (b'{"id": null, "presence": {"channel": "r"}}', BAD, None),
    # params that are not an object
    (b'{"id": 1, "presence": []}', BAD, 1),
    (b'{"id": 1, "presence": null}', BAD, 1),
    (b'{"id": 1, "presence": "room:a"}', BAD, 1),
    (b'{"id": 1, "pong": 5}', BAD, 1),
    # missing or wrongly typed fields
    (b'{"id": 1, "presence": {"channel": 7}}', BAD, 1),
    (b'{"id": 1, "presence": {}}', BAD, 1),
    (b'{"id": 1, "subscribe": {}}', BAD, 1),
    (b'{"id": 1, "subscribe": {"channel": null}}', BAD, 1),
    (b'{"id": 1, "subscribe": {"channel": ["room:a"]}}', BAD, 1),
    (b'{"id": 1, "unsubscribe": {"channel": {}}}', BAD, 1),
    (b'{"id": 1, "publish": {"channel": "r"}}', BAD, 1),
    (b'{"id": 1, "publish": {"data": 1}}', BAD, 1),
    (b'{"id": 1, "send": {"data": 1}}', BAD, 1),
    (b'{"id": 1, "send": {"user": "bob"}}', BAD, 1),
    (b'{"id": 1, "send": {"user": 5, "data": 1}}', BAD, 1),
    (b'{"id": 1, "connect": {"token": 5}}', BAD, 1),
    (b'{"id": 1, "connect": {"user": true}}', BAD, 1),
    # offset and epoch go together, offsets are non-negative integers
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": 1}}', BAD, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "epoch": "e"}}', BAD, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": true, "epoch": "e"}}', BAD, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": -1, "epoch": "e"}}', BAD, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": 1.5, "epoch": "e"}}', BAD, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": "3", "epoch": "e"}}', BAD, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": 9007199254740992, "epoch": "e"}}',
     BAD, 1),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": 1, "epoch": 5}}', BAD, 1),
    # history bounds and types
    (b'{"id": 1, "history": {}}', BAD, 1),
    (b'{"id": 1, "history": {"channel": "r", "limit": 0}}', BAD, 1),
    (b'{"id": 1, "history": {"channel": "r", "limit": -1}}', BAD, 1),
    (b'{"id": 1, "history": {"channel": "r", "limit": 1001}}', BAD, 1),
    (b'{"id": 1, "history": {"channel": "r", "limit": "5"}}', BAD, 1),
    (b'{"id": 1, "history": {"channel": "r", "limit": true}}', BAD, 1),
    (b'{"id": 1, "history": {"channel": "r", "since": -1}}', BAD, 1),
    (b'{"id": 1, "history": {"channel": "r", "since": 2.5}}', BAD, 1),
    (b'{"id": 1, "history": {"channel": "r", "reverse": "yes"}}', BAD, 1),
    (b'{"id": 1, "history": {"channel": "r", "reverse": 1}}', BAD, 1),
    # recover: an object of channel -> {offset, epoch}
    (b'{"id": 1, "connect": {"recover": []}}', BAD, 1),
    (b'{"id": 1, "connect": {"recover": "user:a"}}', BAD, 1),
    (b'{"id": 1, "connect": {"recover": {"user:a": 5}}}', BAD, 1),
    (b'{"id": 1, "connect": {"recover": {"user:a": null}}}', BAD, 1),
    (b'{"id": 1, "connect": {"recover": {"user:a": {}}}}', BAD, 1),
    (b'{"id": 1, "connect": {"recover": {"user:a": {"offset": 1}}}}', BAD, 1),
    (b'{"id": 1, "connect": {"recover": {"user:a": {"epoch": "e"}}}}', BAD, 1),
    (b'{"id": 1, "connect": {"recover": {"user:a": {"offset": -1, "epoch": "e"}}}}', BAD, 1),
    (b'{"id": 1, "connect": {"recover": {"user:a": {"offset": 1, "epoch": 1}}}}', BAD, 1),
])
def test_malformed_frames_raise_protocol_errors_with_code_and_id(frame, code, id):
    with pytest.raises(ProtocolError) as err:
        parse_command(frame)
    assert err.value.code == code
    assert err.value.id == id
    assert err.value.message


@pytest.mark.parametrize("frame, field", [
    (b'{"id": 1, "publish": {"channel": "r"}}', "data"),
    (b'{"id": 1, "presence": {"channel": 7}}', "channel"),
    (b'{"id": 1, "history": {"channel": "r", "limit": 1001}}', "limit"),
    (b'{"id": 1, "history": {"channel": "r", "reverse": 1}}', "reverse"),
    (b'{"id": 1, "subscribe": {"channel": "r", "offset": 1}}', "epoch"),
    (b'{"id": 0, "presence": {"channel": "r"}}', "id"),
])
def test_error_messages_name_the_field_at_fault(frame, field):
    with pytest.raises(ProtocolError, match=f"'{field}'"):
        parse_command(frame)


def test_deeply_nested_data_is_a_protocol_error():
    frame = b'{"id": 1, "publish": {"channel": "room:a", "data": ' + b"[" * 300 + b"]" * 300 + b"}}"
    with pytest.raises(ProtocolError) as err:
        parse_command(frame)
    assert err.value.code == ErrorCode.BAD_REQUEST and err.value.id == 1


# ---- encoders ---------------------------------------------------------------------------


def test_encode_reply_is_id_and_method_result():
    raw = native.encode_reply(3, "publish", {"offset": 1, "epoch": "é"})
    assert orjson.loads(raw) == {"id": 3, "publish": {"offset": 1, "epoch": "é"}}
    assert "é".encode() in raw  # UTF-8 text, not \u escapes


def test_encode_error_with_id():
    assert orjson.loads(native.encode_error(3, ErrorCode.BAD_CHANNEL, "no")) == {
        "id": 3, "error": {"code": 107, "message": "no"}}


def test_encode_error_without_id_has_no_id_key():
    raw = native.encode_error(None, ErrorCode.BAD_REQUEST, "not JSON: «x»")
    assert orjson.loads(raw) == {"error": {"code": 101, "message": "not JSON: «x»"}}
    assert b'"id"' not in raw


def test_encode_error_code_is_a_plain_integer():
    raw = native.encode_error(1, ErrorCode.UNKNOWN_METHOD, "x")
    assert b'"code":102' in raw


def test_encode_push_and_ping_have_no_id():
    assert orjson.loads(native.encode_push("disconnect", {"code": 4007, "reason": "r",
                                                          "reconnect": True})) == {
        "disconnect": {"code": 4007, "reason": "r", "reconnect": True}}
    assert orjson.loads(native.PING) == {"ping": {}}


def test_encode_pub_splices_the_raw_data_unchanged():
    data = '{ "t" : "ü 日本 😀", "n": 1.50, "e": 1E3 }'.encode()  # not orjson's own spelling
    pub = Publication("room:a", 4, "e", data, 1000, "crm", "bob")
    raw = native.encode_pub(pub)
    assert data in raw  # byte for byte
    assert orjson.loads(raw) == {"pub": {"channel": "room:a", "offset": 4, "epoch": "e",
                                         "data": {"t": "ü 日本 😀", "n": 1.5, "e": 1000.0},
                                         "time": 1000, "source": "crm", "sender": "bob"}}


def test_encode_pub_leaves_out_absent_source_and_sender():
    raw = native.encode_pub(Publication("voice:r", 0, "", b'"hi"', 7))
    assert orjson.loads(raw) == {"pub": {"channel": "voice:r", "offset": 0, "epoch": "",
                                         "data": "hi", "time": 7}}


def test_parsed_data_round_trips_into_a_pub():
    command = parse_command('{"id":1,"publish":{"channel":"room:a","data":{"x":"ü","y":[null]}}}')
    pub = Publication("room:a", 1, "e", command.params.data, 5)
    assert orjson.loads(native.encode_pub(pub))["pub"]["data"] == {"x": "ü", "y": [None]}


# ---- fuzzing: nothing but ProtocolError ---------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)
FIELDS = ["channel", "data", "user", "token", "offset", "epoch", "limit", "since", "reverse",
          "recover"]
params = st.dictionaries(st.sampled_from(FIELDS), json_values | st.dictionaries(
    st.sampled_from(["user:a", "broadcast"]),
    st.dictionaries(st.sampled_from(["offset", "epoch"]), json_values, max_size=2), max_size=2),
    max_size=5)


def _only_protocol_errors(frame) -> None:
    try:
        command = parse_command(frame)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_METHOD)
        assert exc.id is None or 1 <= exc.id <= MAX_ID
    else:
        assert command.method in native.METHODS
        assert command.id is not None or command.method == "pong"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_but_protocol_error(text):
    _only_protocol_errors(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(frame):
    _only_protocol_errors(frame)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_values_never_raise_anything_but_protocol_error(value):
    _only_protocol_errors(orjson.dumps(value))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", *native.METHODS, "x"]), json_values, max_size=3))
def test_arbitrary_json_objects_never_raise_anything_but_protocol_error(obj):
    _only_protocol_errors(orjson.dumps(obj))


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.none(), st.integers(-2, 2**54), json_values),
       st.sampled_from(sorted(native.METHODS)), params)
def test_commands_with_arbitrary_params_never_raise_anything_but_protocol_error(id, method,
                                                                                  fields):
    _only_protocol_errors(orjson.dumps({"id": id, method: fields}))


# ---- fuzzing: an answer within a time bound -----------------------------------------------
#
# Any frame a client may send (up to max_frame_bytes, 64 KiB by default) is a command or a
# documented error (101, 102) within TIME_BOUND of CPU time: the thread's own CPU time, so
# that a busy neighbour on the machine cannot make the test fail. Typical frames take
# microseconds; the bound is there to catch anything quadratic.

TIME_BOUND = 0.05  # seconds
FRAME_LIMIT = 65536


def _answers_in_time(frame) -> None:
    assert len(frame) < FRAME_LIMIT
    started = time.thread_time()
    _only_protocol_errors(frame)
    assert time.thread_time() - started < TIME_BOUND


def _fill(prefix: str, unit: str, suffix: str) -> str:
    """prefix + unit repeated + suffix, as long (in UTF-8) as a frame may be."""
    room = FRAME_LIMIT - 1 - len((prefix + suffix).encode())
    return prefix + unit * (room // len(unit.encode())) + suffix


@pytest.mark.parametrize("frame", [
    _fill("", "[", ""),  # nested past any depth
    _fill('{"id":1,"publish":{"channel":"room:a","data":', "[", ""),
    '{"id":1,"publish":{"channel":"room:a","data":' + "[" * 254 + "]" * 254 + "}}",
    _fill('{"id":1,"publish":{"channel":"room:a","data":', "1", "}}"),  # a huge number
    _fill('{"id":1,"publish":{"channel":"room:a","data":"', "\\u0000", '"}}'),
    _fill('{"id":1,"publish":{"channel":"room:a","data":"', "\\ud83d\\ude00", '"}}'),
    _fill('{"id":1,"publish":{"channel":"room:a","data":[', "0.1e-300,", "0]}}"),
    _fill('{"id":1,"publish":{"channel":"room:a","data":{', '"k":1,', '"z":1}}}'),  # same key
    _fill('{"id":1,"connect":{"recover":{', '"user:a":{"offset":1,"epoch":"e"},', '"b":{}}}}'),
    _fill('{"id":1,"subscribe":{"channel":"', "a", '"}}'),  # an overlong channel
    _fill('{"id":1,"send":{"user":"', "é", '","data":1}}'),
    _fill('{"id":1,', '"x":1,', '"history":{}}'),  # thousands of methods
    _fill("", " ", "{}"),
    _fill('"', "\\\\", '"'),
])
def test_worst_case_frames_are_answered_within_the_time_bound(frame):
    _answers_in_time(frame)
    _answers_in_time(frame.encode())


big_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=2000),
    lambda inner: st.lists(inner, max_size=30) | st.dictionaries(st.text(max_size=20), inner,
                                                                 max_size=30),
    max_leaves=100,
)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1000, max_size=FRAME_LIMIT - 1))
def test_large_arbitrary_bytes_are_answered_within_the_time_bound(frame):
    _answers_in_time(frame)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(native.METHODS)), big_json, st.one_of(st.none(), big_json))
def test_large_commands_are_answered_within_the_time_bound(method, data, other):
    frame = orjson.dumps({"id": 1, method: {"channel": "room:a", "data": data, "recover": other,
                                            "user": other}})
    if len(frame) < FRAME_LIMIT:
        _answers_in_time(frame)
# ---- the message center -----------------------------------------------------------------


@pytest.mark.parametrize("obj, expected", [
    ({"id": 1, "publish": {"channel": "room:a", "data": 1, "idempotency_key": "q-1"}},
     native.Publish("room:a", b"1", "q-1")),
    ({"id": 1, "send": {"user": "bo", "data": 1, "idempotency_key": "ü" * 100}},
     native.Send("bo", b"1", "ü" * 100)),
    ({"id": 1, "inbox": {}}, native.InboxQuery(None, None, 10)),
    ({"id": 1, "inbox": {"limit": 100}}, native.InboxQuery(None, None, 100)),
    ({"id": 1, "inbox": {"source": "billing", "before": 9, "limit": 3}},
     native.InboxQuery("billing", 9, 3)),
    ({"id": 1, "read": {"offset": 4}}, native.Read(4, None, None, False)),
    ({"id": 1, "read": {"source": "crm", "upto": 8}}, native.Read(None, "crm", 8, False)),
    ({"id": 1, "read": {"all": True}}, native.Read(None, None, None, True)),
    ({"id": 1, "unread": {"offset": 4}}, native.Unread(4)),
    ({"id": 1, "seen": {}}, native.Seen(None)),
    ({"id": 1, "seen": {"source": "crm"}}, native.Seen("crm")),
    ({"id": 1, "archive": {"offset": 4}}, native.Archive(4)),
])
def test_message_center_methods_parse_to_their_typed_params(obj, expected):
    assert _parse(obj).params == expected


@pytest.mark.parametrize("obj, field", [
    ({"id": 1, "publish": {"channel": "room:a", "data": 1, "idempotency_key": ""}},
     "idempotency_key"),
    ({"id": 1, "publish": {"channel": "room:a", "data": 1, "idempotency_key": "k" * 101}},
     "idempotency_key"),
    ({"id": 1, "send": {"user": "b", "data": 1, "idempotency_key": "new\nline"}},
     "idempotency_key"),
    ({"id": 1, "send": {"user": "b", "data": 1, "idempotency_key": 7}}, "idempotency_key"),
    ({"id": 1, "inbox": {"limit": 101}}, "limit"),
    ({"id": 1, "inbox": {"before": 3}}, "before"),
    ({"id": 1, "inbox": {"source": "s" * 101}}, "source"),
    ({"id": 1, "unread": {}}, "offset"),
    ({"id": 1, "archive": {"offset": "4"}}, "offset"),
    ({"id": 1, "read": {"all": "yes"}}, "all"),
])
def test_bad_message_center_params_are_bad_requests_naming_the_field(obj, field):
    with pytest.raises(ProtocolError) as err:
        _parse(obj)
    assert err.value.code == ErrorCode.BAD_REQUEST and field in err.value.message
