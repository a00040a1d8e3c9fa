"""STOMP destinations to channels and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.protocol.destinations import (
    App, DestinationError, OwnQueue, Topic, UserQueue, parse, topic_destination,
)

NAMESPACES = {"room", "user", "broadcast", "voice", "alerts"}


@pytest.mark.parametrize("destination, meaning", [
    ("/topic/lobby", Topic("room:lobby")),
    ("/topic/broadcast", Topic("broadcast")),
    ("/topic/voice:hall", Topic("voice:hall")),
    ("/topic/alerts:ops", Topic("alerts:ops")),
    ("/topic/a:b", Topic("room:a:b")),  # 'a' is no namespace
    ("/topic/room:broadcast", Topic("room:broadcast")),
    ("/user/queue/init/query", OwnQueue("init/query")),
    ("/user/bob/queue/chat", UserQueue("bob", "chat")),
    ("/user/queue/queue/x", OwnQueue("queue/x")),  # a SUBSCRIBE destination first
    ("/app/history", App("history")),
])
def test_destinations(destination, meaning):
    assert parse(destination, NAMESPACES) == meaning


@pytest.mark.parametrize("destination", [
    "/queue/x", "/topic/", "/topic/user:bob", "/topic/broadcast:x", "/user/bob",
    "/user/queue/", "/app/", "/app/with space", "/user/b*b/queue/x", "relative",
])
def test_destinations_naming_nothing(destination):
    with pytest.raises(DestinationError):
        parse(destination, NAMESPACES)


room_names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                     max_size=40)


@given(room_names)
def test_a_room_destination_round_trips(name):
    channel = f"room:{name}"
    destination = topic_destination(channel, NAMESPACES)
    assert parse(destination, NAMESPACES) == Topic(channel)


def test_topic_destinations_of_other_channels():
    assert topic_destination("broadcast", NAMESPACES) == "/topic/broadcast"
    assert topic_destination("voice:hall", NAMESPACES) == "/topic/voice:hall"
    assert topic_destination("room:voice:x", NAMESPACES) == "/topic/room:voice:x"
