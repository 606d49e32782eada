#!/usr/bin/env python3
"""kafka-python (pure Python) against a running wharf-server.

Usage: kafka_python_test.py HOST:PORT   (the server's Kafka listener)

Runs every scenario, prints one line per scenario, exits 0 only if all pass.
Set WHARF_CLIENT_DEBUG=1 for kafka-python's DEBUG log (protocol traffic) on stderr.
WHARF_TEST_TIMEOUT (seconds, default 540) bounds the whole run.
Consumers use assign() only: the server has no consumer groups yet.
"""
import logging
import os
import sys
import threading
import time
import traceback

import kafka
import kafka.errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

WAIT_S = 60.0  # the bound on every wait
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]  # needs python-snappy, lz4, zstandard
N_RECORDS = 10_000
NAME = "kafka-python"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: kafka_python_test.py HOST:PORT")
COMMON = dict(bootstrap_servers=BOOTSTRAP, request_timeout_ms=30_000)


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


_ADMIN = []


def admin():
    if not _ADMIN:
        _ADMIN.append(KafkaAdminClient(**COMMON))
    return _ADMIN[0]


def create_topics(*topics, configs=None):
    spec = {t: {"num_partitions": p, "replication_factor": 1, "configs": configs or {}} for t, p in topics}
    result = admin().create_topics(spec, timeout_ms=30_000)  # raises on an error code
    errors = [t for t in result["topics"] if t["error_code"] != 0]
    check(not errors, f"create_topics: {errors}")


def records(n, tag):
    """(key, value, headers) in send order; two headers with distinct values each."""
    return [(f"key-{i}".encode(), f"{tag} value {i} {'x' * (i % 50)}".encode(),
             [("n", str(i).encode()), ("tag", f"{tag}-{i}".encode())]) for i in range(n)]


def produce(producer, topic, recs, partition=None, timestamps=None):
    """Sends recs; returns the partition each one went to, from the record metadata."""
    futures = [producer.send(topic, key=k, value=v, headers=h, partition=partition,
                             timestamp_ms=timestamps[i] if timestamps else None)
               for i, (k, v, h) in enumerate(recs)]
    producer.flush(timeout=WAIT_S)
    placed = []
    for i, f in enumerate(futures):
        check(f.is_done, f"record {i} undelivered after flush({WAIT_S})")
        check(f.succeeded(), f"record {i}: {f.exception!r}")
        md = f.get(timeout=0)
        placed.append((md.partition, md.offset))
    producer.close(timeout=WAIT_S)
    per = {}
    for p, off in placed:
        per.setdefault(p, []).append(off)
    for p, offs in per.items():
        check(offs == list(range(len(offs))), f"partition {p}: record offsets not 0..n in send order")
    return [p for p, _ in placed]


def consume(topic, partitions):
    """Reads every partition from the beginning up to its end offset (as listed after producing)."""
    c = KafkaConsumer(group_id=None, enable_auto_commit=False, **COMMON)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning()
        ends = c.end_offsets(tps, timeout_ms=30_000)
        out, deadline = [], time.monotonic() + WAIT_S
        while any(c.position(tp, timeout_ms=30_000) < ends[tp] for tp in tps):
            check(time.monotonic() < deadline, f"consumed {len(out)} records of end offsets {ends} after {WAIT_S}s")
            for batch in c.poll(timeout_ms=200).values():
                out.extend(batch)
        extra = [r for batch in c.poll(timeout_ms=300).values() for r in batch]
        check(not extra, f"{len(extra)} records past the end offsets {ends}")
        return out
    finally:
        c.close()


def check_round_trip(got, recs, partitions_sent, what):
    want = sorted((p, k, v, h) for p, (k, v, h) in zip(partitions_sent, recs))
    have = sorted((r.partition, r.key, r.value, list(r.headers)) for r in got)
    check(len(have) == len(want), f"{what}: read {len(have)} records, sent {len(want)}")
    check(have == want, f"{what}: the records read differ from those sent")
    for p in set(partitions_sent):
        sent = [k for q, (k, _, _) in zip(partitions_sent, recs) if q == p]
        read = [r.key for r in got if r.partition == p]
        check(read == sent, f"{what}: partition {p} order differs from send order")
        offs = [r.offset for r in got if r.partition == p]
        check(offs == list(range(len(offs))), f"{what}: partition {p} offsets not 0..n")


def scenario_codecs():
    for codec in CODECS:
        topic = f"kpy-codec-{codec}"
        create_topics((topic, 3))
        recs = records(N_RECORDS, codec)
        producer = KafkaProducer(compression_type=None if codec == "none" else codec,
                                 linger_ms=5, acks="all", **COMMON)
        parts = produce(producer, topic, recs)
        check(set(parts) == {0, 1, 2}, f"{codec}: the partitioner used only partitions {set(parts)}")
        check_round_trip(consume(topic, 3), recs, parts, codec)
        print(f"    {codec}: {len(recs)} records round-tripped", flush=True)


def scenario_idempotent():
    topic = "kpy-idempotent"
    create_topics((topic, 1))
    recs = records(5_000, "idem")
    producer = KafkaProducer(enable_idempotence=True, acks="all", linger_ms=2, **COMMON)
    parts = produce(producer, topic, recs, partition=0)
    check_round_trip(consume(topic, 1), recs, parts, "idempotent")


def scenario_admin():
    a = admin()
    create_topics(("kpy-adm-a", 2), ("kpy-adm-b", 1))
    create_topics(("kpy-adm-c", 1), configs={"retention.ms": "3600000"})
    names = ["kpy-adm-a", "kpy-adm-b", "kpy-adm-c"]
    listed = a.list_topics()
    check(all(t in listed for t in names), f"list_topics lacks some of {names}: {sorted(listed)}")
    described = {t["name"]: t for t in a.describe_topics(names)}
    for t, n in [("kpy-adm-a", 2), ("kpy-adm-b", 1), ("kpy-adm-c", 1)]:
        check(described[t]["error_code"] == 0, f"{t}: metadata error {described[t]['error_code']}")
        check(len(described[t]["partitions"]) == n, f"{t}: {len(described[t]['partitions'])} partitions, want {n}")
    # The default filter ('modified') keeps only configs not at their default: retention.ms
    # set at creation must be reported as a topic override.
    cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kpy-adm-c")])
    topic_cfg = cfg.get("topic", {}).get("kpy-adm-c", {})
    check("retention.ms" in topic_cfg, f"describe_configs (modified) lacks retention.ms: {cfg}")
    check(topic_cfg["retention.ms"]["value"] == "3600000", f"retention.ms = {topic_cfg['retention.ms']}")
    try:
        create_topics(("kpy-adm-a", 2))
        raise Failed("creating an existing topic succeeded")
    except kafka.errors.TopicAlreadyExistsError:
        pass
    a.delete_topics(names, timeout_ms=30_000)  # raises on an error code
    deadline = time.monotonic() + WAIT_S
    while True:
        left = [t for t in names if t in a.list_topics()]
        if not left:
            break
        check(time.monotonic() < deadline, f"still listed {WAIT_S}s after delete: {left}")
        time.sleep(0.1)  # polling interval, not synchronisation


def scenario_offsets_for_times():
    topic = "kpy-times"
    create_topics((topic, 1))
    base = (int(time.time()) - 600) * 1000
    recs = [(b"k", f"v{i}".encode(), []) for i in range(10)]
    produce(KafkaProducer(linger_ms=0, **COMMON), topic, recs, partition=0,
            timestamps=[base + i * 1000 for i in range(10)])
    got = consume(topic, 1)
    check([(r.timestamp, r.timestamp_type) for r in got] == [(base + i * 1000, 0) for i in range(10)],
          f"timestamps read back differ: {[(r.timestamp, r.timestamp_type) for r in got]}")
    c = KafkaConsumer(group_id=None, enable_auto_commit=False, **COMMON)
    try:
        tp = TopicPartition(topic, 0)
        for ts, want in [(base + 3500, 4), (base, 0), (base + 9000, 9), (base + 60_000, None)]:
            found = c.offsets_for_times({tp: ts}, timeout_ms=30_000)[tp]
            got_off = None if found is None else found.offset
            check(got_off == want, f"offsets_for_times(base+{ts - base}) = {found}, want offset {want}")
            if found is not None:
                check(found.timestamp == base + want * 1000, f"offsets_for_times(base+{ts - base}) timestamp {found.timestamp}")
        lo, hi = c.beginning_offsets([tp])[tp], c.end_offsets([tp])[tp]
        check((lo, hi) == (0, 10), f"beginning/end offsets ({lo}, {hi}), want (0, 10)")
    finally:
        c.close()


SCENARIOS = [
    ("produce+consume 10k keyed records with headers, every codec", scenario_codecs),
    ("idempotent producer", scenario_idempotent),
    ("admin create/list/describe/delete topics", scenario_admin),
    ("offsets_for_times (ListOffsets by timestamp)", scenario_offsets_for_times),
]


def watchdog(seconds):
    """A bound on the whole run, even if a client call hangs inside a library."""
    def fire():
        print(f"FAIL {NAME}: the whole run took over {seconds}s; stopped", flush=True)
        os._exit(1)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def main():
    watchdog(float(os.environ.get("WHARF_TEST_TIMEOUT", "540")))
    logging.basicConfig(level=logging.DEBUG if os.environ.get("WHARF_CLIENT_DEBUG") else logging.ERROR,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    print(f"kafka-python {kafka.__version__} against {BOOTSTRAP}", flush=True)
    failed = 0
    for name, fn in SCENARIOS:
        start = time.monotonic()
        try:
            fn()
            print(f"PASS {name} ({time.monotonic() - start:.1f}s)", flush=True)
        except Exception as e:
            failed += 1
            detail = str(e) if isinstance(e, Failed) else traceback.format_exc()
            print(f"FAIL {name} ({time.monotonic() - start:.1f}s): {detail}", flush=True)
    print(f"kafka-python: {len(SCENARIOS) - failed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
