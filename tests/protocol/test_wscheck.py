"""RFC 6455 checks on client frames, without sockets: masking and close codes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wsraw import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, client_frame, close_frame
from tidings.protocol.wscheck import ClientFrameCheck, close_code_allowed

def _feed_in_pieces(check: ClientFrameCheck, stream: bytes, cuts: list[int]) -> int | None:
    """Feed `stream` cut at `cuts`: how many bytes passed in all before a violation, if any."""
    start = 0
    for end in [*sorted(set(cuts)), len(stream)]:
        piece = stream[start:end]
        allowed = check.feed(piece)
        if allowed is not None:
            return start + allowed
        start = end
    return None


# ---- what passes ------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [
    client_frame(b"hello"),
    client_frame(b""),
    client_frame(b"x" * 125),
    client_frame(b"x" * 126),
    client_frame(b"x" * 65535),
    client_frame(b"x" * 65536, BINARY),
    client_frame(b"ping", PING),
    client_frame(b"", PONG),
    client_frame(b"part", TEXT, fin=False) + client_frame(b"rest", CONTINUATION),
    client_frame(b"", CLOSE),
    close_frame(1000),
    close_frame(1001, "going away".encode()),
    close_frame(4999),
])
def test_masked_frames_and_allowed_close_codes_pass(frame):
    assert ClientFrameCheck().feed(frame) is None


def test_a_long_stream_of_masked_frames_passes_byte_by_byte():
    check = ClientFrameCheck()
    stream = b"".join(client_frame(f"command {n}".encode()) for n in range(50)) + close_frame(1000)
    assert all(check.feed(stream[i:i + 1]) is None for i in range(len(stream)))


# ---- what does not ----------------------------------------------------------------------


@pytest.mark.parametrize("frame", [
    client_frame(b"hello", masked=False),
    client_frame(b"x" * 300, masked=False),
    client_frame(b"", PING, masked=False),
    close_frame(1000, masked=False),
])
def test_an_unmasked_frame_is_a_violation(frame):
    check = ClientFrameCheck()
    assert check.feed(frame) == 0
    assert "masked" in check.violation


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
                                  65535])
def test_a_close_frame_with_a_forbidden_code_is_a_violation(code):
    check = ClientFrameCheck()
    assert check.feed(close_frame(code, b"bye")) == 0
    assert str(code) in check.violation


def test_the_violation_offset_lets_the_frames_before_it_through():
    before = client_frame(b"first") + client_frame(b"x" * 200)
    check = ClientFrameCheck()
    assert check.feed(before + client_frame(b"bad", masked=False) + client_frame(b"after")) == len(
        before)


def test_a_forbidden_frame_begun_in_an_earlier_chunk_lets_nothing_more_through():
    frame = close_frame(1006)
    check = ClientFrameCheck()
    assert check.feed(frame[:3]) is None  # the header alone cannot be judged yet
    assert check.feed(frame[3:]) == 0


def test_after_a_violation_every_chunk_is_refused():
    check = ClientFrameCheck()
    check.feed(client_frame(b"a", masked=False))
    assert check.feed(client_frame(b"fine")) == 0


def test_allowed_close_codes_are_exactly_the_rfc_ones():
    allowed = [code for code in range(0, 70000) if close_code_allowed(code)]
    assert allowed == [*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)]


# ---- any split of any stream gives the same verdict ----------------------------------------

frames = st.one_of(
    st.binary(max_size=300).map(client_frame),
    st.binary(max_size=125).map(lambda b: client_frame(b, PING)),
    st.integers(0, 65535).map(close_frame),
    st.binary(max_size=200).map(lambda b: client_frame(b, masked=False)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(frames, max_size=8), st.lists(st.integers(0, 3000), max_size=10))
def test_the_verdict_does_not_depend_on_how_the_stream_is_cut(parts, cuts):
    stream = b"".join(parts)
    expected, at, bad_size = None, 0, 0  # where the first forbidden frame is, by construction
    for part in parts:
        unmasked = not part[1] & 0x80
        bad_close = part[0] & 0x0F == CLOSE and not close_code_allowed(
            ((part[6] ^ part[2]) << 8) | (part[7] ^ part[3]) if len(part) >= 8 else 1000)
        if unmasked or bad_close:
            expected, bad_size = at, len(part)
            break
        at += len(part)
    assert ClientFrameCheck().feed(stream) == expected
    passed = _feed_in_pieces(ClientFrameCheck(), stream, [c for c in cuts if c < len(stream)])
    if expected is None:
        assert passed is None
    else:  # every frame before it passes; the forbidden one never passes whole
        assert expected <= passed < expected + bad_size


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data):
    check = ClientFrameCheck()
    result = check.feed(data)
    assert result is None or 0 <= result <= len(data)
