#!/usr/bin/env python3
"""An exactly-once consume-transform-produce loop (confluent-kafka), for a test to SIGKILL at
chosen points and restart (compat-tests/tests/kafka_transactions.rs).

Usage: ctp_confluent_kafka.py HOST:PORT INPUT OUTPUT GROUP TRANSACTIONAL_ID PER_TXN

Reads every partition of INPUT (assigned, not subscribed: one instance at a time) from GROUP's
committed offsets, and for each record with value "in-<n>" writes "out-<n>" (same key) to the
same partition of OUTPUT, in transactions of at most PER_TXN records that also commit the input
offsets (send_offsets_to_transaction). A restarted instance fences the killed one with its
init_transactions (same TRANSACTIONAL_ID), which aborts the killed one's open transaction.

Prints, flushed, one line per step, so the test can kill it right after one:
  INIT            init_transactions done
  BEGIN n         transaction n begun
  PRODUCED n      its records handed to the producer (not necessarily sent)
  OFFSETS n       its input offsets sent to the transaction
  COMMIT n        commit_transaction called
  COMMITTED n     commit_transaction returned
  DONE            every input partition read up to its end offset (as when it started) and committed
Exits 0 after DONE; on any error prints it on stderr and exits 1. WHARF_TEST_TIMEOUT (seconds,
default 120) bounds a run.
"""
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from scenarios import WAIT_S, run_timeout, watchdog


def say(line):
    print(line, flush=True)


def fail(what):
    print(f"ctp: {what}", file=sys.stderr, flush=True)
    os._exit(1)


def main():
    if len(sys.argv) != 7:
        sys.exit("usage: ctp_confluent_kafka.py HOST:PORT INPUT OUTPUT GROUP TRANSACTIONAL_ID PER_TXN")
    bootstrap, input_topic, output_topic, group, txn_id, per_txn = sys.argv[1:]
    per_txn = int(per_txn)
    seconds = run_timeout(120)
    watchdog(seconds, lambda: fail(f"the run took over {seconds}s; stopped"))
    common = {"bootstrap.servers": bootstrap, "broker.address.family": "v4"}
    producer = Producer({**common, "transactional.id": txn_id, "transaction.timeout.ms": 30_000, "linger.ms": 5})
    producer.init_transactions(WAIT_S)
    say("INIT")

    consumer = Consumer({**common, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    partitions = sorted(consumer.list_topics(input_topic, timeout=WAIT_S).topics[input_topic].partitions)
    tps = [TopicPartition(input_topic, p) for p in partitions]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=WAIT_S, cached=False)[1] for tp in tps}
    # Where the last committed transaction left off (read_committed asks with require_stable,
    # so a transaction still being completed holds the answer rather than giving an old offset).
    positions = {}
    for tp in consumer.committed(tps, timeout=WAIT_S):
        if tp.error is not None:
            fail(f"committed offset of {tp.partition}: {tp.error}")
        positions[tp.partition] = tp.offset if tp.offset >= 0 else 0
    consumer.assign([TopicPartition(input_topic, p, positions[p] if positions[p] > 0 else OFFSET_BEGINNING)
                     for p in partitions])
    metadata = consumer.consumer_group_metadata()

    n = 0
    deadline = time.monotonic() + WAIT_S
    while any(positions[p] < ends[p] for p in partitions):
        msgs = consumer.consume(num_messages=per_txn, timeout=0.5)
        msgs = [m for m in msgs if not (m.error() and m.error().code() == KafkaError._PARTITION_EOF)]
        for m in msgs:
            if m.error():
                fail(f"consume: {m.error()}")
        if not msgs:
            if time.monotonic() > deadline:
                fail(f"no input for {WAIT_S}s at positions {positions}, end offsets {ends}")
            continue
        deadline = time.monotonic() + WAIT_S
        n += 1
        producer.begin_transaction()
        say(f"BEGIN {n}")
        for m in msgs:
            value = m.value().decode()
            if not value.startswith("in-"):
                fail(f"unexpected input {value!r} at {m.partition()}/{m.offset()}")
            producer.produce(output_topic, key=m.key(), value=("out-" + value[3:]).encode(), partition=m.partition())
            positions[m.partition()] = m.offset() + 1
        say(f"PRODUCED {n}")
        offsets = [TopicPartition(input_topic, p, o) for p, o in positions.items() if o > 0]
        producer.send_offsets_to_transaction(offsets, metadata, WAIT_S)
        say(f"OFFSETS {n}")
        say(f"COMMIT {n}")
        producer.commit_transaction(WAIT_S)
        say(f"COMMITTED {n}")
    consumer.close()
    say("DONE")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a KafkaException from the transactional API, mostly
        fail(repr(e))
