"""Server frames decode as RFC 6455 says, whatever the payload size."""

from __future__ import annotations

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from tidings.protocol import wsframe


def _decode(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_text_frames_of_every_length_form_decode(size):
    payload = b"x" * size
    frame = _decode(wsframe.text(payload))
    assert frame.opcode == Opcode.TEXT and frame.fin and frame.data == payload


def test_close_frame_carries_code_and_reason():
    frame = _decode(wsframe.close(4004, "slow consumer"))
    assert frame.opcode == Opcode.CLOSE
    assert Close.parse(frame.data) == Close(4004, "slow consumer")
