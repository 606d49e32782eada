#!/usr/bin/env python3
"""kafka-python's transactional producer (and its admin client's transaction APIs) against a
running wharf-server (issue #16).

Usage: kafka_python_txn.py HOST:PORT   (the server's Kafka listener)

Runs every scenario, prints one line per scenario, exits 0 only if all pass.
Set WHARF_CLIENT_DEBUG=1 for kafka-python's DEBUG log (protocol traffic) on stderr.
WHARF_TEST_TIMEOUT (seconds, default 240) bounds the whole run.
Each commit or abort marker takes one offset, as in Kafka; the scenarios check the offsets.
"""
import logging
import os
import sys
import time
import uuid

import kafka
import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from scenarios import Failed, WAIT_S, check, run_scenarios, run_timeout, values

NAME = "kafka-python transactions"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: kafka_python_txn.py HOST:PORT")
RUN = uuid.uuid4().hex[:8]  # makes topic, group and transactional id names unique
COMMON = dict(bootstrap_servers=BOOTSTRAP, request_timeout_ms=30_000)


_ADMIN = []


def admin():
    if not _ADMIN:
        _ADMIN.append(KafkaAdminClient(**COMMON))
    return _ADMIN[0]


def create_topic(topic, partitions):
    result = admin().create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}},
                                   timeout_ms=30_000)
    errors = [t for t in result["topics"] if t["error_code"] != 0]
    check(not errors, f"create_topics: {errors}")


def txn_producer(txn_id, timeout_ms=30_000):
    """A transactional producer, initialised (which fences earlier producers of txn_id)."""
    p = KafkaProducer(transactional_id=txn_id, transaction_timeout_ms=timeout_ms, linger_ms=5, **COMMON)
    p.init_transactions()
    return p


def send(producer, topic, partition, values):
    """Sends values; returns their offsets."""
    futures = [producer.send(topic, value=v.encode(), partition=partition) for v in values]
    producer.flush(timeout=WAIT_S)
    offsets = []
    for i, f in enumerate(futures):
        check(f.is_done, f"record {i} to {topic}/{partition} undelivered after flush({WAIT_S})")
        check(f.succeeded(), f"record {i} to {topic}/{partition}: {f.exception!r}")
        offsets.append(f.get(timeout=0).offset)
    return offsets


def consumer(isolation, **extra):
    return KafkaConsumer(enable_auto_commit=False, isolation_level=isolation, **{"group_id": None, **extra}, **COMMON)


def end_offset(topic, partition, isolation):
    """ListOffsets latest with isolation: the LSO for read_committed, the HWM otherwise."""
    c = consumer(isolation)
    try:
        tp = TopicPartition(topic, partition)
        return c.end_offsets([tp], timeout_ms=30_000)[tp]
    finally:
        c.close()


def read_values(topic, partitions, isolation):
    """Reads every partition from the start up to its end offset for isolation (the LSO for
    read_committed): the consumer's position moves past markers and aborted batches too."""
    c = consumer(isolation)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning()
        ends = c.end_offsets(tps, timeout_ms=30_000)
        out, deadline = {p: [] for p in range(partitions)}, time.monotonic() + WAIT_S
        while any(c.position(tp, timeout_ms=30_000) < ends[tp] for tp in tps):
            positions = {tp.partition: c.position(tp, timeout_ms=30_000) for tp in tps}
            check(time.monotonic() < deadline,
                  f"{isolation} read of {topic}: positions {positions}, end offsets {ends} after {WAIT_S}s")
            for batch in c.poll(timeout_ms=200).values():
                for r in batch:
                    out[r.partition].append(r.value.decode())
        return out
    finally:
        c.close()


def committed(group, topic, partition):
    """The group's committed offset (None: none), asked without require_stable."""
    c = consumer("read_uncommitted", group_id=group)
    try:
        return c.committed(TopicPartition(topic, partition), timeout_ms=30_000)
    finally:
        c.close()


def expect_fenced(fn, what):
    try:
        fn()
    except Errors.ProducerFencedError:
        return
    except Exception as e:
        raise Failed(f"{what}: {e!r}, want ProducerFencedError")
    raise Failed(f"{what} succeeded; a fenced producer must fail")


def scenario_commit_and_abort():
    topic = f"kpy-txn-vis-{RUN}"
    create_topic(topic, 2)
    p = txn_producer(f"kpy-vis-{RUN}")
    try:
        # A: 0..9, marker 10; B (aborted): 11..15, marker 16; C: 17..19, marker 20.
        for tag, n, commit, first in [("A", 10, True, 0), ("B", 5, False, 11), ("C", 3, True, 17)]:
            p.begin_transaction()
            for part in range(2):
                got = send(p, topic, part, values(tag, part, n))
                check(got == list(range(first, first + n)), f"transaction {tag} partition {part}: offsets {got}")
            if commit:
                p.commit_transaction()
            else:
                p.abort_transaction()
    finally:
        p.close(timeout=WAIT_S)
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
    topic = f"kpy-txn-lso-{RUN}"
    create_topic(topic, 1)
    plain = KafkaProducer(linger_ms=0, **COMMON)
    t = txn_producer(f"kpy-lso-{RUN}")
    try:
        check(send(plain, topic, 0, values("before", 0, 3)) == [0, 1, 2], "plain records before")
        t.begin_transaction()
        check(send(t, topic, 0, values("open", 0, 4)) == [3, 4, 5, 6], "the open transaction's offsets")
        check(send(plain, topic, 0, values("after", 0, 2)) == [7, 8], "plain records after")
        got = end_offset(topic, 0, "read_committed")
        check(got == 3, f"ListOffsets read_committed with a transaction open at 3: {got}")
        check(end_offset(topic, 0, "read_uncommitted") == 9, "ListOffsets read_uncommitted")
        got = read_values(topic, 1, "read_committed")[0]
        check(got == values("before", 0, 3), f"read_committed with a transaction open at 3: {got}")
        everything = values("before", 0, 3) + values("open", 0, 4) + values("after", 0, 2)
        got = read_values(topic, 1, "read_uncommitted")[0]
        check(got == everything, f"read_uncommitted: {got}")
        t.commit_transaction()
        got = read_values(topic, 1, "read_committed")[0]
        check(got == everything, f"read_committed after the commit: {got}")
        got = end_offset(topic, 0, "read_committed")
        check(got == 10, f"ListOffsets read_committed after the commit (marker at 9): {got}")
    finally:
        t.close(timeout=WAIT_S)
        plain.close(timeout=WAIT_S)


def scenario_offsets_in_transaction():
    topic_in, topic_out, group = f"kpy-txn-in-{RUN}", f"kpy-txn-out-{RUN}", f"kpy-txn-group-{RUN}"
    create_topic(topic_in, 1)
    create_topic(topic_out, 1)
    plain = KafkaProducer(linger_ms=0, **COMMON)
    send(plain, topic_in, 0, values("in", 0, 10))
    plain.close(timeout=WAIT_S)
    t = txn_producer(f"kpy-offsets-{RUN}")
    tp = TopicPartition(topic_in, 0)
    try:
        t.begin_transaction()
        send(t, topic_out, 0, values("out", 0, 4))
        t.send_offsets_to_transaction({tp: OffsetAndMetadata(4, "", -1)}, group)
        t.abort_transaction()
        check(committed(group, topic_in, 0) is None, "offsets of an aborted transaction were committed")
        t.begin_transaction()
        send(t, topic_out, 0, values("out", 0, 7))
        t.send_offsets_to_transaction({tp: OffsetAndMetadata(7, "", -1)}, group)
        check(committed(group, topic_in, 0) is None, "offsets of an open transaction are visible")
        t.commit_transaction()
        got = committed(group, topic_in, 0)
        check(got == 7, f"offsets of a committed transaction: {got}, want 7")
    finally:
        t.close(timeout=WAIT_S)


def scenario_zombie_fencing():
    topic, txn_id = f"kpy-txn-zombie-{RUN}", f"kpy-zombie-{RUN}"
    create_topic(topic, 1)
    zombie = txn_producer(txn_id)
    successor = None
    try:
        zombie.begin_transaction()
        check(send(zombie, topic, 0, values("zombie", 0, 5)) == [0, 1, 2, 3, 4], "the zombie's offsets")
        successor = txn_producer(txn_id)  # aborts the zombie's transaction: marker at 5
        expect_fenced(zombie.commit_transaction, "the zombie's commit")
        successor.begin_transaction()
        check(send(successor, topic, 0, values("successor", 0, 3)) == [6, 7, 8], "the successor's offsets")
        successor.commit_transaction()
    finally:
        zombie.close(timeout=WAIT_S)
        if successor is not None:
            successor.close(timeout=WAIT_S)
    got = read_values(topic, 1, "read_committed")[0]
    check(got == values("successor", 0, 3), f"read_committed: {got}, want the successor's only")
    got = read_values(topic, 1, "read_uncommitted")[0]
    check(got == values("zombie", 0, 5) + values("successor", 0, 3), f"read_uncommitted: {got}")


def scenario_describe_and_list_transactions():
    topic, txn_id = f"kpy-txn-describe-{RUN}", f"kpy-describe-{RUN}"
    create_topic(topic, 2)
    t = txn_producer(txn_id, timeout_ms=45_000)
    try:
        t.begin_transaction()
        send(t, topic, 1, values("described", 1, 2))
        before = int(time.time() * 1000)
        d = admin().describe_transactions([txn_id])[txn_id]
        check(d.state == "Ongoing", f"describe an open transaction: state {d.state}, want Ongoing")
        check(d.topic_partitions == {TopicPartition(topic, 1)}, f"describe: partitions {d.topic_partitions}")
        check(d.transaction_timeout_ms == 45_000, f"describe: timeout {d.transaction_timeout_ms}, want 45000")
        check(d.producer_id >= 0 and d.producer_epoch >= 0, f"describe: producer {d.producer_id}/{d.producer_epoch}")
        check(0 < d.transaction_start_time_ms <= before, f"describe: start time {d.transaction_start_time_ms}")
        ongoing = [x for xs in admin().list_transactions(state_filters=["Ongoing"]).values() for x in xs]
        mine = [x for x in ongoing if x.transactional_id == txn_id]
        check(len(mine) == 1 and mine[0].producer_id == d.producer_id,
              f"list_transactions(Ongoing): {ongoing}, want {txn_id} with producer {d.producer_id}")
        t.commit_transaction()
        d2 = admin().describe_transactions([txn_id])[txn_id]
        check(d2.state == "CompleteCommit", f"describe after the commit: state {d2.state}, want CompleteCommit")
        check(d2.producer_id == d.producer_id, f"describe after the commit: producer {d2.producer_id}")
        every = [x for xs in admin().list_transactions().values() for x in xs]
        check(any(x.transactional_id == txn_id and x.state == "CompleteCommit" for x in every),
              f"list_transactions() lacks {txn_id} in CompleteCommit: {every}")
        ongoing = [x for xs in admin().list_transactions(state_filters=["Ongoing"]).values() for x in xs]
        check(all(x.transactional_id != txn_id for x in ongoing), f"list_transactions(Ongoing) after the commit: {ongoing}")
    finally:
        t.close(timeout=WAIT_S)
    try:
        admin().describe_transactions([f"kpy-never-used-{RUN}"])
        raise Failed("describing an unknown transactional id succeeded")
    except Errors.TransactionalIdNotFoundError:
        pass


SCENARIOS = [
    ("commit and abort: read_committed skips aborted records, read_uncommitted does not", scenario_commit_and_abort),
    ("an open transaction holds read_committed (and ListOffsets) at its first offset", scenario_open_transaction_holds_lso),
    ("send_offsets_to_transaction: offsets count only when the transaction commits", scenario_offsets_in_transaction),
    ("zombie fencing: a second producer of a transactional id fences the first", scenario_zombie_fencing),
    ("admin describe_transactions / list_transactions", scenario_describe_and_list_transactions),
]


def main():
    logging.basicConfig(level=logging.DEBUG if os.environ.get("WHARF_CLIENT_DEBUG") else logging.ERROR,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_scenarios(NAME, f"kafka-python {kafka.__version__} transactions against {BOOTSTRAP}",
        SCENARIOS, run_timeout(240))


if __name__ == "__main__":
    main()
