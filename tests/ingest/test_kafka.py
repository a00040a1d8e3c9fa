"""Kafka ingest against tansu: the consumer creates its topics when they are missing."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.ingest.conftest import notification
from tests.ingest.test_contract import until
from tidings.config import IngestSource
from tidings.ingest.kafka import ensure_topics

SERVERS = "127.0.0.1:9092"


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> int:
    (described,) = await admin.describe_topics([topic])
    assert described["error_code"] == 0, described
    return len(described["partitions"])


async def test_missing_topics_are_created_and_existing_ones_left_as_they_are():
    tag = f"t{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=SERVERS)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"{tag}.kept", 2, 1)])
        await ensure_topics(SERVERS, IngestSource(url=f"kafka://{SERVERS}", queue=f"{tag}.new",
                                                  partitions=3))
        await ensure_topics(SERVERS, IngestSource(url=f"kafka://{SERVERS}",
                                                  queue=f"{tag}.kept"))
        assert await _partitions(admin, f"{tag}.new") == 3
        assert await _partitions(admin, f"{tag}.new.dead-letter") == 3
        assert await _partitions(admin, f"{tag}.kept") == 2  # not recreated, not resized
        assert await _partitions(admin, f"{tag}.kept.dead-letter") == 4
    finally:
        await admin.delete_topics([f"{tag}.new", f"{tag}.new.dead-letter", f"{tag}.kept",
                                   f"{tag}.kept.dead-letter"])
        await admin.close()


async def test_a_node_consumes_a_topic_nobody_created(make_server):
    tag = f"t{uuid.uuid4().hex[:10]}"
    topic = f"{tag}.notifications"
    source = {"url": f"kafka://{SERVERS}", "queue": topic, "group": f"{tag}-group",
              "partitions": 3}
    producer = AIOKafkaProducer(bootstrap_servers=SERVERS, acks="all")
    await producer.start()
    try:
        async with make_server(message_center={"ingest": {"orders": source}}) as server:
            alice = await server.client("alice")
            (consuming,) = server.node.intake.sources

            async def connected() -> bool:
                return consuming.connected

            # (asked before, a metadata request would have the broker create it by default)
            await until(connected, what="the consumer")
            admin = AIOKafkaAdminClient(bootstrap_servers=SERVERS)
            await admin.start()
            try:  # the node made the topic, as configured, before any record was produced
                assert await _partitions(admin, topic) == 3
            finally:
                await admin.close()
            await producer.send_and_wait(topic, notification("o-1", {"user": "alice"}))
            pub = await alice.push("pub", timeout=30)
            assert pub["source"] == "billing" and pub["data"] == {"title": "o-1"}
    finally:
        await producer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=SERVERS)
        await admin.start()
        await admin.delete_topics([topic, f"{topic}.dead-letter"])
        await admin.close()
