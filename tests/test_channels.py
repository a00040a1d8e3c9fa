"""Channel names: valid forms, namespaces, and whose personal channel is whose."""

from __future__ import annotations

import pytest

from tidings.channels import ChannelError, parse_channel
from tidings.config import load_settings

SETTINGS = load_settings()


@pytest.mark.parametrize("name, namespace", [
    ("room:lobby", "room"), ("user:alice@example.com", "user"), ("broadcast", "broadcast"),
    ("room:a:b.c", "room"), ("voice:r1", "voice"),
])
def test_valid_channels_resolve_to_their_namespace(name, namespace):
    assert parse_channel(name, SETTINGS).namespace == namespace


@pytest.mark.parametrize("name", [
    "", "lobby", "room:", ":x", "room:a b", "room:a*", "room:a>", "room:#", "room:é",
    "nope:x", "broadcast:x", "room:" + "x" * 300, 5, None,
])
def test_invalid_channels_are_refused(name):
    with pytest.raises(ChannelError):
        parse_channel(name, SETTINGS)


def test_a_user_channel_is_owned_by_its_user():
    assert parse_channel("user:alice", SETTINGS).owner == "alice"
    assert parse_channel("room:alice", SETTINGS).owner is None
