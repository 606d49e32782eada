#!/usr/bin/env python3
"""Kafka 4's current versions with real clients against a running wharf-server.

Usage: fetch_sessions_clients.py HOST:PORT   (the server's Kafka listener)

- kafka-python (Fetch 18 by topic id, Metadata 13, KIP-227 fetch sessions) consumes many
  partitions: its session with the broker goes incremental and stays without session errors;
- kafka-python's admin client: describe_topics (by name and by topic id) and describe_cluster
  with their authorized operations, describe_topic_partitions paged by its cursor;
- confluent-kafka's admin client: describe_topics and describe_cluster with
  include_authorized_operations.
Prints one line per scenario, exits 0 only if all pass.
"""
import logging
import sys
import time
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
import confluent_kafka
from confluent_kafka.admin import AdminClient
from confluent_kafka import TopicCollection

from scenarios import WAIT_S, check, run_scenarios, run_timeout

NAME = "fetch-sessions-clients"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: fetch_sessions_clients.py HOST:PORT")
RUN = uuid.uuid4().hex[:8]
TOPIC = f"sessions-{RUN}"
PARTITIONS = 24
PER_PARTITION = 20
COMMON = dict(bootstrap_servers=BOOTSTRAP, request_timeout_ms=30_000)

# Kafka's operation codes (AclOperation).
OPS = {2: "ALL", 3: "READ", 4: "WRITE", 5: "CREATE", 6: "DELETE", 7: "ALTER", 8: "DESCRIBE",
       9: "CLUSTER_ACTION", 10: "DESCRIBE_CONFIGS", 11: "ALTER_CONFIGS", 12: "IDEMPOTENT_WRITE"}
TOPIC_OPS = {"READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS",
             "ALTER_CONFIGS"}
CLUSTER_OPS = {"CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
               "IDEMPOTENT_WRITE"}


def op_names(value):
    """An authorized-operations field as a set of names: a bit field or a list of names/enums."""
    if isinstance(value, int):
        return {name for code, name in OPS.items() if value & (1 << code)}
    return {getattr(v, "name", v) for v in value}


class SessionErrors(logging.Handler):
    """Counts the fetcher's complaints about sessions (errors, invalid answers)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        text = record.getMessage()
        if "unable to process the fetch request" in text or "invalid" in text.lower():
            self.lines.append(text)


_ADMIN = []


def admin():
    if not _ADMIN:
        _ADMIN.append(KafkaAdminClient(**COMMON))
    return _ADMIN[0]


def setup():
    admin().create_topics({TOPIC: {"num_partitions": PARTITIONS, "replication_factor": 1}},
                          timeout_ms=30_000)
    producer = KafkaProducer(**COMMON)
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.send(TOPIC, value=f"{p}-{i}".encode(), partition=p)
    producer.flush(timeout=WAIT_S)
    producer.close()


def consume(consumer, want, seen):
    deadline = time.monotonic() + WAIT_S
    while len(seen) < want:
        check(time.monotonic() < deadline, f"read {len(seen)} of {want} records in {WAIT_S}s")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                seen.add((tp.partition, r.offset))


def kafka_python_consumer_uses_incremental_sessions():
    errors = SessionErrors()
    logging.getLogger("kafka.consumer.fetcher").addHandler(errors)
    logging.getLogger("kafka.consumer.fetcher").setLevel(logging.DEBUG)
    consumer = KafkaConsumer(**COMMON, enable_auto_commit=False, fetch_max_wait_ms=100)
    try:
        parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        seen = set()
        consume(consumer, PARTITIONS * PER_PARTITION, seen)
        # Quiet polls (incremental fetches with nothing new), then news in one partition.
        for _ in range(5):
            consumer.poll(timeout_ms=200)
        producer = KafkaProducer(**COMMON)
        for i in range(5):
            producer.send(TOPIC, value=f"late-{i}".encode(), partition=7)
        producer.flush(timeout=WAIT_S)
        producer.close()
        consume(consumer, PARTITIONS * PER_PARTITION + 5, seen)
        handlers = consumer._fetcher._session_handlers
        check(handlers, "the consumer kept a fetch session handler")
        metas = [h.next_metadata for h in handlers.values()]
        check(any(m.session_id != 0 and m.epoch > 2 for m in metas),
              f"an incremental session went on: {[(m.session_id, m.epoch) for m in metas]}")
        check(not errors.lines, f"no session errors: {errors.lines[:5]}")
    finally:
        consumer.close()
        logging.getLogger("kafka.consumer.fetcher").removeHandler(errors)


def kafka_python_admin_describes_with_operations():
    described = admin().describe_topics([TOPIC])
    check(len(described) == 1 and described[0]["error_code"] == 0, f"describe_topics: {described}")
    t = described[0]
    check(len(t["partitions"]) == PARTITIONS, f"{len(t['partitions'])} partitions")
    ops = op_names(t["authorized_operations"])
    check(ops == TOPIC_OPS, f"topic operations {sorted(ops)}")
    # By topic id (Metadata v12+).
    topic_id = t["topic_id"]
    by_id = admin().describe_topics([topic_id if isinstance(topic_id, uuid.UUID) else uuid.UUID(str(topic_id))])
    check(by_id[0]["error_code"] == 0 and by_id[0]["name"] == TOPIC, f"by id: {by_id}")
    cluster = admin().describe_cluster()
    ops = op_names(cluster["authorized_operations"])
    check(ops == CLUSTER_OPS, f"cluster operations {sorted(ops)}")
    check(len(cluster["brokers"]) == 1, f"brokers {cluster['brokers']}")
    # DescribeTopicPartitions, 10 partitions a page: 3 pages, every partition once.
    got, cursor, pages = [], None, 0
    while True:
        page = admin().describe_topic_partitions([TOPIC], response_partition_limit=10, cursor=cursor)
        pages += 1
        for topic in page["topics"]:
            check(topic["error_code"] == 0, f"page {pages}: {topic}")
            check(op_names(topic["topic_authorized_operations"]) == TOPIC_OPS, f"page {pages} ops")
            got += [p["partition_index"] for p in topic["partitions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        check(pages < 10, "the cursor moves on")
    check(got == list(range(PARTITIONS)) and pages == 3, f"{pages} pages: {got}")


def confluent_admin_describes_with_operations():
    client = AdminClient({"bootstrap.servers": BOOTSTRAP, "broker.address.family": "v4"})
    futures = client.describe_topics(TopicCollection([TOPIC]), include_authorized_operations=True,
                                     request_timeout=WAIT_S)
    t = futures[TOPIC].result(timeout=WAIT_S)
    check(len(t.partitions) == PARTITIONS, f"{len(t.partitions)} partitions")
    ops = op_names(t.authorized_operations or [])
    check(ops == TOPIC_OPS, f"topic operations {sorted(ops)}")
    cluster = client.describe_cluster(include_authorized_operations=True,
                                      request_timeout=WAIT_S).result(timeout=WAIT_S)
    ops = op_names(cluster.authorized_operations or [])
    check(ops == CLUSTER_OPS, f"cluster operations {sorted(ops)}")
    check(len(cluster.nodes) == 1, f"nodes {cluster.nodes}")


if __name__ == "__main__":
    setup()
    run_scenarios(NAME, f"{NAME}: kafka-python {__import__('kafka').__version__}, "
                        f"confluent-kafka {confluent_kafka.version()[0]} at {BOOTSTRAP}", [
        ("kafka-python consumer uses incremental fetch sessions",
         kafka_python_consumer_uses_incremental_sessions),
        ("kafka-python admin describes with authorized operations",
         kafka_python_admin_describes_with_operations),
        ("confluent-kafka admin describes with authorized operations",
         confluent_admin_describes_with_operations),
    ], run_timeout(200))
