#!/usr/bin/env python3
"""kafka-python (pure Python) against a running wharf-server.

Usage: kafka_python_test.py HOST:PORT   (the server's Kafka listener)

Runs every scenario, prints one line per scenario, exits 0 only if all pass.
Set WHARF_CLIENT_DEBUG=1 for kafka-python's DEBUG log (protocol traffic) on stderr.
WHARF_TEST_TIMEOUT (seconds, default 540) bounds the whole run.
The round-trip scenarios read with assign(); the group scenarios subscribe() in consumer groups.
"""
import logging
import os
import sys
import threading
import time
import traceback
import uuid

import kafka
import kafka.errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.structs import OffsetAndMetadata

from scenarios import Failed, WAIT_S, check, run_scenarios, run_timeout

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]  # needs python-snappy, lz4, zstandard
N_RECORDS = 10_000
NAME = "kafka-python"
BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: kafka_python_test.py HOST:PORT")
RUN = uuid.uuid4().hex[:8]  # makes the group scenarios' topic and group names unique
COMMON = dict(bootstrap_servers=BOOTSTRAP, request_timeout_ms=30_000)


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


def group_consumer(group, client_id):
    """A subscribing consumer: manual commits, short sessions so rebalances are quick."""
    return KafkaConsumer(group_id=group, client_id=client_id, enable_auto_commit=False, auto_offset_reset="earliest",
                         session_timeout_ms=6000, heartbeat_interval_ms=500, max_poll_interval_ms=20_000, **COMMON)


def subscribe(c, topic):
    """subscribe(), then load the topic's metadata before the first poll() joins the group.

    Otherwise, against a coordinator with no initial rebalance delay, the leader's first
    assignment can be computed before the metadata arrives (empty), and the leader rejoins
    when it does. If a poll() times out while that rejoin waits for the other member,
    kafka-python 3.0.12 never completes it: need_rejoin() turns false once the assignment
    snapshot is updated, so the finished join is never applied and the member stops
    heartbeating, keeps no partitions and is expired (a client bug, seen in this test).
    """
    c.subscribe([topic])
    check(c.partitions_for_topic(topic), f"no partitions known for {topic}")


# A commit that races a rebalance may be refused with one of these (Kafka semantics, not a
# failure): the partition's next owner reads again from the last commit that got through.
REBALANCE_ERRORS = (kafka.errors.CommitFailedError, kafka.errors.RebalanceInProgressError,
                    kafka.errors.IllegalGenerationError, kafka.errors.UnknownMemberIdError)


def commit(c, topic, offsets, rebalance_ok=False):
    """Commits {partition: next offset to read} synchronously; False if refused for a rebalance."""
    try:
        c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}, timeout_ms=30_000)
        return True
    except REBALANCE_ERRORS as e:
        if rebalance_ok:
            return False
        raise Failed(f"commit {offsets}: {e!r}")


def group_offsets(group, topic, partitions):
    """The group's committed offsets, {partition: offset}, -1 for none, via the admin client."""
    got = admin().list_group_offsets({group: [TopicPartition(topic, p) for p in range(partitions)]})[group]
    return {tp.partition: om.offset for tp, om in got.items() if tp.topic == topic}


def produce_for_group(topic, partitions, n, tag):
    """Creates topic and sends n keyed records; returns ({(partition, offset): value}, {partition: end offset})."""
    create_topics((topic, partitions))
    recs = records(n, tag)
    parts = produce(KafkaProducer(linger_ms=5, **COMMON), topic, recs)
    check(set(parts) == set(range(partitions)), f"the partitioner used only partitions {set(parts)}")
    sent, ends = {}, {p: 0 for p in range(partitions)}
    for p, (_, v, _) in zip(parts, recs):
        sent[(p, ends[p])] = v
        ends[p] += 1
    return sent, ends


def read_group(c, start, stop, sent, what):
    """Polls c until it has read every partition p in order from start[p] up to stop[p]."""
    nxt, deadline = dict(start), time.monotonic() + WAIT_S
    while any(nxt[p] < stop[p] for p in stop):
        check(time.monotonic() < deadline, f"{what}: read up to {nxt} of {stop} within {WAIT_S}s "
                                           f"(assignment {sorted(tp.partition for tp in c.assignment() or ())})")
        for tp, batch in c.poll(timeout_ms=200).items():
            for r in batch:
                p, o = r.partition, r.offset
                if o >= stop[p] and nxt[p] >= stop[p]:
                    continue  # read ahead, past what this reader wants
                check(o == nxt[p], f"{what}: partition {p}: read offset {o}, want {nxt[p]}")
                check(r.value == sent[(p, o)], f"{what}: partition {p} offset {o}: value {r.value!r}, sent {sent[(p, o)]!r}")
                nxt[p] += 1


def scenario_group_consume_commit():
    """Two members, each polling in its own thread (a KafkaConsumer is not thread-safe)."""
    topic = group = f"kpy-grp-commit-{RUN}"
    sent, ends = produce_for_group(topic, 3, 3000, "group")
    lock, stop = threading.Lock(), threading.Event()
    seen, shares, errors, refused = {}, [set(), set()], [], [0]

    def member(i):
        try:
            c = group_consumer(group, f"kpy-member-{i + 1}")
        except Exception:
            errors.append(f"member {i + 1}: {traceback.format_exc()}")
            return
        try:
            subscribe(c, topic)
            while not stop.is_set():
                nxt = {}
                for tp, batch in c.poll(timeout_ms=100).items():
                    with lock:
                        seen.update(((r.partition, r.offset), r.value) for r in batch)
                    nxt[tp.partition] = batch[-1].offset + 1
                if nxt and not commit(c, topic, nxt, rebalance_ok=True):
                    refused[0] += 1
                shares[i] = {tp.partition for tp in c.assignment() or ()}
        except Exception as e:
            errors.append(f"member {i + 1}: {e if isinstance(e, Failed) else traceback.format_exc()}")
        finally:
            try:
                c.close()
            except Exception:
                errors.append(f"member {i + 1} close: {traceback.format_exc()}")

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    try:
        last_committed, deadline = None, time.monotonic() + WAIT_S
        while True:
            check(not errors, "; ".join(errors))
            with lock:
                n_seen = len(seen)
            a, b = shares
            if a and b and not a & b and a | b == {0, 1, 2} and n_seen == len(sent):
                last_committed = group_offsets(group, topic, 3)
                if last_committed == ends:
                    break
            check(time.monotonic() < deadline,
                  f"after {WAIT_S}s: read {n_seen} of {len(sent)} distinct records; assignments {shares} "
                  f"(want two disjoint non-empty shares of 0-2); committed {last_committed}, end offsets {ends}; "
                  f"{refused[0]} commits refused for a rebalance")
            time.sleep(0.1)  # polling interval, not synchronisation
    finally:
        stop.set()
        for t in threads:
            t.join(WAIT_S)
    check(not any(t.is_alive() for t in threads), f"a member thread still running {WAIT_S}s after stop")
    check(not errors, "; ".join(errors))
    check(seen.keys() == sent.keys(), f"read (partition, offset)s outside those sent: {sorted(seen.keys() - sent.keys())[:5]}")
    bad = [k for k in sent if seen[k] != sent[k]]
    check(not bad, f"values read differ from those sent at {bad[:5]}")


def scenario_group_resume():
    topic = group = f"kpy-grp-resume-{RUN}"
    sent, ends = produce_for_group(topic, 2, 1000, "resume")
    half = {p: n // 2 for p, n in ends.items()}
    first = group_consumer(group, "kpy-resume-1")
    try:
        got = {p: first.committed(TopicPartition(topic, p), timeout_ms=30_000) for p in ends}
        check(got == {0: None, 1: None}, f"a new group has committed offsets {got}")
        subscribe(first, topic)
        read_group(first, {0: 0, 1: 0}, half, sent, "first consumer")
        commit(first, topic, half)
    finally:
        first.close()
    second = group_consumer(group, "kpy-resume-2")
    try:
        got = {p: second.committed(TopicPartition(topic, p), timeout_ms=30_000) for p in ends}
        check(got == half, f"committed offsets {got} after the first consumer closed, want {half}")
        subscribe(second, topic)
        read_group(second, half, ends, sent, "second consumer")  # must start exactly at half
        commit(second, topic, ends)
        got = {p: second.committed(TopicPartition(topic, p), timeout_ms=30_000) for p in ends}
        check(got == ends, f"committed offsets {got} after the second consumer, want {ends}")
    finally:
        second.close()


def scenario_group_admin():
    topic = group = f"kpy-grp-admin-{RUN}"
    client_id = f"kpy-admin-member-{RUN}"
    sent, ends = produce_for_group(topic, 2, 200, "admin")
    a = admin()
    c = group_consumer(group, client_id)
    try:
        subscribe(c, topic)
        read_group(c, {0: 0, 1: 0}, ends, sent, "consumer")
        commit(c, topic, ends)
        d = a.describe_groups([group])[group]
        check(d["error"] is None, f"describe_groups: {d['error']}")
        check(d["group_state"] == "Stable", f"describe with an active member: state {d['group_state']!r}, want 'Stable'")
        check((d["protocol_type"], d["protocol_data"]) == ("consumer", "range"),
              f"describe: protocol type/name {d['protocol_type']!r}/{d['protocol_data']!r}, want 'consumer'/'range'")
        check(len(d["members"]) == 1, f"describe: {len(d['members'])} members, want 1: {d['members']}")
        m = d["members"][0]
        check(m["client_id"] == client_id, f"describe: member client id {m['client_id']!r}, want {client_id!r}")
        check(m["member_metadata"]["topics"] == [topic], f"describe: member subscription {m['member_metadata']}")
        got = m["member_assignment"]["assigned_partitions"]
        check([(t["topic"], sorted(t["partitions"])) for t in got] == [(topic, [0, 1])],
              f"describe: member assignment {got}, want {topic} [0, 1]")
        mine = [g for g in a.list_groups() if g["group_id"] == group]
        check(len(mine) == 1, f"list_groups lacks {group}")
        check((mine[0]["protocol_type"], mine[0]["group_state"]) == ("consumer", "Stable"),
              f"list_groups: {mine[0]}, want protocol type 'consumer', state 'Stable'")
    finally:
        c.close()
    d = a.describe_groups([group])[group]
    check(d["group_state"] == "Empty", f"describe after the consumer closed: state {d['group_state']!r}, want 'Empty'")
    check(not d["members"], f"describe after the consumer closed: members {d['members']}")
    got = {(tp.topic, tp.partition): om.offset for tp, om in a.list_group_offsets(group)[group].items()}
    check(got == {(topic, p): n for p, n in ends.items()}, f"list_group_offsets {got}, want end offsets {ends}")
    # OffsetDelete on an empty group: partition 1's offset goes, partition 0's stays.
    res = a.delete_group_offsets(group, [TopicPartition(topic, 1)])
    check(res == {TopicPartition(topic, 1): kafka.errors.NoError}, f"delete_group_offsets: {res}")
    got = group_offsets(group, topic, 2)
    check(got == {0: ends[0], 1: -1}, f"offsets after delete_group_offsets of partition 1: {got}, want {{0: {ends[0]}, 1: -1}}")
    res = a.delete_groups([group])
    check(res == {group: "OK"}, f"delete_groups: {res}")
    check(group not in [g["group_id"] for g in a.list_groups()], f"{group} still listed after delete_groups")
    got = group_offsets(group, topic, 2)
    check(got == {0: -1, 1: -1}, f"committed offsets after delete_groups: {got}, want none (-1)")
    res = a.delete_groups([group])
    check(res == {group: "GroupIdNotFoundError"}, f"deleting a deleted group: {res}, want GroupIdNotFoundError")


SCENARIOS = [
    ("produce+consume 10k keyed records with headers, every codec", scenario_codecs),
    ("idempotent producer", scenario_idempotent),
    ("admin create/list/describe/delete topics", scenario_admin),
    ("offsets_for_times (ListOffsets by timestamp)", scenario_offsets_for_times),
    ("group_consume_commit: two subscribers share 3 partitions, commit per batch", scenario_group_consume_commit),
    ("group_resume: a new member resumes from the group's committed offsets", scenario_group_resume),
    ("group_admin: describe/list groups, list/delete group offsets, delete group", scenario_group_admin),
]


def main():
    logging.basicConfig(level=logging.DEBUG if os.environ.get("WHARF_CLIENT_DEBUG") else logging.ERROR,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_scenarios(NAME, f"kafka-python {kafka.__version__} against {BOOTSTRAP}",
        SCENARIOS, run_timeout(540))


if __name__ == "__main__":
    main()
