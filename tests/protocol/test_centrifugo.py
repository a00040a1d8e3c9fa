"""The Centrifugo codec without sockets: both encodings, several commands a frame, fuzzed."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.model import ClientInfo, Publication
from tidings.protocol import centrifugo as cf
from tidings.protocol import centrifugo_pb2 as pb


def _delimited(*messages) -> bytes:
    out = b""
    for message in messages:
        raw = message.SerializeToString()
        out += cf.encode_varint(len(raw)) + raw
    return out


def test_a_json_frame_holds_several_commands_one_a_line_and_the_empty_one_is_a_pong():
    frame = (b'{"id":1,"connect":{"token":"t","subs":{"user:a":{"recover":true,"offset":3,'
             b'"epoch":"e1"}}}}\n{}\n{"id":2,"publish":{"channel":"room:x","data":{"a":[1]}}}\n')
    connect, pong, publish = cf.decode_json(frame)
    assert connect == cf.Command(1, "connect", cf.Connect("t", None,
                                                          {"user:a": cf.Position(3, "e1")}))
    assert pong == cf.Command(0, "")
    assert publish.request == cf.Publish("room:x", b'{"a":[1]}')


def test_a_protobuf_frame_holds_several_length_delimited_commands():
    frame = _delimited(
        pb.Command(id=3, subscribe={"channel": "room:x", "recover": True, "offset": 5,
                                    "epoch": "ee"}),
        pb.Command(id=4, history={"channel": "room:x", "limit": 2,
                                  "since": {"offset": 1, "epoch": "ee"}, "reverse": True}),
        pb.Command(),
    )
    subscribe, history, pong = cf.decode_protobuf(frame)
    assert subscribe.request == cf.Subscribe("room:x", "", cf.Position(5, "ee"))
    assert history.request == cf.History("room:x", 2, cf.Position(1, "ee"), True)
    assert pong == cf.Command(0, "")


@pytest.mark.parametrize("frame", [b"{", b"[1]", b'"x"', b'{"id":-1,"ping":{}}',
                                   b'{"id":"1","ping":{}}', b'{"subscribe":{"channel":"a"}}'])
def test_an_unreadable_json_frame_is_a_frame_error(frame):
    with pytest.raises(cf.FrameError):
        cf.decode_json(frame)


@pytest.mark.parametrize("command, message", [
    (b'{"id":5}', "names no method"),
    (b'{"id":5,"ping":{},"presence":{"channel":"a"}}', "more than one method"),
    (b'{"id":5,"subscribe":{"channel":7}}', "'channel' must be str"),
    (b'{"id":5,"subscribe":{}}', "'channel' is required"),
    (b'{"id":5,"history":{"channel":"a","since":{"offset":-1}}}', "at least 0"),
    (b'{"id":5,"publish":{"channel":"a"}}', "'data' is required"),
    (b'{"id":5,"refresh":{}}', "'token' is required"),
])
def test_a_malformed_request_is_answered_in_its_turn_with_its_id(command, message):
    bad, ping = cf.decode_json(command + b'\n{"id":6,"ping":{}}')
    assert isinstance(bad, cf.RequestError) and bad.id == 5 and message in bad.message
    assert ping == cf.Command(6, "ping", cf.Empty())


def test_protobuf_data_must_hold_json_because_tidings_stores_json():
    [bad] = cf.decode_protobuf(_delimited(pb.Command(id=1, publish={"channel": "room:x",
                                                                     "data": b"\xff\x00"})))
    assert isinstance(bad, cf.RequestError) and "must hold JSON" in bad.message


@pytest.mark.parametrize("frame", [b"\x05\x08", b"\xff\xff\xff\xff\xff\xff", b"\x02\xff\xff"])
def test_a_broken_protobuf_frame_is_a_frame_error(frame):
    with pytest.raises(cf.FrameError):
        cf.decode_protobuf(frame)


def test_features_tidings_lacks_are_named_for_the_not_available_answer():
    [delta, typed] = cf.decode_json(b'{"id":1,"subscribe":{"channel":"a","delta":"fossil"}}\n'
                                    b'{"id":2,"publish":{"channel":"a","data":1,"type":1}}')
    assert delta.request.unsupported == "delta compression"
    assert typed.request.unsupported == "map publications"


PUB = Publication("room:x", 7, "e1", b'{"text":"hi"}', 1700000000000, "billing", "alice")


def test_replies_in_json_splice_data_raw_and_go_one_a_line():
    frame = cf.JSON.encode([cf.push("room:x", "pub", cf.publication(PUB)),
                            cf.error_reply(3, 100, "boom", temporary=True), {}])
    first, second, ping = frame.split(b"\n")
    assert orjson.loads(first) == {"push": {"channel": "room:x", "pub": {
        "data": {"text": "hi"}, "offset": 7, "time": 1700000000000, "info": {"user": "alice"},
        "tags": {"source": "billing"}}}}
    assert orjson.loads(second) == {"id": 3, "error": {"code": 100, "message": "boom",
                                                       "temporary": True}}
    assert ping == b"{}" == cf.JSON.ping


def test_replies_in_protobuf_are_length_delimited_reply_messages():
    info = cf.client_info(ClientInfo("c1", "bob", "n1", {"role": "admin"}))
    frame = cf.PROTOBUF.encode([cf.reply(1, "publish", {}),
                                cf.push("room:x", "join", {"info": info}),
                                cf.push("room:x", "pub", cf.publication(PUB))])
    replies, pos = [], 0
    while pos < len(frame):
        size, pos = cf.read_varint(frame, pos)
        replies.append(pb.Reply.FromString(frame[pos:pos + size]))
        pos += size
    publish, join, pub = replies
    assert publish.id == 1 and publish.HasField("publish")
    assert (join.push.join.info.user, orjson.loads(join.push.join.info.conn_info)) == (
        "bob", {"role": "admin"})
    assert (pub.push.pub.data, pub.push.pub.offset, pub.push.pub.tags["source"]) == (
        b'{"text":"hi"}', 7, "billing")
    assert cf.PROTOBUF.ping == b"\x00"  # an empty Reply: a ping


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=8)


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=20), st.integers(1, 2**32 - 1), json_values,
       st.integers(0, 2**40), st.text(max_size=10))
def test_commands_decode_alike_in_both_encodings(channel, id, data, offset, epoch):
    as_json = orjson.dumps({"id": id, "publish": {"channel": channel, "data": data}}) + b"\n" + \
        orjson.dumps({"id": id, "subscribe": {"channel": channel, "recover": True,
                                              "offset": offset, "epoch": epoch}})
    as_protobuf = _delimited(
        pb.Command(id=id, publish={"channel": channel, "data": orjson.dumps(data)}),
        pb.Command(id=id, subscribe={"channel": channel, "recover": True, "offset": offset,
                                     "epoch": epoch}))
    assert cf.decode_json(as_json) == cf.decode_protobuf(as_protobuf)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_fail_with_a_frame_error(data):
    for decode in (cf.decode_json, cf.decode_protobuf):
        try:
            commands = decode(data)
        except cf.FrameError:
            continue
        assert all(isinstance(c, (cf.Command, cf.RequestError)) for c in commands)


@settings(max_examples=300)
@given(st.lists(st.sampled_from([b'{"id":1,"ping":{}}', b"{}", b'{"id":2', b"\n", b"[",
                                 b'"data":', b'{"id":3,"history":{"channel":"a","limit":-1}}',
                                 b"\xff", b"}"]), max_size=8))
def test_json_frames_built_from_fragments_never_crash_the_decoder(parts):
    try:
        cf.decode_json(b"".join(parts))
    except cf.FrameError:
        pass
