"""Server frames decode as RFC 6455 says, whatever the payload size."""

from __future__ import annotations

import os
import struct

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from tidings.protocol import wsframe

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 200_000]


def _decode(data: bytes) -> Frame:
    """One frame through the `websockets` library's sans-I/O parser, as a client reads it."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        assert not reader.buffer, "bytes left after the frame"
        return done.value
    raise AssertionError("incomplete frame")


def _header(data: bytes) -> tuple[bool, int, bool, int, int]:
    """(fin, opcode, masked, payload length, header length), read by hand per RFC 6455 5.2."""
    fin, opcode = bool(data[0] & 0x80), data[0] & 0x0F
    assert data[0] & 0x70 == 0, "RSV bits set"
    masked, length = bool(data[1] & 0x80), data[1] & 0x7F
    if length == 126:
        return fin, opcode, masked, struct.unpack("!H", data[2:4])[0], 4
    if length == 127:
        return fin, opcode, masked, struct.unpack("!Q", data[2:10])[0], 10
    return fin, opcode, masked, length, 2


@pytest.mark.parametrize("size", SIZES)
def test_text_frames_of_every_length_form_decode(size):
    payload = os.urandom(size)
    frame = _decode(wsframe.text(payload))
    assert frame.opcode == Opcode.TEXT and frame.fin and frame.data == payload


@pytest.mark.parametrize("size, length_field_bytes", [
    (0, 0), (125, 0), (126, 2), (65535, 2), (65536, 8), (200_000, 8),
])
def test_length_uses_the_shortest_form_and_server_frames_are_unmasked(size, length_field_bytes):
    data = wsframe.text(b"y" * size)
    fin, opcode, masked, length, header = _header(data)
    assert (fin, opcode, masked, length) == (True, 0x1, False, size)
    assert header == 2 + length_field_bytes
    assert len(data) == header + size and data[header:] == b"y" * size


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_binary_frames_decode(size):
    payload = os.urandom(size)
    frame = _decode(wsframe.frame(payload, wsframe.BINARY))
    assert frame.opcode == Opcode.BINARY and frame.fin and frame.data == payload


def test_close_frame_carries_code_and_reason():
    frame = _decode(wsframe.close(4004, "slow consumer"))
    assert frame.opcode == Opcode.CLOSE and frame.fin
    assert Close.parse(frame.data) == Close(4004, "slow consumer")


def test_close_frame_without_reason_carries_the_code():
    frame = _decode(wsframe.close(1000))
    assert frame.data == b"\x03\xe8"
    assert Close.parse(frame.data) == Close(1000, "")


def test_close_frame_carries_a_unicode_reason():
    frame = _decode(wsframe.close(4501, "jeton expiré"))
    assert Close.parse(frame.data) == Close(4501, "jeton expiré")


def test_close_reason_is_cut_to_fit_a_control_frame():
    data = wsframe.close(4008, "x" * 300)
    _, opcode, _, length, _ = _header(data)
    assert opcode == 0x8 and length == 125  # control frames carry at most 125 bytes
    assert Close.parse(_decode(data).data) == Close(4008, "x" * 123)


def test_a_cut_unicode_reason_stays_valid_utf8():
    frame = _decode(wsframe.close(4008, "é" * 100))  # 200 bytes; 123 falls inside an "é"
    close = Close.parse(frame.data)
    assert close.code == 4008 and close.reason == "é" * 61
