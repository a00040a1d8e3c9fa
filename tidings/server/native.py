"""The native protocol's WebSocket endpoint (`/ws`): messages in, session calls, replies out."""

from __future__ import annotations

import logging

from tidings.errors import CloseCode, ErrorCode, TidingsError
from tidings.model import ClientInfo, Publication
from tidings.peer import Peer
from tidings.protocol import native, wsframe
from tidings.protocol.native import Command, ProtocolError
from tidings.protocol.upgrade import UpgradeRequest
from tidings.protocol.voice import VoiceFormatError
from tidings.server import websocket
from tidings.session import Connection, Session
from tidings.voice import VoiceInput

log = logging.getLogger("tidings.native")

MAX_ERRORS = 50  # bad commands in a row before the connection is closed


class NativeCodec:
    """Frames of the native protocol; one instance serves every native session."""

    joinable = True  # whole WebSocket frames, written straight to a WebSocket transport

    def pub_frame(self, pub: Publication) -> bytes:
        return wsframe.text(native.encode_pub(pub))

    def event_frame(self, kind: str, channel: str, client: ClientInfo) -> bytes:
        return wsframe.text(native.encode_push(kind, {"channel": channel, "info": client.to_dict()}))

    def push_frame(self, kind: str, body: dict) -> bytes:
        return wsframe.text(native.encode_push(kind, body))

    def ping_frame(self) -> bytes:
        return PING_FRAME


PING_FRAME = wsframe.text(native.PING)
PONG_TEXT = wsframe.text(b"pong")
CODEC = NativeCodec()


class NativeEndpoint(websocket.SessionEndpoint):
    """`/ws` on Tidings' own WebSocket layer (tidings.server.front)."""

    protocol = "native"

    def open(self, socket: Connection, peer: Peer, request: UpgradeRequest,
             subprotocol: str | None) -> "NativeReceiver":
        session = Session(self.node, socket, CODEC, peer)
        websocket.send_away_if_draining(session)
        return NativeReceiver(session)


class NativeReceiver:
    """One native connection's messages: text frames are commands, binary ones voice."""

    __slots__ = ("session", "_errors", "_voice")

    def __init__(self, session: Session):
        self.session = session
        self._errors = 0  # bad commands in a row
        self._voice: VoiceInput | None = None  # made on the first voice frame: most send none

    def seen(self) -> None:
        self.session.seen()

    async def receive(self, message: str | bytes) -> None:
        session = self.session
        if isinstance(message, str):
            ok = await _on_text(session, message)
            self._errors = 0 if ok else self._errors + 1
            if self._errors >= MAX_ERRORS:
                session.close(CloseCode.TOO_MANY_ERRORS, "too many bad commands")
        else:
            if self._voice is None:
                self._voice = _voice_input(session)
            _on_binary(session, self._voice, message)

    async def closed(self) -> None:
        await self.session.cleanup()


async def _on_text(session: Session, text: str) -> bool:
    """Handle one text frame; False when it was a bad command."""
    if text == "ping":
        session.write(PONG_TEXT)
        return True
    try:
        command = native.parse_command(text)
    except ProtocolError as exc:
        _reply_error(session, exc.id, exc.code, exc.message, "?")
        return False
    if command.method == "pong":
        return True
    metrics = session.node.metrics
    try:
        session.admit_command()
        result = await dispatch(session, command)
    except TidingsError as exc:
        _reply_error(session, command.id, exc.code, exc.message, command.method)
        if exc.close is not None:
            session.close(exc.close, exc.message)
        return exc.code not in (ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_METHOD)
    except Exception:
        log.exception("command %s failed", command.method)
        _reply_error(session, command.id, ErrorCode.INTERNAL, "internal error", command.method)
        return True
    session.reply(wsframe.text(native.encode_reply(command.id, command.method, result)))
    session.release()
    metrics.count(metrics.commands, command.method, "ok")
    return True


def _voice_input(session: Session) -> VoiceInput:
    return VoiceInput(session.node.voice, session, lambda exc: _reply_error(
        session, None, exc.code, exc.message, "voice"))


def _on_binary(session: Session, voice: VoiceInput, data: bytes) -> None:
    """A voice frame (docs/protocol.md, Voice frames): relayed, refused with a code, or fatal."""
    try:
        voice.receive(data)
    except TidingsError as exc:
        _reply_error(session, None, exc.code, exc.message, "voice")
    except VoiceFormatError as exc:
        session.close(CloseCode.BAD_VOICE_FRAME, f"bad voice frame: {exc}")


def _reply_error(session: Session, id: int | None, code: int, message: str, method: str) -> None:
    metrics = session.node.metrics
    metrics.count(metrics.commands, method, "error")
    metrics.count(metrics.command_errors, method, str(int(code)))
    session.reply(wsframe.text(native.encode_error(id, code, message)))
    session.release()


async def dispatch(session: Session, command: Command) -> dict:
    """Run one command on `session`; also what STOMP's `/app/<method>` calls."""
    params = command.params
    if isinstance(params, native.Connect):
        credentials = {"token": params.token, "user": params.user}
        recover = {ch: (p.offset, p.epoch) for ch, p in params.recover.items()}
        return await session.connect(credentials, recover)
    if not session.connected:
        raise TidingsError(ErrorCode.NOT_CONNECTED, "send connect first")
    if isinstance(params, native.Subscribe):
        since = (params.position.offset, params.position.epoch) if params.position else None
        return await session.subscribe(params.channel, since, token=params.token)
    if isinstance(params, native.Unsubscribe):
        return await session.unsubscribe(params.channel)
    if isinstance(params, native.Publish):
        return await session.publish(params.channel, params.data,
                                     idempotency_key=params.idempotency_key)
    if isinstance(params, native.Send):
        return await session.send(params.user, params.data,
                                  idempotency_key=params.idempotency_key)
    if isinstance(params, native.History):
        return await session.history(params.channel, limit=params.limit, since=params.since,
                                     reverse=params.reverse)
    if isinstance(params, native.Presence):
        return await session.presence(params.channel)
    if isinstance(params, native.InboxQuery):
        return await session.inbox(source=params.source, before=params.before,
                                   limit=params.limit)
    if isinstance(params, native.Read):
        return await session.read(offset=params.offset, source=params.source,
                                  upto=params.upto, everything=params.everything,
                                  shared=params.shared)
    if isinstance(params, native.Unread):
        return await session.unread(params.offset)
    if isinstance(params, native.Seen):
        return await session.mark_seen(source=params.source)
    if isinstance(params, native.Archive):
        return await session.archive(params.offset)
    raise TidingsError(ErrorCode.UNKNOWN_METHOD, f"unknown method {command.method!r}")
