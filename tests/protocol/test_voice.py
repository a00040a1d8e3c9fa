"""The voice frame header, parsed and encoded without sockets; fuzzed with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.protocol import voice
from tidings.protocol.voice import Kind, VoiceFormatError, VoiceFrame

ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=200)


def test_a_frame_round_trips_through_encode_and_parse():
    frame = VoiceFrame(Kind.OPUS, 7, 123456, "voice:lobby", "", None, b"\x01\x02opus")
    assert voice.parse(voice.encode(frame)) == frame


def test_a_whisper_carries_its_target():
    frame = VoiceFrame(Kind.TEXT, 1, 2, "voice:lobby", "", "bob", "悄悄话".encode())
    parsed = voice.parse(voice.encode(frame))
    assert parsed.target == "bob" and parsed.payload.decode() == "悄悄话"
    assert not parsed.audio


def test_with_sender_names_the_sender_and_keeps_the_rest():
    frame = VoiceFrame(Kind.OPUS, 9, 99, "voice:r", "", "carol", b"payload")
    data = voice.encode(frame)
    named = voice.parse(voice.with_sender(data, voice.parse(data), "alice"))
    assert named.sender == "alice"
    assert (named.target, named.seq, named.timestamp, named.payload) == ("carol", 9, 99, b"payload")


@given(kind=st.sampled_from([Kind.OPUS, Kind.PCM]), seq=st.integers(0, 2**32 - 1),
       ts=st.integers(0, 2**32 - 1), channel=ids, sender=ids | st.just(""),
       target=ids | st.none(), payload=st.binary(max_size=300))
def test_any_valid_frame_round_trips(kind, seq, ts, channel, sender, target, payload):
    frame = VoiceFrame(kind, seq, ts, channel, sender, target, payload)
    assert voice.parse(voice.encode(frame)) == frame


@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise_voice_format_error(data):
    try:
        voice.parse(data)
    except VoiceFormatError:
        pass


GOOD = voice.encode(VoiceFrame(Kind.OPUS, 1, 1, "voice:x", "", None, b"a"))


@pytest.mark.parametrize("data, message", [
    (GOOD[:11], "at least 12 header bytes"),
    (b"\x02" + GOOD[1:], "version 2"),
    (GOOD[:1] + b"\x09" + GOOD[2:], "kind 9"),
    (GOOD[:2] + b"\x04" + GOOD[3:], "flag bits"),
    (GOOD[:3] + b"\x00" + GOOD[4:], "channel is empty"),
    (GOOD[:3] + b"\xff" + GOOD[4:], "ends inside the channel"),
    (GOOD[:12] + "vöice:x".encode()[:7] + GOOD[19:], "must be ASCII"),
    (GOOD[:19], "before the sender length"),
    (GOOD[:19] + b"\xc9" + b"a" * 201, "longer than 200"),
    (GOOD[:2] + b"\x01" + GOOD[3:20], "before the whisper target length"),
    (GOOD[:2] + b"\x01" + GOOD[3:20] + b"\x00", "needs a target"),
    (voice.encode(VoiceFrame(Kind.TEXT, 1, 1, "voice:x", "", None, b"\xff\xfe")), "UTF-8"),
])
def test_malformed_frames_say_what_is_wrong(data, message):
    with pytest.raises(VoiceFormatError, match=message):
        voice.parse(data)
