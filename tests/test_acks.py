"""Acknowledged positions: the ledger's rules, and batched writes to a real store."""

from __future__ import annotations

import asyncio

import pytest

from tidings.acks import AckLedger, AckPositions, TooManyUnacked
from tidings.model import AckPosition
from tidings.store import open_store


def ledger(cumulative: bool, limit: int = 100, acked=()) -> AckLedger:
    book = AckLedger("/topic/a", 10, "e", cumulative=cumulative, limit=limit, acked=acked)
    for offset in range(11, 16):
        book.delivered(offset)
    return book


def test_cumulative_ack_settles_everything_up_to_it():
    book = ledger(cumulative=True)
    assert book.ack(13)
    assert book.position() == AckPosition("/topic/a", 13, "e", ())
    assert not book.ack(12)  # settled already


def test_individual_acks_keep_the_ones_past_a_gap():
    book = ledger(cumulative=False)
    book.ack(12)
    book.ack(14)
    assert book.position() == AckPosition("/topic/a", 10, "e", (12, 14))
    book.ack(11)
    assert book.position() == AckPosition("/topic/a", 12, "e", (14,))


def test_nack_keeps_a_message_unacknowledged():
    book = ledger(cumulative=False)
    book.nack(11)
    book.ack(12)
    assert book.position() == AckPosition("/topic/a", 10, "e", (12,))
    cumulative = ledger(cumulative=True)
    cumulative.nack(12)  # 11 and 12 not consumed
    cumulative.ack(14)   # 13 and 14 are; 11 and 12 stay unacknowledged
    assert cumulative.position() == AckPosition("/topic/a", 10, "e", (13, 14))


def test_unknown_offsets_change_nothing():
    book = ledger(cumulative=True)
    assert not book.ack(99)
    assert not book.ack(5)


def test_the_unacknowledged_limit():
    book = AckLedger("/topic/a", 0, "e", cumulative=True, limit=2)
    book.delivered(1)
    book.delivered(2)
    with pytest.raises(TooManyUnacked):
        book.delivered(3)


def test_recovered_messages_noted_after_live_ones_keep_offset_order():
    book = AckLedger("/topic/a", 0, "e", cumulative=True, limit=10)
    book.delivered(5)
    book.delivered(3)
    book.ack(3)
    assert book.position().offset == 3


def test_acked_offsets_from_the_store_count_as_settled():
    book = AckLedger("/topic/a", 10, "e", cumulative=False, limit=10, acked=(12,))
    book.delivered(11)
    book.ack(11)
    assert book.position() == AckPosition("/topic/a", 12, "e", ())


async def test_saves_of_one_moment_go_in_one_write_and_reads_see_them(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'acks.db'}")
    await store.start()
    try:
        positions = AckPositions(store)
        writes = []
        original = store.save_ack_positions

        async def counting(batch):
            writes.append(dict(batch))
            await original(batch)

        store.save_ack_positions = counting
        futures = [positions.save(f"u{n}", "sub", AckPosition("/topic/a", n, "e"))
                   for n in range(5)]
        futures.append(positions.save("u0", "sub", AckPosition("/topic/a", 9, "e")))
        assert (await positions.load("u0", "sub")).offset == 9  # before it is written
        await asyncio.gather(*futures)
        assert len(writes) == 1 and len(writes[0]) == 5
        assert (await store.load_ack_position("u0", "sub")).offset == 9
        await positions.save("u0", "sub", None)
        assert await store.load_ack_position("u0", "sub") is None
    finally:
        await store.close()
