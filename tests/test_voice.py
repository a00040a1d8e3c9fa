"""Voice rooms end to end: a real node, real WebSocket clients sending binary frames."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

from tidings.errors import CloseCode, ErrorCode
from tidings.protocol import voice, voicelink
from tidings.protocol.voice import Kind, VoiceFrame
from tidings.protocol.voicelink import LinkKind

ROOM = "voice:standup"


def frame(seq: int = 1, payload: bytes = b"opus", *, channel: str = ROOM, to: str | None = None,
          kind: Kind = Kind.OPUS) -> bytes:
    return voice.encode(VoiceFrame(kind, seq, seq * 20, channel, "", to, payload))


async def members(server, *users: str):
    clients = [await server.client(user) for user in users]
    for client in clients:
        await client.call("subscribe", {"channel": ROOM})
    return clients


async def heard(client, timeout: float = 3) -> VoiceFrame:
    return voice.parse(await asyncio.wait_for(client.binary.get(), timeout))


async def nothing_heard(client, wait: float = 0.3) -> None:
    await asyncio.sleep(wait)
    assert client.binary.empty(), voice.parse(client.binary.get_nowait())


async def error(client, timeout: float = 3) -> dict:
    return (await asyncio.wait_for(client.errors.get(), timeout))["error"]


async def test_three_members_each_hear_the_other_two_named_by_the_node(server):
    alice, bob, carol = await members(server, "alice", "bob", "carol")
    for n, speaker in enumerate((alice, bob, carol)):
        await speaker.ws.send(frame(n, f"from-{n}".encode()))
    for listener, expect in ((alice, {"bob", "carol"}), (bob, {"alice", "carol"}),
                             (carol, {"alice", "bob"})):
        got = {(await heard(listener)).sender for _ in range(2)}
        assert got == expect
        await nothing_heard(listener, 0.1)
    assert server.node.voice.relayed == 6


async def test_a_relayed_frame_keeps_sequence_timestamp_and_payload(server):
    alice, bob = await members(server, "alice", "bob")
    await alice.ws.send(frame(41, b"\x00\x01\x02"))
    got = await heard(bob)
    assert (got.seq, got.timestamp, got.payload, got.channel) == (41, 820, b"\x00\x01\x02", ROOM)


async def test_a_whisper_reaches_only_its_target(server):
    alice, bob, carol = await members(server, "alice", "bob", "carol")
    await alice.ws.send(frame(1, b"psst", to="bob"))
    await alice.ws.send(frame(2, "只给你".encode(), to="bob", kind=Kind.TEXT))
    first, second = await heard(bob), await heard(bob)
    assert (first.target, first.sender, first.payload) == ("bob", "alice", b"psst")
    assert second.kind == Kind.TEXT and second.payload.decode() == "只给你"
    await nothing_heard(carol)
    await nothing_heard(alice, 0)


async def test_a_whisper_to_someone_not_in_the_room_gets_129(server):
    alice, _ = await members(server, "alice", "bob")
    await alice.ws.send(frame(1, to="mallory"))
    err = await error(alice)
    assert err["code"] == ErrorCode.NOT_A_MEMBER and "mallory" in err["message"]


async def test_a_frame_from_a_non_member_gets_129_and_is_not_relayed(server):
    (bob,) = await members(server, "bob")
    eve = await server.client("eve")
    await eve.ws.send(frame())
    assert (await error(eve))["code"] == ErrorCode.NOT_A_MEMBER
    await nothing_heard(bob)


async def test_a_binary_frame_for_a_room_channel_gets_128(server):
    alice = await server.client("alice")
    await alice.call("subscribe", {"channel": "room:lobby"})
    await alice.ws.send(frame(channel="room:lobby"))
    err = await error(alice)
    assert err["code"] == ErrorCode.NOT_VOICE_CHANNEL and "room" in err["message"]


async def test_a_frame_for_an_invalid_channel_gets_107(server):
    alice = await server.client("alice")
    await alice.ws.send(frame(channel="nowhere:x"))
    assert (await error(alice))["code"] == ErrorCode.BAD_CHANNEL


async def test_an_oversized_frame_gets_130_and_the_connection_stays(make_server):
    async with make_server(voice={"max_frame_bytes": 200}) as server:
        alice, bob = await members(server, "alice", "bob")
        await alice.ws.send(frame(1, b"x" * 300))
        assert (await error(alice))["code"] == ErrorCode.VOICE_FRAME_TOO_LARGE
        await alice.ws.send(frame(2, b"x" * 100))
        assert (await heard(bob)).seq == 2


async def test_frames_over_the_rate_limit_are_dropped_with_one_131(make_server):
    async with make_server(voice={"frames_per_second": 10}) as server:
        alice, bob = await members(server, "alice", "bob")
        for seq in range(30):  # a burst far over 10 per second
            await alice.ws.send(frame(seq))
        assert (await error(alice))["code"] == ErrorCode.VOICE_RATE_LIMITED
        await asyncio.sleep(0.3)
        assert alice.errors.empty()  # told once, not once per dropped frame
        got = bob.binary.qsize()
        assert 10 <= got <= 14
        assert server.node.voice.refused >= 16


async def test_a_malformed_frame_closes_with_4510(server):
    alice = await server.client("alice")
    await alice.ws.send(b"\x01\x01")
    code, reason = await alice.closed()
    assert code == CloseCode.BAD_VOICE_FRAME and "bad voice frame" in reason


async def test_a_frame_naming_a_sender_closes_with_4510(server):
    alice, _ = await members(server, "alice", "bob")
    await alice.ws.send(voice.encode(VoiceFrame(Kind.OPUS, 1, 1, ROOM, "bob", None, b"x")))
    code, _ = await alice.closed()
    assert code == CloseCode.BAD_VOICE_FRAME


async def test_a_binary_frame_before_connect_gets_103(server):
    client = await server.client(connect=False)
    await client.ws.send(frame())
    assert (await error(client))["code"] == ErrorCode.NOT_CONNECTED


async def test_the_node_says_who_is_speaking_and_when_they_stop(make_server):
    async with make_server(voice={"speaking_timeout": 0.2}) as server:
        alice, bob = await members(server, "alice", "bob")
        for seq in range(3):
            await alice.ws.send(frame(seq))
        speaking = await bob.push("speaking")
        assert speaking["channel"] == ROOM and speaking["info"]["user"] == "alice"
        assert (await alice.push("speaking"))["info"]["user"] == "alice"
        started = time.monotonic()
        silent = await bob.push("silent")
        assert silent["info"]["user"] == "alice" and time.monotonic() - started < 1.0
        await bob.no_push("speaking", 0.3)  # one start, one stop


async def test_a_whisper_does_not_make_its_sender_speaking(server):
    alice, bob, carol = await members(server, "alice", "bob", "carol")
    await alice.ws.send(frame(1, to="bob"))
    await heard(bob)
    await carol.no_push("speaking", 0.3)


async def test_a_listener_that_is_behind_loses_voice_but_not_chat(make_server, monkeypatch):
    async with make_server(voice={"listener_backlog_bytes": 0}) as server:
        alice, bob = await members(server, "alice", "bob")
        await alice.call("subscribe", {"channel": "room:chat"})
        await bob.call("subscribe", {"channel": "room:chat"})
        (session,) = [s for s in server.node.sessions.values() if s.user == "bob"]
        behind, buffered = session.conn, type(session.conn).buffered
        monkeypatch.setattr(type(behind), "buffered",  # bob's socket is behind
                            lambda conn: 1 if conn is behind else buffered(conn))
        for seq in range(5):
            await alice.ws.send(frame(seq))
        await alice.call("publish", {"channel": "room:chat", "data": {"text": "still here"}})
        assert (await bob.push("pub"))["data"] == {"text": "still here"}
        await nothing_heard(bob)
        assert session.voice_dropped == 5 and server.node.voice.dropped == 5


async def test_a_member_who_joins_while_someone_speaks_is_told_so(server):
    (alice,) = await members(server, "alice")
    async with speaking(alice, ROOM):
        await alice.push("speaking")
        (bob,) = await members(server, "bob")
        assert (await bob.push("speaking"))["info"]["user"] == "alice"


@contextlib.asynccontextmanager
async def speaking(client, channel: str):
    """`client` sends a 20 ms audio frame after another while the block runs."""
    async def talk() -> None:
        for seq in itertools.count():
            await client.ws.send(frame(seq, channel=channel))
            await asyncio.sleep(0.02)

    task = asyncio.create_task(talk())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_malformed_voice_message_from_the_broker_is_dropped_and_counted(server):
    alice, bob = await members(server, "alice", "bob")
    relay = server.node.voice
    relay.from_node(ROOM, voicelink.pack(LinkKind.FRAME, "n9", b"\x01\x01"))  # no frame
    relay.from_node(ROOM, b"\x00\x09\x00\x02n9")  # no envelope
    relay.from_node(ROOM, voicelink.pack(LinkKind.SPEAKING, "n9", b"{}"))  # no info
    assert relay.malformed == 3
    await nothing_heard(bob, 0.1)
    relay.from_node(ROOM, voicelink.pack(LinkKind.FRAME, "n9", voice.with_sender(
        frame(5), voice.parse(frame(5)), "carol")))  # a good one still goes through
    got = await heard(bob)
    assert (got.sender, got.seq) == ("carol", 5)
    assert (await heard(alice)).sender == "carol"
