"""Channel names: valid forms, namespaces, and whose personal channel is whose."""

from __future__ import annotations

import pytest

from tidings.channels import (
    MAX_CHANNEL_LENGTH,
    ChannelError,
    parse_channel,
    user_channel,
    valid_user_id,
)
from tidings.config import load_settings

SETTINGS = load_settings()


@pytest.mark.parametrize("name, namespace", [
    ("room:lobby", "room"), ("user:alice@example.com", "user"), ("broadcast", "broadcast"),
    ("room:a:b.c", "room"), ("voice:r1", "voice"), ("room:!~", "room"),
    ("room:" + "x" * (MAX_CHANNEL_LENGTH - len("room:")), "room"),
])
def test_valid_channels_resolve_to_their_namespace(name, namespace):
    channel = parse_channel(name, SETTINGS)
    assert channel.name == name and channel.namespace == namespace
    assert channel.options == SETTINGS.namespaces[namespace]


def test_the_channel_carries_its_namespace_options():
    assert parse_channel("voice:r", SETTINGS).options.stored is False
    assert parse_channel("room:r", SETTINGS).options.presence is True
    assert parse_channel("broadcast", SETTINGS).options.publish == "server"


@pytest.mark.parametrize("name, message", [
    ("", "1 to 255"),
    ("room:" + "x" * (MAX_CHANNEL_LENGTH - len("room:") + 1), "1 to 255"),
    ("lobby", "<namespace>:<name>"),
    ("room:", "<namespace>:<name>"),
    (":x", "unknown namespace"),
    ("nope:x", "unknown namespace 'nope'"),
    ("Room:x", "unknown namespace 'Room'"),
    ("broadcast:x", "just 'broadcast'"),
    ("room:a b", "printable ASCII"),
    ("room:a\tb", "printable ASCII"),
    ("room:a\nb", "printable ASCII"),
    ("room:a\x00", "printable ASCII"),
    ("room:a\x7f", "printable ASCII"),
    ("room:é", "printable ASCII"),
    ("room:日本", "printable ASCII"),
    ("room:a*", "'*'"),
    ("room:a>", "'>'"),
    ("room:#", "'#'"),
    ("room:a.*", "'*'"),
    (5, "string"),
    (None, "string"),
    (b"room:a", "string"),
    (["room:a"], "string"),
])
def test_invalid_channels_are_refused_saying_why(name, message):
    with pytest.raises(ChannelError) as err:
        parse_channel(name, SETTINGS)
    assert message in str(err.value)


def test_a_configured_namespace_is_known_and_a_removed_one_is_not():
    settings = load_settings(namespaces={"alerts": {"publish": "server"}})
    assert parse_channel("alerts:ops", settings).options.publish == "server"
    with pytest.raises(ChannelError, match="unknown namespace 'alerts'"):
        parse_channel("alerts:ops", SETTINGS)


def test_a_user_channel_is_owned_by_its_user():
    assert parse_channel("user:alice", SETTINGS).owner == "alice"
    assert parse_channel("user:alice@example.com", SETTINGS).owner == "alice@example.com"
    assert parse_channel("user:a:b", SETTINGS).owner == "a:b"


def test_other_channels_have_no_owner():
    for name in ("room:alice", "voice:alice", "broadcast"):
        assert parse_channel(name, SETTINGS).owner is None


def test_user_channel_names_the_users_inbox():
    assert user_channel("bob") == "user:bob"
    assert parse_channel(user_channel("bob"), SETTINGS).owner == "bob"


@pytest.mark.parametrize("user, valid", [
    ("alice", True), ("a", True), ("x" * 200, True), ("a:b@c.d", True),
    ("", False), ("x" * 201, False), ("a b", False), ("a*", False), ("a>", False),
    ("#", False), ("é", False), (None, False), (7, False),
])
def test_valid_user_ids(user, valid):
    assert valid_user_id(user) is valid
