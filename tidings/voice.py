"""Voice rooms: binary frames relayed to a room's members, whispers, and who is speaking.

A member's frame is checked (size, rate, header, channel, membership), given the sender's
user id by the node, encoded once and written to every other member's socket; a whisper
goes to the connections of one member only. Nothing is stored and nothing is recovered:
a listener that is behind loses frames (counted) instead of queueing them ahead of chat.
The node, not each client, decides who is speaking: the first audio frame after silence
sends a `speaking` push to the room, `speaking_timeout` without audio a `silent` push.
This module never parses audio and never waits on a listener.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from tidings.channels import ChannelError, parse_channel
from tidings.config import Settings
from tidings.errors import ErrorCode, TidingsError
from tidings.hub import Hub
from tidings.model import ClientInfo
from tidings.protocol import voice, wsframe
from tidings.protocol.voice import VoiceFormatError, VoiceFrame

SPEAKING, SILENT = "speaking", "silent"


class Speaker(Protocol):
    """What the relay needs of a session (see tidings.session.Session)."""

    client: str
    user: str
    meta: dict
    connected: bool
    subscriptions: set[str]


class VoiceRelay:
    """The node's voice relay: one per node, shared by every connection."""

    def __init__(self, hub: Hub, settings: Settings, node_name: str):
        self.hub = hub
        self.settings = settings
        self.limits = settings.voice
        self.node_name = node_name
        self.relayed = 0  # frames written to listeners
        self.dropped = 0  # frames listeners lost because they were behind
        self.refused = 0  # frames refused with an error code
        self._speaking: dict[tuple[str, str], tuple[float, ClientInfo]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def relay(self, sender: Speaker, frame: VoiceFrame, data: bytes) -> None:
        """Write a checked frame to the room (or the whisper's target), named by the node."""
        out = wsframe.frame(voice.with_sender(data, frame, sender.user), wsframe.BINARY)
        delivered, dropped = self.hub.relay(frame.channel, out, exclude=sender,
                                            to_user=frame.target)
        self.relayed += delivered
        self.dropped += dropped
        if frame.target is not None:
            if not delivered + dropped:
                raise TidingsError(ErrorCode.NOT_A_MEMBER,
                                   f"{frame.target} is not in {frame.channel}")
        elif frame.audio:
            self._heard(frame.channel, sender)

    # ---- speaking --------------------------------------------------------------------

    def _heard(self, channel: str, sender: Speaker) -> None:
        key = (channel, sender.client)
        now = time.monotonic()
        known = self._speaking.get(key)
        if known is not None:
            self._speaking[key] = (now, known[1])
            return
        info = ClientInfo(sender.client, sender.user, self.node_name, sender.meta)
        self._speaking[key] = (now, info)
        self.hub.deliver_event(SPEAKING, channel, info)
        if self._sweeper is None:
            self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(
            self.limits.speaking_timeout / 3, self._sweep
        )

    def _sweep(self) -> None:
        self._sweeper = None
        quiet_since = time.monotonic() - self.limits.speaking_timeout
        for key, (last, info) in list(self._speaking.items()):
            if last < quiet_since:
                del self._speaking[key]
                self.hub.deliver_event(SILENT, key[0], info)
        if self._speaking:
            self._schedule_sweep()

    def speaking(self, channel: str) -> list[str]:
        """User ids speaking in `channel` now (on this node)."""
        return [info.user for (name, _), (_, info) in self._speaking.items() if name == channel]

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None


class VoiceInput:
    """One connection's incoming voice frames: its rate limit and the checks on each frame.

    `receive` raises TidingsError for a frame that is dropped with an error code (at most one
    error frame per code per second, so a misbehaving sender is not answered 50 times a
    second) and VoiceFormatError for bytes that are no voice frame (the connection closes).
    """

    ERROR_INTERVAL = 1.0

    def __init__(self, relay: VoiceRelay, session: Speaker):
        self.relay = relay
        self.session = session
        self.rate = relay.limits.frames_per_second
        self.tokens = self.rate
        self.refilled = time.monotonic()
        self._told: dict[int, float] = {}

    def receive(self, data: bytes) -> None:
        if not self.session.connected:
            raise TidingsError(ErrorCode.NOT_CONNECTED, "send connect first")
        limits = self.relay.limits
        if len(data) > limits.max_frame_bytes:
            self._refuse(ErrorCode.VOICE_FRAME_TOO_LARGE,
                         f"voice frames are at most {limits.max_frame_bytes} bytes")
            return
        if not self._take_token():
            self._refuse(ErrorCode.VOICE_RATE_LIMITED,
                         f"more than {self.rate:g} voice frames per second: frames dropped")
            return
        frame = voice.parse(data)
        if frame.sender:
            raise VoiceFormatError("a client's frame must leave the sender empty")
        try:
            channel = parse_channel(frame.channel, self.relay.settings)
        except ChannelError as exc:
            self._refuse(ErrorCode.BAD_CHANNEL, str(exc))
            return
        if not channel.options.binary:
            self._refuse(ErrorCode.NOT_VOICE_CHANNEL,
                         f"{channel.namespace} channels take no binary frames")
            return
        if channel.name not in self.session.subscriptions:
            self._refuse(ErrorCode.NOT_A_MEMBER, f"subscribe to {channel.name} to speak")
            return
        try:
            self.relay.relay(self.session, frame, data)
        except TidingsError as exc:
            self._refuse(exc.code, exc.message)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def _refuse(self, code: ErrorCode, message: str) -> None:
        self.relay.refused += 1
        now = time.monotonic()
        if now - self._told.get(code, -self.ERROR_INTERVAL) >= self.ERROR_INTERVAL:
            self._told[code] = now
            raise TidingsError(code, message)
