"""The envelope voice travels in between nodes, without sockets; fuzzed with hypothesis."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.protocol import voicelink
from tidings.protocol.voicelink import Envelope, LinkKind, VoiceLinkError

names = st.text(min_size=1, max_size=300).filter(lambda n: len(n.encode()) <= 0xFFFF)


def test_a_frame_envelope_round_trips_and_costs_four_bytes_and_the_origin():
    body = b"\x01\x01\x00\x0d" + bytes(200)
    packed = voicelink.pack(LinkKind.FRAME, "n1", body)
    assert len(packed) == len(body) + 4 + 2
    assert voicelink.unpack(packed) == Envelope(LinkKind.FRAME, "n1", body)


@given(kind=st.sampled_from(list(LinkKind)), origin=names, body=st.binary(max_size=500))
def test_any_envelope_round_trips(kind, origin, body):
    packed = voicelink.pack(kind, origin, body)
    assert voicelink.is_voice(packed)
    assert voicelink.unpack(packed) == Envelope(kind, origin, body)


@given(st.binary(max_size=64))
def test_any_bytes_are_an_envelope_or_a_voicelinkerror(data):
    try:
        envelope = voicelink.unpack(data)
    except VoiceLinkError:
        return
    assert voicelink.pack(envelope.kind, envelope.origin, envelope.body) == data


def test_a_nodes_json_envelope_is_never_taken_for_voice():
    assert not voicelink.is_voice(orjson.dumps({"o": "n1", "k": "p", "b": {}}))
    assert not voicelink.is_voice(b"")


@pytest.mark.parametrize("data, message", [
    (b"\x00\x01", "at least 4 header bytes"),
    (b"\x7b\x01\x00\x02n1", "no voice envelope"),
    (b"\x00\x09\x00\x02n1", "unknown envelope kind 9"),
    (b"\x00\x01\x00\x00", "origin is empty"),
    (b"\x00\x01\x00\x05n1", "ends inside the origin"),
    (b"\x00\x01\x00\x02\xff\xfe", "origin must be UTF-8"),
])
def test_bad_envelopes_say_what_is_wrong(data, message):
    with pytest.raises(VoiceLinkError, match=message):
        voicelink.unpack(data)


def test_an_origin_name_that_does_not_fit_is_refused():
    with pytest.raises(VoiceLinkError):
        voicelink.pack(LinkKind.FRAME, "", b"")
    with pytest.raises(VoiceLinkError):
        voicelink.pack(LinkKind.FRAME, "n" * 70000, b"")
