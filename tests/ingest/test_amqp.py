"""RabbitMQ ingest's acknowledgement window: in order, one `multiple` ack per flush.

(Against RabbitMQ itself, tests/ingest/test_contract.py checks that nothing stays
unacknowledged once stored, and that a handed-back message is stored once.)
"""

from __future__ import annotations

from tidings.ingest.amqp import AckWindow


class Taken:
    """What the window needs of a message: its `ack`, recorded."""

    def __init__(self, tag: int, acks: list[tuple[int, bool]]):
        self.delivery_tag = tag
        self._acks = acks

    async def ack(self, multiple: bool = False) -> None:
        self._acks.append((self.delivery_tag, multiple))


async def test_a_tag_is_acknowledged_only_once_every_earlier_tag_is_settled():
    acks: list[tuple[int, bool]] = []
    window = AckWindow()
    taken = {tag: Taken(tag, acks) for tag in range(1, 7)}
    for tag in (2, 3):  # the second batch settled first
        window.settle(tag, taken[tag])
    await window.flush()
    assert acks == []  # tag 1 is still being stored
    window.settle(1, taken[1])
    window.settle(4)  # dead-lettered: acknowledged on its own already
    window.settle(6, taken[6])
    await window.flush()
    assert acks == [(3, True)]  # one frame for 1-3; 6 waits for 5
    window.settle(5, taken[5])
    await window.flush()
    await window.flush()
    assert acks == [(3, True), (6, True)]
