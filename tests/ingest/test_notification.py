"""The notification parser, without a queue: shapes, every poison reason, and fuzzing."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.ingest.notification import REASONS, Notification, Poison, parse_notification


def _parse(body: bytes | None, **limits) -> Notification:
    return parse_notification(body, max_bytes=limits.get("max_bytes", 1000),
                              max_recipients=limits.get("max_recipients", 3))


def _note(**fields) -> bytes:
    base = {"id": "n1", "source": "billing", "to": {"user": "ann"}, "data": {"t": 1}}
    return orjson.dumps({**base, **fields})


@pytest.mark.parametrize("to, kind, recipients", [
    ({"user": "ann"}, "user", ("ann",)),
    ({"users": ["ann", "bo", "ann"]}, "users", ("ann", "bo")),
    ({"channel": "room:ops"}, "channel", ("room:ops",)),
    ({"everyone": True}, "everyone", ()),
])
def test_each_recipient_kind_parses(to, kind, recipients):
    note = _parse(_note(to=to))
    assert (note.id, note.source, note.kind, note.recipients) == ("n1", "billing", kind,
                                                                   recipients)
    assert orjson.loads(note.data) == {"t": 1}


@pytest.mark.parametrize("body, reason", [
    (None, "bad_notification"),
    (b"x" * 1001, "too_large"),
    (b"{", "not_json"),
    (b"[1]", "bad_notification"),
    (_note(id=""), "bad_notification"),
    (_note(id=7), "bad_notification"),
    (_note(source="s" * 101), "bad_notification"),
    (orjson.dumps({"id": "n", "source": "s", "to": {"user": "a"}}), "bad_notification"),
    (_note(to={"user": "a", "users": ["b"]}), "bad_notification"),
    (_note(to="ann"), "bad_notification"),
    (_note(to={"group": "x"}), "unknown_recipient"),
    (_note(to={"user": "has space"}), "bad_notification"),
    (_note(to={"users": []}), "bad_notification"),
    (_note(to={"users": ["a", "b", "c", "d"]}), "bad_notification"),
    (_note(to={"channel": 5}), "unroutable_channel"),
    (_note(to={"everyone": "yes"}), "bad_notification"),
    (b'{"id":"n","source":"s","to":{"user":"a"},"data":' + b"[" * 300 + b"]" * 300 + b"}",
     "bad_notification"),
])
def test_poison_carries_its_reason(body, reason):
    with pytest.raises(Poison) as err:
        _parse(body)
    assert err.value.reason == reason and err.value.detail


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_a_notification_or_poison_with_a_known_reason(body):
    try:
        _parse(body)
    except Poison as poison:
        assert poison.reason in REASONS


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
                           | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=10)


@given(st.dictionaries(st.sampled_from(["id", "source", "to", "data", "x"]), json_values))
def test_arbitrary_objects_are_a_notification_or_poison_with_a_known_reason(raw):
    try:
        _parse(orjson.dumps(raw))
    except Poison as poison:
        assert poison.reason in REASONS
