#!/usr/bin/env python3
"""kafka-python against compacted topics (cleanup.policy=compact) of a running wharf-server whose
log cleaner looks for work every few milliseconds (issue #17).

Usage: kafka_python_compaction.py HOST:PORT   (the server's Kafka listener)

Runs every scenario, prints one line per scenario, exits 0 only if all pass.
Set WHARF_CLIENT_DEBUG=1 for kafka-python's DEBUG log (protocol traffic) on stderr.
WHARF_TEST_TIMEOUT (seconds, default 200) bounds the whole run.

The same checks as compat-tests/tests/kafka_compaction.rs: every read from the beginning has
strictly increasing offsets, each record exactly the one acknowledged at its offset, the last
record of every key its latest, no tombstone gone before its delete.retention.ms; compaction is
complete when every data key has exactly one record (none for a tombstone past its retention).
The cleaner cleans sealed segments only, so the wait appends "filler" records under a key of
their own: they seal the data's segments and give the cleaner new dirty segments.
"""
import logging
import os
import sys
import time
import uuid

import kafka
import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from scenarios import Failed, WAIT_S, check, run_scenarios, run_timeout

NAME = "kafka-python compaction"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: kafka_python_compaction.py HOST:PORT")
RUN = uuid.uuid4().hex[:8]  # makes topic names unique
COMMON = dict(bootstrap_servers=BOOTSTRAP, request_timeout_ms=30_000)
SEGMENT_BYTES = 16 * 1024
SHORT_RETENTION_MS = 1000
LONG_RETENTION_MS = 86_400_000
COMPACTION_WAIT_S = 90.0
FILLER_KEY = b"~filler"
VALUE_SIZE = 200

_ADMIN = []


def admin():
    if not _ADMIN:
        _ADMIN.append(KafkaAdminClient(**COMMON))
    return _ADMIN[0]


def create_compacted_topic(topic, retention_ms):
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": str(SEGMENT_BYTES),
        "min.cleanable.dirty.ratio": "0.01",
        "min.compaction.lag.ms": "0",
        "delete.retention.ms": str(retention_ms),
    }
    result = admin().create_topics(
        {topic: {"num_partitions": 1, "replication_factor": 1, "configs": configs}},
        timeout_ms=30_000, raise_errors=False)
    errors = [t for t in result["topics"] if t["error_code"] != 0]
    check(not errors, f"create_topics {topic} {configs}: {errors}")


def padded(tag):
    return tag.encode().ljust(VALUE_SIZE, b".")


def data_key(k):
    return f"key-{k:04}".encode()


def plan(keys, updates):
    """updates rounds over keys; k % 6 == 0 ends with a tombstone, k % 6 == 3 has a tombstone
    in its second-to-last update and a value after it."""
    out = []
    for u in range(updates):
        for k in range(keys):
            tombstone = (k % 6 == 0 and u + 1 == updates) or (k % 6 == 3 and u + 2 == updates)
            out.append((data_key(k), None if tombstone else padded(f"k{k}-u{u}-")))
    return out


class Written:
    """The record acknowledged at each offset of partition 0, and when the first write with
    tombstones began."""

    def __init__(self):
        self.at = {}
        self.tombstones_from = None
        self.fillers = 0

    def latest(self):
        out = {}
        for o in sorted(self.at):
            out[self.at[o][0]] = o
        return out

    def next_fillers(self, n):
        out = []
        for _ in range(n):
            self.fillers += 1
            out.append((FILLER_KEY, f"filler-{self.fillers}-".encode().ljust(1000, b".")))
        return out


def produce(producer, topic, recs, written):
    if written.tombstones_from is None and any(v is None for _, v in recs):
        written.tombstones_from = time.monotonic()
    futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in recs]
    producer.flush(timeout=WAIT_S)
    for (k, v), f in zip(recs, futures):
        check(f.is_done, f"record {k}={v!r:.40} to {topic} undelivered after flush({WAIT_S})")
        check(f.succeeded(), f"record {k}={v!r:.40} to {topic}: {f.exception!r}")
        o = f.get(timeout=0).offset
        check(o not in written.at, f"{topic}: offset {o} acknowledged twice")
        written.at[o] = (k, v)


def read_all(topic):
    """(offset, key, value) of every record of partition 0 from the start to the end offset,
    the end offset, and when the read ended."""
    c = KafkaConsumer(group_id=None, enable_auto_commit=False, **COMMON)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp], timeout_ms=30_000)[tp]
        out, deadline = [], time.monotonic() + WAIT_S
        while c.position(tp, timeout_ms=30_000) < end:
            check(time.monotonic() < deadline,
                  f"read of {topic}: position {c.position(tp)} below the end {end} after {WAIT_S}s")
            for batch in c.poll(timeout_ms=200).values():
                out.extend((r.offset, r.key, r.value) for r in batch)
        return out, end, time.monotonic()
    finally:
        c.close()


def check_read(topic, records, end, ended, written, retention_ms):
    """The invariants of every read; returns (done, keys with duplicates, tombstones left)."""
    last = -1
    present = {}
    for o, k, v in records:
        check(o > last, f"{topic}: offset {o} after {last}: offsets must strictly increase")
        last = o
        check(o in written.at, f"{topic}: offset {o} holds {k}={v!r:.40}, never acknowledged")
        check(written.at[o] == (k, v),
              f"{topic}: offset {o} holds {k}={v!r:.40}, but {written.at[o]!r:.80} was written there")
        check(k is not None, f"{topic}: offset {o}: a record without a key")
        present.setdefault(k, []).append(o)
    may_go = written.tombstones_from is not None and ended >= written.tombstones_from + retention_ms / 1000
    duplicated = tombstones_left = 0
    for key, latest in written.latest().items():
        tombstone = written.at[latest][1] is None
        offsets = present.get(key, [])
        if offsets:
            check(offsets[-1] == latest,
                  f"{topic}: key {key}: the last record read is at {offsets[-1]}, its latest at {latest}")
        else:
            check(tombstone, f"{topic}: key {key}: its latest value (at {latest}) is gone")
            check(may_go, f"{topic}: key {key}: its tombstone at {latest} went within its retention ({retention_ms} ms)")
        if tombstone and offsets and retention_ms == SHORT_RETENTION_MS:
            tombstones_left += 1
        if key != FILLER_KEY and len(offsets) > 1:
            duplicated += 1
    done = duplicated == 0 and tombstones_left == 0
    if done:
        check(len(records) < end, f"{topic}: compacted, yet {len(records)} records up to {end}: no holes")
    return done, duplicated, tombstones_left


def wait_until_compacted(producer, topic, written, retention_ms):
    start, reads = time.monotonic(), 0
    while True:
        produce(producer, topic, written.next_fillers(2 * SEGMENT_BYTES // 1000), written)
        records, end, ended = read_all(topic)
        reads += 1
        done, duplicated, left = check_read(topic, records, end, ended, written, retention_ms)
        if done:
            print(f"  {topic}: compacted after {time.monotonic() - start:.1f}s ({reads} reads): "
                  f"{len(records)} records up to offset {end}", flush=True)
            return records
        check(time.monotonic() - start < COMPACTION_WAIT_S,
              f"{topic}: not compacted after {COMPACTION_WAIT_S}s ({reads} reads): {duplicated} keys "
              f"with older versions, {left} tombstones left; {len(records)} records up to {end}")


def compacted_scenario(retention_ms):
    def scenario():
        topic = f"kpy-compact-{retention_ms}-{RUN}"
        create_compacted_topic(topic, retention_ms)
        producer = KafkaProducer(linger_ms=5, **COMMON)
        written = Written()
        keys, updates = 90, 8
        try:
            produce(producer, topic, plan(keys, updates), written)
            records = wait_until_compacted(producer, topic, written, retention_ms)
        finally:
            producer.close(timeout=WAIT_S)
        data = {k: v for _, k, v in records if k != FILLER_KEY}
        check(data.get(data_key(1)) == padded(f"k1-u{updates - 1}-"), f"key 1: {data.get(data_key(1))!r:.40}")
        check(data.get(data_key(3)) == padded(f"k3-u{updates - 1}-"), f"key 3: {data.get(data_key(3))!r:.40}")
        tombstoned = keys // 6
        if retention_ms == SHORT_RETENTION_MS:
            check(data_key(0) not in data, "key 0's tombstone is past its retention, yet there")
            check(len(data) == keys - tombstoned, f"{len(data)} data records, want {keys - tombstoned}")
        else:
            check(data_key(0) in data and data[data_key(0)] is None, "key 0's tombstone must stay a day")
            check(len(data) == keys, f"{len(data)} data records, want {keys}")
    return scenario


def scenario_keyless_refused():
    topic = f"kpy-compact-keyless-{RUN}"
    create_compacted_topic(topic, LONG_RETENTION_MS)
    producer = KafkaProducer(linger_ms=0, **COMMON)
    try:
        f = producer.send(topic, value=b"no key", partition=0)
        producer.flush(timeout=WAIT_S)
        check(f.is_done, "a keyless record: no answer")
        check(f.failed(), f"a keyless record to a compacted topic was stored at {f.value!r}")
        check(isinstance(f.exception, Errors.InvalidRecordError),
              f"a keyless record to a compacted topic: {f.exception!r}, want InvalidRecordError (87)")
    finally:
        producer.close(timeout=WAIT_S)
    # Nothing was stored: the first keyed record takes offset 0.
    producer = KafkaProducer(linger_ms=0, **COMMON)
    try:
        ok = producer.send(topic, key=b"k", value=b"keyed", partition=0)
        producer.flush(timeout=WAIT_S)
        check(ok.succeeded(), f"a keyed record after the refused one: {ok.exception!r}")
        check(ok.get(timeout=0).offset == 0, f"the keyed record's offset {ok.get(timeout=0).offset}, want 0")
    finally:
        producer.close(timeout=WAIT_S)


SCENARIOS = [
    ("updates and tombstones (delete.retention.ms 1 s): the latest value per key, tombstones gone",
     compacted_scenario(SHORT_RETENTION_MS)),
    ("updates and tombstones (delete.retention.ms 1 day): the latest value per key, tombstones kept",
     compacted_scenario(LONG_RETENTION_MS)),
    ("a keyless record to a compacted topic is refused with INVALID_RECORD", scenario_keyless_refused),
]


def main():
    logging.basicConfig(level=logging.DEBUG if os.environ.get("WHARF_CLIENT_DEBUG") else logging.ERROR,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_scenarios(NAME, f"kafka-python {kafka.__version__} compaction against {BOOTSTRAP}",
                  SCENARIOS, run_timeout(200))


if __name__ == "__main__":
    main()
