"""Voice rooms: binary frames relayed to a room's members, whispers, and who is speaking.

A member's frame is checked (size, rate, header, channel, membership), given the sender's
user id by the node, encoded once and written to every other member's socket; a whisper
goes to the connections of one member only. Nothing is stored and nothing is recovered:
a listener that is behind loses frames (counted) instead of queueing them ahead of chat.
The node, not each client, decides who is speaking: the first audio frame after silence
sends a `speaking` push to the room, `speaking_timeout` without audio a `silent` push.
This module never parses audio and never waits on a listener.

Across a cluster, the speaker's node also hands the stamped frame to the other nodes
through the broker on the room's channel (tidings.protocol.voicelink), so only nodes with
members of the room get it; each relays it to its own listeners like a local frame. Checks,
limits and the speaking decision stay with the speaker's node; a frame goes to the broker
only while the room has members on another node (tidings.voice_roster), through a short
queue that drops the oldest frame when the broker falls behind (tidings.voice_uplink).
A broker that keeps live traffic on disk (Kafka's log) carries no voice: it would store it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from typing import Protocol

import orjson

from tidings.channels import ChannelError, parse_channel
from tidings.config import Settings
from tidings.errors import ErrorCode, TidingsError
from tidings.hub import Hub
from tidings.model import ClientInfo
from tidings.protocol import voice, voicelink, wsframe
from tidings.protocol.voice import VoiceFormatError, VoiceFrame
from tidings.protocol.voicelink import LinkKind, VoiceLinkError
from tidings.voice_roster import VoiceRoster
from tidings.voice_uplink import VoiceUplink

log = logging.getLogger("tidings.voice")

SPEAKING, SILENT = "speaking", "silent"
EVENT_KINDS = {SPEAKING: LinkKind.SPEAKING, SILENT: LinkKind.SILENT}
EVENT_NAMES = {kind: name for name, kind in EVENT_KINDS.items()}

Refusal = Callable[[TidingsError], None]
"""Tells a sender later that one of its frames was refused (a whisper checked cluster-wide)."""


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
        self.from_nodes = 0  # frames other nodes handed this one through the broker
        self.malformed = 0  # broker messages that were no voice envelope or frame
        # voice crosses a broker that reaches other nodes and keeps nothing (not Kafka's log)
        shared = hub.broker.shared and not hub.broker.keeps_live
        self.uplink = VoiceUplink(hub.broker, self.limits.cluster_queue) if shared else None
        self.roster = VoiceRoster(hub.broker, self.limits.roster_refresh) if shared else None
        self._speaking: dict[tuple[str, str], tuple[float, ClientInfo]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._checks: set[asyncio.Task] = set()

    def relay(self, sender: Speaker, frame: VoiceFrame, data: bytes,
              refuse_later: Refusal | None = None) -> None:
        """Write a checked frame to the room (or the whisper's target), named by the node.

        Raises TidingsError for a whisper to someone not in the room; when that takes a
        look at the other nodes, the answer comes later through `refuse_later`.
        """
        stamped = voice.with_sender(data, frame, sender.user)
        delivered, dropped = self._to_listeners(frame.channel, stamped, sender, frame.target)
        if frame.target is None:
            if frame.audio:
                self._heard(frame.channel, sender)
            self._to_nodes(frame.channel, LinkKind.FRAME, stamped)
        elif delivered + dropped:  # the target is here; its tabs on other nodes hear it too
            self._to_nodes(frame.channel, LinkKind.FRAME, stamped)
        else:
            self._whisper_elsewhere(frame, stamped, refuse_later)

    def _to_listeners(self, channel: str, stamped: bytes, sender: Speaker | None,
                      target: str | None) -> tuple[int, int]:
        out = wsframe.frame(stamped, wsframe.BINARY)
        delivered, dropped = self.hub.relay(channel, out, exclude=sender, to_user=target)
        self.relayed += delivered
        self.dropped += dropped
        return delivered, dropped

    # ---- other nodes -----------------------------------------------------------------

    def _to_nodes(self, channel: str, kind: LinkKind, body: bytes) -> None:
        """Hand `body` to the nodes with members of `channel` (none: nothing is sent)."""
        if self.uplink is None:
            return
        members = self.roster.known(channel)
        if members is not None and members.nodes <= {self.node_name}:
            return
        self.uplink.put(channel, voicelink.pack(kind, self.node_name, body))

    def _whisper_elsewhere(self, frame: VoiceFrame, stamped: bytes,
                           refuse_later: Refusal | None) -> None:
        """A whisper whose target has no connection here: to its node, if it is a member."""
        if self.roster is None:
            raise _not_in(frame)
        members = self.roster.known(frame.channel)
        if members is not None and frame.target in members.users:
            self.uplink.put(frame.channel, voicelink.pack(LinkKind.FRAME, self.node_name, stamped))
            return
        task = asyncio.get_running_loop().create_task(
            self._whisper_checked(frame, stamped, refuse_later))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _whisper_checked(self, frame: VoiceFrame, stamped: bytes,
                               refuse_later: Refusal | None) -> None:
        members = await self.roster.members(frame.channel)
        if members is None or frame.target in members.users:  # unknown: let the nodes decide
            self.uplink.put(frame.channel, voicelink.pack(LinkKind.FRAME, self.node_name, stamped))
        elif refuse_later is not None:
            refuse_later(_not_in(frame))

    def from_node(self, channel: str, payload: bytes) -> None:
        """A voice envelope from the broker: relay another node's frame or event here."""
        try:
            envelope = voicelink.unpack(payload)
            if envelope.origin == self.node_name:
                return  # our own, back from the broker
            if envelope.kind == LinkKind.FRAME:
                frame = voice.parse(envelope.body)
                self.from_nodes += 1
                self._to_listeners(channel, envelope.body, None, frame.target)
            else:
                info = ClientInfo.from_dict(orjson.loads(envelope.body))
                self.hub.deliver_event(EVENT_NAMES[envelope.kind], channel, info)
        except (VoiceLinkError, VoiceFormatError, orjson.JSONDecodeError, KeyError,
                TypeError) as exc:
            self.malformed += 1
            log.warning("dropping a malformed voice message on %s: %s", channel, exc)

    def uplink_count(self, name: str) -> int:
        """An uplink counter (`sent`, `dropped`, `failed`); 0 on a node with no broker."""
        return getattr(self.uplink, name) if self.uplink is not None else 0

    def member_changed(self, channel: str, *, joined: bool) -> None:
        """Someone joined or left `channel` on some node: look at its members afresh.

        A member who joins while others speak hears `speaking` for them from their nodes
        (the rest of the room may get it again; a `speaking` push says a state, not a change).
        """
        if self.roster is not None:
            self.roster.forget(channel)
        if joined:
            for (name, _), (_, info) in list(self._speaking.items()):
                if name == channel:
                    self._announce(SPEAKING, channel, info)

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
        self._announce(SPEAKING, channel, info)
        if self._sweeper is None:
            self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(
            self.limits.speaking_timeout / 3, self._sweep, context=contextvars.Context()
        )

    def _sweep(self) -> None:
        self._sweeper = None
        quiet_since = time.monotonic() - self.limits.speaking_timeout
        for key, (last, info) in list(self._speaking.items()):
            if last < quiet_since:
                del self._speaking[key]
                self._announce(SILENT, key[0], info)
        if self._speaking:
            self._schedule_sweep()

    def _announce(self, kind: str, channel: str, info: ClientInfo) -> None:
        self.hub.deliver_event(kind, channel, info)
        self._to_nodes(channel, EVENT_KINDS[kind], orjson.dumps(info.to_dict()))

    def speaking(self, channel: str) -> list[str]:
        """User ids speaking in `channel` now (on this node)."""
        return [info.user for (name, _), (_, info) in self._speaking.items() if name == channel]

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._checks):
            task.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)
        if self.uplink is not None:
            await self.uplink.close()
            await self.roster.close()


def _not_in(frame: VoiceFrame) -> TidingsError:
    return TidingsError(ErrorCode.NOT_A_MEMBER, f"{frame.target} is not in {frame.channel}")


class VoiceInput:
    """One connection's incoming voice frames: its rate limit and the checks on each frame.

    `receive` raises TidingsError for a frame that is dropped with an error code (at most one
    error frame per code per second, so a misbehaving sender is not answered 50 times a
    second) and VoiceFormatError for bytes that are no voice frame (the connection closes).
    A refusal decided after `receive` returned (a whisper checked on other nodes) goes to
    `tell`.
    """

    ERROR_INTERVAL = 1.0

    def __init__(self, relay: VoiceRelay, session: Speaker, tell: Refusal | None = None):
        self.relay = relay
        self.session = session
        self.tell = tell  # how to send the session a refusal that comes after `receive`
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
            self.relay.relay(self.session, frame, data, self._refuse_later)
        except TidingsError as exc:
            self._refuse(exc.code, exc.message)

    def _refuse_later(self, exc: TidingsError) -> None:
        try:
            self._refuse(exc.code, exc.message)
        except TidingsError as told:
            if self.tell is not None:
                self.tell(told)

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
