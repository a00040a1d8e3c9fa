"""RFC 6455 rules for client frames that aiohttp's reader lets through, checked sans-I/O.

aiohttp's WebSocket reader accepts an unmasked client frame (section 5.1: the server MUST
fail the connection) and a close frame carrying 1006 or a code of 5000 or more (section
7.4: such codes MUST NOT be sent). `ClientFrameCheck` walks the byte stream from a client
frame header to frame header, never buffering a payload, and says where the first frame
that breaks either rule starts, so that only the frames before it reach the reader. It
checks nothing else: aiohttp's reader keeps every other rule (reserved bits, opcodes,
fragmentation, control frame sizes, UTF-8), and this module must not duplicate them.
"""

from __future__ import annotations

CLOSE = 0x8


def close_code_allowed(code: int) -> bool:
    """Codes a peer may put in a close frame (RFC 6455 7.4.1 and the IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class ClientFrameCheck:
    """Feed it what a client sends; it answers where the first forbidden frame begins."""

    __slots__ = ("_header", "_needed", "_skip", "violation")

    def __init__(self) -> None:
        self._header = bytearray()  # the current frame's header, plus a close code
        self._needed = 2  # header bytes to collect before the frame can be judged
        self._skip = 0  # payload bytes of the current frame still to pass over
        self.violation: str | None = None

    def feed(self, data: bytes) -> int | None:
        """None while every frame so far is allowed (or not yet complete enough to judge).

        Otherwise the number of bytes of `data` that come before the forbidden frame (0 when
        it began in an earlier chunk); `violation` says what was wrong. Once a violation is
        found every later call answers 0.
        """
        if self.violation is not None:
            return 0
        size = len(data)
        pos = 0
        frame_start = 0
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                pos += step
                continue
            if not self._header:
                frame_start = pos
                # A client sends one small frame per read as a rule: judge its header where
                # it lies, without collecting it byte by byte.
                end = self._judge_in_place(data, pos, size)
                if end is not None:
                    if end < 0:
                        return frame_start
                    pos = end
                    continue
            take = min(self._needed - len(self._header), size - pos)
            self._header += data[pos:pos + take]
            pos += take
            if len(self._header) < self._needed:
                break
            if self._judge():
                return frame_start
        return None

    def _judge_in_place(self, data: bytes, pos: int, size: int) -> int | None:
        """Judge the frame starting at `pos` when `data` holds its whole header (and a close
        frame's code): where its header ends (its payload is then skipped), -1 on a
        violation, None when the header runs past this chunk."""
        if size - pos < 2:
            return None
        second = data[pos + 1]
        if not second & 0x80:
            self.violation = "client frames must be masked (RFC 6455 5.1)"
            return -1
        length = second & 0x7F
        at = pos + 2
        if length == 126:
            length = int.from_bytes(data[at:at + 2], "big")
            at += 2
        elif length == 127:
            length = int.from_bytes(data[at:at + 8], "big")
            at += 8
        at += 4  # the masking key
        closing = data[pos] & 0x0F == CLOSE and length >= 2
        if at + (2 if closing else 0) > size:
            return None
        if closing:
            code = ((data[at] ^ data[at - 4]) << 8) | (data[at + 1] ^ data[at - 3])
            if not close_code_allowed(code):
                self.violation = f"close code {code} is not allowed in a close frame (RFC 6455 7.4)"
                return -1
        self._skip = length
        return at

    def _judge(self) -> bool:
        """With `_needed` bytes collected: True on a violation, else move on or ask for more."""
        header = self._header
        length_field = {126: 2, 127: 8}.get(header[1] & 0x7F, 0)
        mask_at = 2 + length_field
        if len(header) == 2:
            if not header[1] & 0x80:
                self.violation = "client frames must be masked (RFC 6455 5.1)"
                return True
            self._needed = mask_at + 4  # the extended length and the masking key
            return False
        length = int.from_bytes(header[2:mask_at], "big") if length_field else header[1] & 0x7F
        if header[0] & 0x0F == CLOSE and length >= 2:
            if len(header) == mask_at + 4:
                self._needed = mask_at + 6  # and the close code: the payload's first two bytes
                return False
            mask = header[mask_at:mask_at + 4]
            code = ((header[-2] ^ mask[0]) << 8) | (header[-1] ^ mask[1])
            if not close_code_allowed(code):
                self.violation = f"close code {code} is not allowed in a close frame (RFC 6455 7.4)"
                return True
            length -= 2
        self._skip = length
        self._header = bytearray()
        self._needed = 2
        return False
