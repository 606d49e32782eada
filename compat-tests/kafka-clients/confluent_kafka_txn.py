#!/usr/bin/env python3
"""confluent-kafka's transactional producer against a running wharf-server (issue #16).

Usage: confluent_kafka_txn.py HOST:PORT   (the server's Kafka listener)

Runs every scenario, prints one line per scenario, exits 0 only if all pass.
Set WHARF_CLIENT_DEBUG=1 for librdkafka's protocol/broker/eos debug log on stderr.
WHARF_TEST_TIMEOUT (seconds, default 240) bounds the whole run.
Each commit or abort marker takes one offset, as in Kafka; the scenarios check the offsets.
"""
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from scenarios import Failed, WAIT_S, check, run_scenarios, run_timeout, values

NAME = "confluent-kafka transactions"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: confluent_kafka_txn.py HOST:PORT")
RUN = uuid.uuid4().hex[:8]  # makes topic, group and transactional id names unique
FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def conf(**extra):
    c = {"bootstrap.servers": BOOTSTRAP, "broker.address.family": "v4"}
    if os.environ.get("WHARF_CLIENT_DEBUG"):
        c["debug"] = "protocol,broker,msg,eos"
    c.update({k.replace("_", "."): v for k, v in extra.items()})
    return c


_ADMIN = []


def create_topic(topic, partitions):
    if not _ADMIN:
        _ADMIN.append(AdminClient(conf()))
    futures = _ADMIN[0].create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                      operation_timeout=WAIT_S, request_timeout=WAIT_S)
    for name, fut in futures.items():
        try:
            fut.result(timeout=WAIT_S)
        except Exception as e:
            raise Failed(f"create_topics {name}: {e!r}")


def txn_producer(txn_id, timeout_ms=30_000):
    """A transactional producer, initialised (which fences earlier producers of txn_id)."""
    p = Producer(conf(transactional_id=txn_id, transaction_timeout_ms=timeout_ms, linger_ms=5))
    p.init_transactions(WAIT_S)
    return p


def try_send(producer, topic, partition, values):
    """Sends values; returns each one's offset, or its KafkaError."""
    results = [None] * len(values)

    def report(i):
        def cb(err, msg):
            results[i] = err if err is not None else msg.offset()
        return cb

    for i, v in enumerate(values):
        producer.produce(topic, value=v.encode(), partition=partition, on_delivery=report(i))
    try:
        left = producer.flush(WAIT_S)
    except KafkaException as e:
        # A fatal error (a fenced producer) ends flush: what was not delivered failed with it.
        return [r if r is not None else e.args[0] for r in results]
    check(left == 0, f"{left} records to {topic}/{partition} undelivered after {WAIT_S}s")
    return results


def send(producer, topic, partition, values):
    got = try_send(producer, topic, partition, values)
    errors = [r for r in got if not isinstance(r, int)]
    check(not errors, f"delivery to {topic}/{partition}: {errors[:3]}")
    return got


def read(topic, start, isolation):
    """Reads topic from start ({partition: offset}) with isolation until every partition reports
    its end (the last stable offset for read_committed); returns {partition: [(offset, value)]}."""
    c = Consumer(conf(group_id="cfk-txn-reader-never-commits", enable_auto_commit=False,
                      enable_partition_eof=True, isolation_level=isolation))
    try:
        c.assign([TopicPartition(topic, p, o) for p, o in start.items()])
        out, at_end, deadline = {p: [] for p in start}, set(), time.monotonic() + WAIT_S
        while len(at_end) < len(start):
            check(time.monotonic() < deadline,
                  f"{isolation} read of {topic}: only partitions {sorted(at_end)} reached their end after {WAIT_S}s")
            m = c.poll(0.1)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                    continue
                raise Failed(f"{isolation} read of {topic}: {m.error()}")
            at_end.discard(m.partition())
            out[m.partition()].append((m.offset(), m.value().decode()))
        return out
    finally:
        c.close()


def read_values(topic, partitions, isolation):
    got = read(topic, {p: 0 for p in range(partitions)}, isolation)
    return {p: [v for _, v in recs] for p, recs in got.items()}


def end_offset(topic, partition, isolation):
    """ListOffsets latest with isolation: the LSO for read_committed, the HWM otherwise."""
    c = Consumer(conf(group_id="cfk-txn-reader-never-commits", isolation_level=isolation))
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=WAIT_S, cached=False)
        return hi
    finally:
        c.close()


def committed(group, topic, partition):
    """The group's committed offset (None: none), asked without require_stable."""
    c = Consumer(conf(group_id=group, enable_auto_commit=False, isolation_level="read_uncommitted"))
    try:
        tp = c.committed([TopicPartition(topic, partition)], timeout=WAIT_S)[0]
        check(tp.error is None, f"committed offset of {group}: {tp.error}")
        return tp.offset if tp.offset >= 0 else None
    finally:
        c.close()


def expect_fenced(fn, what):
    try:
        fn()
    except KafkaException as e:
        err = e.args[0]
        check(err.fatal(), f"{what}: {err} is not fatal, but fencing is")
        check(err.code() in FENCED, f"{what}: {err}, want the fenced error")
        return
    raise Failed(f"{what} succeeded; a fenced producer must fail")


def scenario_commit_and_abort():
    topic = f"cfk-txn-vis-{RUN}"
    create_topic(topic, 2)
    p = txn_producer(f"cfk-vis-{RUN}")
    # A: 0..9, marker 10; B (aborted): 11..15, marker 16; C: 17..19, marker 20.
    for tag, n, commit, first in [("A", 10, True, 0), ("B", 5, False, 11), ("C", 3, True, 17)]:
        p.begin_transaction()
        for part in range(2):
            got = send(p, topic, part, values(tag, part, n))
            check(got == list(range(first, first + n)), f"transaction {tag} partition {part}: offsets {got}")
        if commit:
            p.commit_transaction(WAIT_S)
        else:
            p.abort_transaction(WAIT_S)
    rc = read_values(topic, 2, "read_committed")
    ru = read_values(topic, 2, "read_uncommitted")
    for part in range(2):
        want = values("A", part, 10) + values("C", part, 3)
        check(rc[part] == want, f"read_committed partition {part}: {rc[part]}, want A and C")
        want = values("A", part, 10) + values("B", part, 5) + values("C", part, 3)
        check(ru[part] == want, f"read_uncommitted partition {part}: {ru[part]}, want A, B and C")
        for isolation in ["read_committed", "read_uncommitted"]:
            end = end_offset(topic, part, isolation)
            check(end == 21, f"ListOffsets {isolation} partition {part}: {end}, want 21")


def scenario_open_transaction_holds_lso():
    topic = f"cfk-txn-lso-{RUN}"
    create_topic(topic, 1)
    plain = Producer(conf(linger_ms=0))
    t = txn_producer(f"cfk-lso-{RUN}")
    check(send(plain, topic, 0, values("before", 0, 3)) == [0, 1, 2], "plain records before")
    t.begin_transaction()
    check(send(t, topic, 0, values("open", 0, 4)) == [3, 4, 5, 6], "the open transaction's offsets")
    check(send(plain, topic, 0, values("after", 0, 2)) == [7, 8], "plain records after")
    check(end_offset(topic, 0, "read_committed") == 3, "ListOffsets read_committed with a transaction open at 3")
    check(end_offset(topic, 0, "read_uncommitted") == 9, "ListOffsets read_uncommitted")
    got = read_values(topic, 1, "read_committed")[0]
    check(got == values("before", 0, 3), f"read_committed with a transaction open at 3: {got}")
    everything = values("before", 0, 3) + values("open", 0, 4) + values("after", 0, 2)
    got = read_values(topic, 1, "read_uncommitted")[0]
    check(got == everything, f"read_uncommitted: {got}")
    t.commit_transaction(WAIT_S)
    got = read_values(topic, 1, "read_committed")[0]
    check(got == everything, f"read_committed after the commit: {got}")
    check(end_offset(topic, 0, "read_committed") == 10, "ListOffsets read_committed after the commit (marker at 9)")


def scenario_offsets_in_transaction():
    topic_in, topic_out, group = f"cfk-txn-in-{RUN}", f"cfk-txn-out-{RUN}", f"cfk-txn-group-{RUN}"
    create_topic(topic_in, 1)
    create_topic(topic_out, 1)
    send(Producer(conf(linger_ms=0)), topic_in, 0, values("in", 0, 10))
    consumer = Consumer(conf(group_id=group, enable_auto_commit=False))
    try:
        metadata = consumer.consumer_group_metadata()
        t = txn_producer(f"cfk-offsets-{RUN}")
        t.begin_transaction()
        send(t, topic_out, 0, values("out", 0, 4))
        t.send_offsets_to_transaction([TopicPartition(topic_in, 0, 4)], metadata, WAIT_S)
        t.abort_transaction(WAIT_S)
        check(committed(group, topic_in, 0) is None, "offsets of an aborted transaction were committed")
        t.begin_transaction()
        send(t, topic_out, 0, values("out", 0, 7))
        t.send_offsets_to_transaction([TopicPartition(topic_in, 0, 7)], metadata, WAIT_S)
        check(committed(group, topic_in, 0) is None, "offsets of an open transaction are visible")
        t.commit_transaction(WAIT_S)
        got = committed(group, topic_in, 0)
        check(got == 7, f"offsets of a committed transaction: {got}, want 7")
        # require_stable (read_committed) now answers at once.
        c = Consumer(conf(group_id=group, enable_auto_commit=False, isolation_level="read_committed"))
        try:
            got = c.committed([TopicPartition(topic_in, 0)], timeout=WAIT_S)[0].offset
            check(got == 7, f"committed offset asked with require_stable: {got}, want 7")
        finally:
            c.close()
    finally:
        consumer.close()


def scenario_zombie_fencing():
    topic, txn_id = f"cfk-txn-zombie-{RUN}", f"cfk-zombie-{RUN}"
    create_topic(topic, 1)
    zombie = txn_producer(txn_id)
    zombie.begin_transaction()
    check(send(zombie, topic, 0, values("zombie", 0, 5)) == [0, 1, 2, 3, 4], "the zombie's offsets")
    successor = txn_producer(txn_id)  # aborts the zombie's transaction: marker at 5
    late = try_send(zombie, topic, 0, values("late", 0, 1))
    check(not isinstance(late[0], int), f"a fenced producer's record was stored at {late[0]}")
    expect_fenced(lambda: zombie.commit_transaction(WAIT_S), "the zombie's commit")
    successor.begin_transaction()
    check(send(successor, topic, 0, values("successor", 0, 3)) == [6, 7, 8], "the successor's offsets")
    successor.commit_transaction(WAIT_S)
    got = read_values(topic, 1, "read_committed")[0]
    check(got == values("successor", 0, 3), f"read_committed: {got}, want the successor's only")
    got = read_values(topic, 1, "read_uncommitted")[0]
    check(got == values("zombie", 0, 5) + values("successor", 0, 3), f"read_uncommitted: {got}")


SCENARIOS = [
    ("commit and abort: read_committed skips aborted records, read_uncommitted does not", scenario_commit_and_abort),
    ("an open transaction holds read_committed (and ListOffsets) at its first offset", scenario_open_transaction_holds_lso),
    ("send_offsets_to_transaction: offsets count only when the transaction commits", scenario_offsets_in_transaction),
    ("zombie fencing: a second producer of a transactional id fences the first", scenario_zombie_fencing),
]


def main():
    run_scenarios(NAME, f"confluent-kafka {__import__('confluent_kafka').__version__} "
        f"(librdkafka {__import__('confluent_kafka').libversion()[0]}) transactions against {BOOTSTRAP}",
        SCENARIOS, run_timeout(240))


if __name__ == "__main__":
    main()
